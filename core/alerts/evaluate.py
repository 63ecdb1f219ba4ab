"""Sliding-window evaluation and the alert state machine of one (rule, group): pure Python.

The job keeps one :class:`GroupEvaluator` per key in Flink keyed state and calls it twice:

- :meth:`GroupEvaluator.add` for every point (a record counted in this group). The window the
  record falls in is updated; when the rule's value can only grow (a count or a distinct count
  compared with ``>``/``>=``) and the threshold is crossed, the evaluation is decided at once, so
  an alert fires within the second the crossing record arrives instead of when the window closes.
- :meth:`GroupEvaluator.advance` when the watermark passes a window end (an event-time timer):
  each window not decided early is evaluated with its final value, in order.

An ``anomaly`` rule's group also keeps its series (:class:`core.alerts.anomaly.History`): every
evaluated window's count, from which the band of the next window is computed, so its condition is
"outside the band" instead of a comparison with a threshold. It evaluates every window, empty
ones included, so a volume that drops to nothing is seen.

Windows are event time: window ``[end - window, end)`` for every ``end`` that is a multiple of
``slide``. A record older than the oldest window still open is late and only counted as such.

State machine per group (per pattern too, for ``new_pattern`` rules)::

    OK/RESOLVED --holds--> PENDING --holds N times in a row--> FIRING --fails--> RESOLVED
                   (FIRING at once when for_evaluations is 1)

A firing notifies at most once per cooldown: a group that fires again within it is FIRING (and in
the history) without a notification, and the notification goes out at the first evaluation after
the cooldown if the group is still firing, so a real problem is never silenced, only de-duplicated.
A resolution notifies only when the firing it ends was notified.

Times are event times in milliseconds, which makes every decision (and event id) the same when the
job replays records after a restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from core.alerts.anomaly import Band, History
from core.alerts.matching import Point
from core.alerts.rules import Aggregation, Direction, Rule, RuleType

MAX_SAMPLES = 5
MAX_DISTINCT_PER_BUCKET = 10_000
STATE_VERSION = 1


# The group of the history entries that report points refused by the group caps (core/alerts/caps.py).
OVERFLOW_GROUP_ID = "overflow"


class State(StrEnum):
    OK = "OK"
    PENDING = "PENDING"
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"


@dataclass(slots=True)
class AlertEvent:
    """A state change of one group, as the job emits it and the history records it."""

    event_id: str
    tenant: str
    rule_id: str
    rule_name: str
    revision: int
    severity: str
    state: State  # PENDING, FIRING, RESOLVED, or OK (a PENDING that never fired)
    notify: bool  # whether channels are told (cooldown and unnotified firings say no)
    group: dict[str, str]
    group_id: str
    value: float | None
    comparison: str
    threshold: float
    window_start_ms: int
    window_end_ms: int
    since_ms: int | None  # when the episode (PENDING or FIRING) began
    samples: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "tenant": self.tenant,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "revision": self.revision,
            "severity": self.severity,
            "state": str(self.state),
            "notify": self.notify,
            "group": self.group,
            "group_id": self.group_id,
            "value": self.value,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "since_ms": self.since_ms,
            "samples": self.samples,
            "reason": self.reason,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertEvent:
        return cls(**{**data, "state": State(data["state"])})

    @classmethod
    def from_json(cls, data: bytes | str) -> AlertEvent:
        return cls.from_dict(orjson.loads(data))


def event_id(rule_id: str, group_id: str, state: str, at_ms: int, notify: bool) -> str:
    """Deterministic, so a replayed evaluation produces the same id and the history keeps one row."""
    text = f"{rule_id}\x1f{group_id}\x1f{state}\x1f{at_ms}\x1f{int(notify)}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class Status:
    """Where one group is in the state machine."""

    state: State = State.OK
    streak: int = 0  # consecutive evaluations that held
    since_ms: int | None = None
    notified: bool = False  # the current firing has been notified
    last_notified_ms: int | None = None  # the last firing notification, for the cooldown

    @property
    def quiet(self) -> bool:
        return self.state in (State.OK, State.RESOLVED)

    def to_list(self) -> list[Any]:
        return [str(self.state), self.streak, self.since_ms, self.notified, self.last_notified_ms]

    @classmethod
    def from_list(cls, data: list[Any]) -> Status:
        return cls(State(data[0]), data[1], data[2], data[3], data[4])


@dataclass(slots=True)
class Transition:
    state: State
    notify: bool
    since_ms: int | None


def step(status: Status, holds: bool, at_ms: int, for_evaluations: int, cooldown_ms: int) -> list[Transition]:
    """Apply one evaluation (window ending at ``at_ms``) to ``status``; return what changed.

    >>> s = Status(); step(s, True, 60_000, 1, 300_000)[0].state
    <State.FIRING: 'FIRING'>
    """
    out: list[Transition] = []

    def fire() -> None:
        status.state = State.FIRING
        cooled = status.last_notified_ms is None or at_ms - status.last_notified_ms >= cooldown_ms
        status.notified = cooled
        if cooled:
            status.last_notified_ms = at_ms
        out.append(Transition(State.FIRING, cooled, status.since_ms))

    if holds:
        if status.quiet:
            status.streak = 1
            status.since_ms = at_ms
            if for_evaluations <= 1:
                fire()
            else:
                status.state = State.PENDING
                out.append(Transition(State.PENDING, False, at_ms))
        elif status.state is State.PENDING:
            status.streak += 1
            if status.streak >= for_evaluations:
                fire()
        else:  # FIRING: the cooldown that held back its notification may now be over
            status.streak += 1
            last = status.last_notified_ms
            if not status.notified and (last is None or at_ms - last >= cooldown_ms):
                status.notified = True
                status.last_notified_ms = at_ms
                out.append(Transition(State.FIRING, True, status.since_ms))
    elif status.state is State.PENDING:
        out.append(Transition(State.OK, False, status.since_ms))
        status.state, status.streak, status.since_ms = State.OK, 0, None
    elif status.state is State.FIRING:
        out.append(Transition(State.RESOLVED, status.notified, status.since_ms))
        status.state, status.streak, status.since_ms, status.notified = State.RESOLVED, 0, None, False
    return out


@dataclass(slots=True)
class Sub:
    """One alerting group's windows and status (a rule's group; one pattern of a new_pattern group)."""

    buckets: dict[int, list[Any]] = field(default_factory=dict)  # start_ms -> [matched, total, distinct]
    status: Status = field(default_factory=Status)
    last_eval_ms: int | None = None  # end of the last evaluated window
    samples: list[dict[str, Any]] = field(default_factory=list)
    # Anomaly rules: the series the band is learnt from. The job loads and saves a key's state on
    # every record, but the history changes once per evaluation, so it is kept as JSON text until
    # an evaluation needs it, and the band of the open window is kept beside it.
    history: History | None = None
    history_json: str | None = None
    band_at: list[Any] | None = None  # [window end, rule revision, ready, band as a list or None]

    def learnt(self) -> History:
        if self.history is None:
            self.history = History() if self.history_json is None else History.from_json(self.history_json)
            self.history_json = None
        return self.history

    def forget_history(self) -> None:
        self.history, self.history_json, self.band_at = None, None, None

    def to_list(self) -> list[Any]:
        buckets = [
            [k, b[0], b[1], sorted(b[2]) if b[2] is not None else None] for k, b in self.buckets.items()
        ]
        history = self.history_json if self.history is None else self.history.to_json()
        return [buckets, self.status.to_list(), self.last_eval_ms, self.samples, history, self.band_at]

    @classmethod
    def from_list(cls, data: list[Any]) -> Sub:
        buckets = {b[0]: [b[1], b[2], set(b[3]) if b[3] is not None else None] for b in data[0]}
        sub = cls(buckets, Status.from_list(data[1]), data[2], data[3])
        if len(data) > 4:  # state written before anomaly rules existed has four items
            sub.history_json, sub.band_at = data[4], data[5]
        return sub


class GroupEvaluator:
    """The state of one (rule, group) key. See the module docstring for what it decides."""

    def __init__(self, key: str, tenant: str, group: tuple[str, ...], group_by: list[str]) -> None:
        self.key = key
        self.tenant = tenant
        self.group = group
        self.group_by = list(group_by)
        self.revision: int | None = None
        self.window_ms = 0
        self.slide_ms = 0
        self.subs: dict[str, Sub] = {}
        self.late = 0  # records that arrived after every window they belong to was evaluated
        self.timer_ms: int | None = None  # the event-time timer currently registered
        # new_pattern rules: when this service was first seen, and pattern -> [first, last] seen
        self.first_seen_ms: int | None = None
        self.known: dict[str, list[int]] = {}

    # -- serialization (Flink keyed state holds these bytes) --------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": STATE_VERSION,
                "key": self.key,
                "tenant": self.tenant,
                "group": self.group,
                "group_by": self.group_by,
                "revision": self.revision,
                "window_ms": self.window_ms,
                "slide_ms": self.slide_ms,
                "subs": {k: s.to_list() for k, s in self.subs.items()},
                "late": self.late,
                "timer_ms": self.timer_ms,
                "first_seen_ms": self.first_seen_ms,
                "known": self.known,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupEvaluator:
        d = orjson.loads(data)
        ev = cls(d["key"], d["tenant"], tuple(d["group"]), d["group_by"])
        ev.revision, ev.window_ms, ev.slide_ms = d["revision"], d["window_ms"], d["slide_ms"]
        ev.subs = {k: Sub.from_list(v) for k, v in d["subs"].items()}
        ev.late, ev.timer_ms = d["late"], d["timer_ms"]
        ev.first_seen_ms, ev.known = d["first_seen_ms"], d["known"]
        return ev

    # -- helpers -----------------------------------------------------------------------------

    def _sync_rule(self, rule: Rule) -> None:
        """A changed window or slide makes the kept buckets meaningless; the status is kept."""
        if self.revision == rule.revision:
            return
        if (self.window_ms, self.slide_ms) != (rule.window_ms, rule.slide_ms):
            for sub in self.subs.values():
                sub.buckets.clear()
                sub.last_eval_ms = None
                sub.forget_history()  # a series of other windows is no baseline for these
            self.window_ms, self.slide_ms = rule.window_ms, rule.slide_ms
        self.revision = rule.revision

    def _group_dict(self, sub_key: str) -> dict[str, str]:
        group = dict(zip(self.group_by, self.group, strict=False))
        if sub_key:
            group["pattern_id"] = sub_key
        return group

    def _value(self, rule: Rule, sub: Sub, end_ms: int) -> float | None:
        start = end_ms - rule.window_ms
        matched = total = 0
        distinct: set[str] = set()
        for bucket_start, (m, t, d) in sub.buckets.items():
            if start <= bucket_start < end_ms:
                matched += m
                total += t
                if d:
                    distinct |= d
        if rule.aggregation is Aggregation.RATE:
            return matched / total if total else None
        if rule.aggregation is Aggregation.COUNT_DISTINCT:
            return float(len(distinct))
        return float(matched)

    def _holds(
        self, rule: Rule, sub_key: str, sub: Sub, end_ms: int
    ) -> tuple[bool, float | None, Band | None]:
        value = self._value(rule, sub, end_ms)
        if rule.type is RuleType.ANOMALY:
            assert value is not None  # a count
            band, ready = self._band(rule, sub, end_ms)
            if band is None or not ready:
                return False, value, band
            up = value > band.upper and rule.direction in (Direction.UP, Direction.BOTH)
            down = value < band.lower and rule.direction in (Direction.DOWN, Direction.BOTH)
            return up or down, value, band
        if rule.type is RuleType.NEW_PATTERN:
            seen = self.known.get(sub_key)
            first_service = self.first_seen_ms
            # New means: first seen inside this window, and the service had a full window of
            # history before it (so a service's first minutes, or the job's, do not count as new).
            if (
                seen is None
                or first_service is None
                or seen[0] < end_ms - rule.window_ms
                or seen[0] < first_service + rule.window_ms
            ):
                return False, value, None
        return rule.holds(value), value, None

    @staticmethod
    def _band(rule: Rule, sub: Sub, end_ms: int) -> tuple[Band | None, bool]:
        """The band of the window ending at ``end_ms`` and whether the group may fire yet."""
        cached = sub.band_at
        if cached is not None and cached[0] == end_ms and cached[1] == rule.revision:
            return (None if cached[3] is None else Band.from_list(cached[3])), cached[2]
        history = sub.learnt()
        assert rule.sensitivity is not None
        band = history.band(end_ms, rule.window_ms, rule.slide_ms, rule.sensitivity)
        ready = history.evaluations >= rule.min_history_evaluations
        sub.band_at = [end_ms, rule.revision, ready, None if band is None else band.to_list()]
        return band, ready

    def _evaluate(
        self,
        rule: Rule,
        sub_key: str,
        sub: Sub,
        end_ms: int,
        holds: bool,
        value: float | None,
        band: Band | None = None,
    ) -> list[AlertEvent]:
        sub.last_eval_ms = end_ms
        comparison, threshold, reason = str(rule.comparison), rule.threshold, ""
        if rule.type is RuleType.ANOMALY:
            assert value is not None
            _, ready = self._band(rule, sub, end_ms)
            if band is not None and ready:
                # The edge of the band the value is (or would be) past: "42 > 17.3" reads like a threshold.
                below = rule.direction is Direction.DOWN or (
                    rule.direction is Direction.BOTH and value < band.expected
                )
                comparison, threshold = ("<", round(band.lower, 3)) if below else (">", round(band.upper, 3))
                reason = band.describe()
            else:
                # Only a group whose history started again (a level held for a day is the new
                # normal) or whose min_history grew can change state here: it resolves.
                seen = sub.learnt().evaluations
                comparison = ""
                reason = f"learning its level: {seen} of {rule.min_history_evaluations} evaluations seen"
            sub.learnt().record(
                end_ms, value, band, ready=ready, window_ms=rule.window_ms, slide_ms=rule.slide_ms
            )
            sub.band_at = None
        events = []
        for t in step(sub.status, holds, end_ms, rule.for_evaluations, rule.cooldown_ms):
            group_id = self.key + (("\x1f" + sub_key) if sub_key else "")
            events.append(
                AlertEvent(
                    event_id=event_id(rule.id, group_id, t.state, end_ms, t.notify),
                    tenant=rule.tenant,
                    rule_id=rule.id,
                    rule_name=rule.name,
                    revision=rule.revision,
                    severity=str(rule.severity),
                    state=t.state,
                    notify=t.notify,
                    group=self._group_dict(sub_key),
                    group_id=group_id,
                    value=value,
                    comparison=comparison,
                    threshold=threshold,
                    window_start_ms=end_ms - rule.window_ms,
                    window_end_ms=end_ms,
                    since_ms=t.since_ms,
                    samples=list(sub.samples) if t.state is State.FIRING else [],
                    reason=reason,
                )
            )
        return events

    # -- the two entry points ----------------------------------------------------------------

    def add(self, rule: Rule, point: Point, watermark_ms: int | None = None) -> list[AlertEvent]:
        """Count ``point``; return the events an early decision produced (usually none).

        ``watermark_ms`` (the operator's current watermark) makes a record for a group seen for the
        first time late when every window it belongs to has closed already."""
        self._sync_rule(rule)
        slide, window = rule.slide_ms, rule.window_ms
        ts = point.ts_ms
        sub_key = ""
        if rule.type is RuleType.NEW_PATTERN:
            assert point.value is not None
            sub_key = point.value
            if self.first_seen_ms is None or ts < self.first_seen_ms:
                self.first_seen_ms = ts
            seen = self.known.get(sub_key)
            if seen is None:
                self.known[sub_key] = [ts, ts]
            else:
                seen[0], seen[1] = min(seen[0], ts), max(seen[1], ts)
            if not point.matched:
                return []
            first = self.known[sub_key][0]
            if first < self.first_seen_ms + window or (sub_key not in self.subs and first < ts - window):
                return []  # not new: no window needs its counts
        bucket = ts - ts % slide
        end = bucket + slide
        sub = self.subs.get(sub_key)
        if sub is None:
            sub = self.subs[sub_key] = Sub()
        if sub.last_eval_ms is None:
            sub.last_eval_ms = end - slide
            if watermark_ms is not None and watermark_ms > sub.last_eval_ms:
                sub.last_eval_ms = watermark_ms - watermark_ms % slide
        if bucket < sub.last_eval_ms + slide - window:
            self.late += 1
            return []
        counts = sub.buckets.get(bucket)
        if counts is None:
            distinct: set[str] | None = set() if rule.aggregation is Aggregation.COUNT_DISTINCT else None
            counts = sub.buckets[bucket] = [0, 0, distinct]
        counts[1] += 1
        if point.matched:
            counts[0] += 1
            if counts[2] is not None and point.value is not None and len(counts[2]) < MAX_DISTINCT_PER_BUCKET:
                counts[2].add(point.value)
            if point.sample is not None:
                sub.samples.append(point.sample)
                del sub.samples[:-MAX_SAMPLES]
        if not (point.matched and end > sub.last_eval_ms and rule.monotone):
            return []
        # Decide the windows up to this record's in order while they hold (their values can only
        # grow, so a window that holds now holds when it closes). A window that does not hold yet
        # may still get records, so it waits for the watermark. Only a quiet group whose rule fires
        # on one evaluation may skip such windows: whatever they turn out to be, it fires now.
        # A firing group waits, so a quiet window between two bursts resolves it as it should.
        events: list[AlertEvent] = []
        w = sub.last_eval_ms + slide
        while w <= end:
            holds, value, band = self._holds(rule, sub_key, sub, w)
            if not holds:
                break
            events += self._evaluate(rule, sub_key, sub, w, True, value, band)
            w += slide
        # (An anomaly rule may not skip: every window's value belongs in its history.)
        if w <= end and rule.for_evaluations == 1 and sub.status.quiet and rule.type is not RuleType.ANOMALY:
            holds, value, band = self._holds(rule, sub_key, sub, end)
            if holds:
                events += self._evaluate(rule, sub_key, sub, end, True, value, band)
        return events

    def advance(self, rule: Rule | None, watermark_ms: int) -> list[AlertEvent]:
        """Evaluate every window that ended at or before ``watermark_ms``; ``rule`` is None when it
        was deleted or disabled, which resolves what was firing."""
        if rule is None or rule.tenant != self.tenant:
            return self._retire()
        self._sync_rule(rule)
        slide, window = rule.slide_ms, rule.window_ms
        events: list[AlertEvent] = []
        for sub_key, sub in list(self.subs.items()):
            if sub.last_eval_ms is None:  # the rule's window changed: start again from here
                sub.last_eval_ms = watermark_ms - watermark_ms % slide
                continue
            w = sub.last_eval_ms + slide
            steady = 0
            while w <= watermark_ms:
                holds, value, band = self._holds(rule, sub_key, sub, w)
                events += self._evaluate(rule, sub_key, sub, w, holds, value, band)
                # With no bucket left in any later window, every later value is the same: a few
                # more evaluations settle the state machine, the rest can be skipped. (Not for an
                # anomaly rule, whose band moves with every evaluation, empty ones included.)
                if rule.type is not RuleType.ANOMALY and (
                    not sub.buckets or max(sub.buckets) < w - window + slide
                ):
                    steady += 1
                    if steady > rule.for_evaluations + 1:
                        w = watermark_ms - watermark_ms % slide
                        sub.last_eval_ms = w
                        break
                w += slide
            oldest = (sub.last_eval_ms or 0) + slide - window
            for start in [s for s in sub.buckets if s < oldest]:
                del sub.buckets[start]
            sub.samples = [s for s in sub.samples if s.get("timestamp", 0) >= oldest]
            if not sub.buckets and sub.status.quiet and not self._keeps_empty(rule, sub, watermark_ms):
                del self.subs[sub_key]
        if rule.type is RuleType.NEW_PATTERN:
            self._forget_patterns(watermark_ms)
        return events

    def _keeps_empty(self, rule: Rule, sub: Sub, now_ms: int) -> bool:
        """An empty window that satisfies the condition (``count < 5``) must keep being evaluated,
        and so must a group whose volume may drop to nothing (an anomaly rule), until it is forgotten."""
        if rule.type is RuleType.ANOMALY:
            return not sub.learnt().forgotten(now_ms)
        if rule.type is RuleType.NEW_PATTERN or rule.aggregation is Aggregation.RATE:
            return False
        return rule.holds(0.0)

    def _forget_patterns(self, now_ms: int) -> None:
        # Drain keeps a bounded number of templates per tenant; a pattern unseen for 30 days is
        # as good as new again, and forgetting it bounds the state.
        horizon = now_ms - 30 * 86_400_000
        for pid in [p for p, (_, last) in self.known.items() if last < horizon]:
            del self.known[pid]

    def _retire(self) -> list[AlertEvent]:
        events = []
        rule_id = self.key.split("\x1f")[0]
        for sub_key, sub in self.subs.items():
            if sub.status.state is State.FIRING:
                group_id = self.key + (("\x1f" + sub_key) if sub_key else "")
                end = sub.last_eval_ms or 0
                events.append(
                    AlertEvent(
                        event_id=event_id(rule_id, group_id, State.RESOLVED, end, sub.status.notified),
                        tenant=self.tenant,
                        rule_id=rule_id,
                        rule_name="",
                        revision=self.revision or 0,
                        severity="",
                        state=State.RESOLVED,
                        notify=sub.status.notified,
                        group=self._group_dict(sub_key),
                        group_id=group_id,
                        value=None,
                        comparison="",
                        threshold=0,
                        window_start_ms=end - self.window_ms,
                        window_end_ms=end,
                        since_ms=sub.status.since_ms,
                        reason="the rule was disabled or deleted",
                    )
                )
        self.subs.clear()
        self.known.clear()
        return events

    @property
    def empty(self) -> bool:
        """Nothing worth keeping: the job clears the key's state."""
        return not self.subs and not self.known

    def next_timer(self) -> int | None:
        """The next window end this key needs the watermark to pass, if any."""
        ends = [(s.last_eval_ms or 0) + self.slide_ms for s in self.subs.values()]
        return min(ends) if ends else None
