"""The alerting job's logic in one process, without Flink: records in, alert events out.

The Flink job spreads this over keyed state and event-time timers; :class:`AlertEngine` does the
same with a dict and a watermark it computes itself. It serves rule tests over past records
(``POST /v1/alerts/rules/{id}/test``) and the unit tests, and it is the reference the job's
output is compared with::

    engine = AlertEngine([rule], lateness_ms=5_000)
    for record in records:                       # in roughly event-time order
        events += engine.process(record)
    events += engine.finish()                     # close every window still open
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from core.alerts.evaluate import AlertEvent, GroupEvaluator
from core.alerts.matching import Point, RuleMatcher
from core.alerts.rules import Rule
from schemas.record import Record


class AlertEngine:
    def __init__(self, rules: Iterable[Rule], lateness_ms: int = 0) -> None:
        self.matcher = RuleMatcher(rules)
        self.lateness_ms = lateness_ms
        self.groups: dict[str, GroupEvaluator] = {}
        self.watermark_ms: int | None = None
        self._max_ts: int | None = None
        self._timers: list[tuple[int, str]] = []

    def set_rules(self, rules: Iterable[Rule]) -> None:
        self.matcher = RuleMatcher(rules)

    def _schedule(self, ev: GroupEvaluator) -> None:
        nxt = ev.next_timer()
        if nxt is not None and nxt != ev.timer_ms:
            ev.timer_ms = nxt
            heapq.heappush(self._timers, (nxt, ev.key))

    def add_point(self, point: Point) -> list[AlertEvent]:
        rule = self.matcher.rules[point.rule_id]
        ev = self.groups.get(point.key)
        if ev is None:
            ev = self.groups[point.key] = GroupEvaluator(point.key, rule.tenant, point.group, rule.group_by)
        events = ev.add(rule, point, self.watermark_ms)
        self._schedule(ev)
        return events

    def process(self, record: Record) -> list[AlertEvent]:
        """Count ``record`` in every rule it matches, then move the watermark on."""
        events: list[AlertEvent] = []
        for point in self.matcher.points(record):
            events += self.add_point(point)
        return events + self.process_time(record)

    def process_time(self, record: Record) -> list[AlertEvent]:
        """Move the watermark on for ``record`` (every record does, matching a rule or not)."""
        events: list[AlertEvent] = []
        ts = int(record.timestamp.timestamp() * 1000)
        if self._max_ts is None or ts > self._max_ts:
            self._max_ts = ts
            events += self.advance_watermark(ts - self.lateness_ms)
        return events

    def advance_watermark(self, watermark_ms: int) -> list[AlertEvent]:
        """Fire every timer at or before ``watermark_ms``, in time order, as Flink does."""
        if self.watermark_ms is not None and watermark_ms <= self.watermark_ms:
            return []
        self.watermark_ms = watermark_ms
        events: list[AlertEvent] = []
        while self._timers and self._timers[0][0] <= watermark_ms:
            at, key = heapq.heappop(self._timers)
            ev = self.groups.get(key)
            if ev is None or ev.timer_ms != at:
                continue  # superseded
            ev.timer_ms = None
            rule = self.matcher.rules.get(key.split("\x1f", 1)[0])
            events += ev.advance(rule, at)
            if ev.empty:
                del self.groups[key]
            else:
                self._schedule(ev)
        return events

    def finish(self, until_ms: int | None = None) -> list[AlertEvent]:
        """Close the windows open at the end of the input (up to ``until_ms`` when given)."""
        if until_ms is None:
            if self._max_ts is None:
                return []
            until_ms = self._max_ts
        return self.advance_watermark(until_ms)
