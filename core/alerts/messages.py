"""What a notification says, per channel, and which state changes deserve one: pure functions.

One message covers one rule, one state and one channel: when several groups of a rule fire
together they are listed in one message instead of one each.

Webhook body (``Content-Type: application/json``)::

    {"version": 1, "state": "FIRING", "tenant": "acme",
     "rule": {"id": "r…", "name": "payment errors", "severity": "critical", "aggregation": "count",
              "comparison": ">", "threshold": 100, "window_s": 300, "slide_s": 30},
     "alerts": [{"event_id": "…", "group": {"host": "web-1"}, "value": 101.0,
                 "window": {"start": "…Z", "end": "…Z"}, "since": "…Z",
                 "samples": [{"log_id": "…", "timestamp": "…Z", "level": "ERROR", "message": "…"}],
                 "link": "http://…/v1/logs/search?q=…&from=…&to=…"}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from core.alerts.backtest import search_query
from core.alerts.evaluate import OVERFLOW_GROUP_ID, AlertEvent, State
from core.alerts.rules import Rule, RuleType
from schemas.record import format_ts, from_micros

LINK_MARGIN_MS = 0  # the link shows exactly the window the value was computed on


def iso(ms: int | None) -> str | None:
    return None if ms is None else format_ts(from_micros(ms * 1000))


# -- which transitions are recorded and sent ------------------------------------------------------


@dataclass(frozen=True)
class GroupSeen:
    """The notifier's last recorded state of a group (table alert_groups)."""

    state: str
    notified: bool
    window_end_ms: int
    event_id: str


@dataclass(frozen=True)
class Decision:
    record: bool  # write it to the history
    notify: bool  # and owe the channels a message


SKIP = Decision(False, False)


def admit(seen: GroupSeen | None, event: AlertEvent) -> Decision:
    """Whether an event from the job is news. After a restore the job may replay a transition it
    had emitted before the checkpoint it restarted from; the group's recorded state says so.

    A resolution is sent exactly when the firing it ends was sent."""
    state = event.state
    if event.group_id == OVERFLOW_GROUP_ID:  # each report of refused groups is news; none notifies
        return SKIP if seen is not None and event.event_id == seen.event_id else Decision(True, False)
    if seen is None:
        return Decision(True, event.notify and state in (State.FIRING, State.RESOLVED))
    if event.event_id == seen.event_id or event.window_end_ms < seen.window_end_ms:
        return SKIP
    if state is State.FIRING:
        if seen.state == State.FIRING:
            # Still the same firing: only the notification a cooldown held back is news.
            return Decision(True, True) if event.notify and not seen.notified else SKIP
        return Decision(True, event.notify)
    if state is State.RESOLVED:
        return Decision(True, seen.notified) if seen.state == State.FIRING else SKIP
    if state is State.PENDING:
        return SKIP if seen.state in (State.PENDING, State.FIRING) else Decision(True, False)
    return Decision(True, False) if seen.state == State.PENDING else SKIP  # OK ends a PENDING


def after(seen: GroupSeen | None, event: AlertEvent, decision: Decision) -> GroupSeen:
    """The group's recorded state once ``event`` is admitted."""
    if event.state is State.FIRING:
        notified = decision.notify or (seen is not None and seen.state == State.FIRING and seen.notified)
    else:
        notified = False
    return GroupSeen(str(event.state), notified, event.window_end_ms, event.event_id)


# -- the messages ------------------------------------------------------------------------------


def search_link(base_url: str, rule: Rule | None, event: AlertEvent) -> str:
    """A search for the records the alert counted: the rule's filter, the group, the window."""
    parts = [search_query(rule)] if rule is not None else []
    for name, value in sorted(event.group.items()):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'{name}:"{escaped}"')
    q = " AND ".join(p for p in parts if p)
    params = {"q": q, "from": iso(event.window_start_ms), "to": iso(event.window_end_ms)}
    return f"{base_url}?{urlencode({k: v for k, v in params.items() if v})}"


def _sample(sample: dict[str, Any]) -> dict[str, Any]:
    out = dict(sample)
    if isinstance(out.get("timestamp"), int):
        out["timestamp"] = iso(out["timestamp"])
    return out


def _rule_summary(rule: Rule | None, first: AlertEvent) -> dict[str, Any]:
    if rule is None:
        return {
            "id": first.rule_id,
            "name": first.rule_name,
            "severity": first.severity,
            "comparison": first.comparison,
            "threshold": first.threshold,
        }
    summary = {
        "id": rule.id,
        "name": rule.name,
        "description": rule.description,
        "type": str(rule.type),
        "severity": str(rule.severity),
        "aggregation": str(rule.aggregation),
        "field": rule.field,
        "comparison": str(rule.comparison),
        "threshold": rule.threshold,
        "window_s": rule.window,
        "slide_s": rule.slide,
        "for_evaluations": rule.for_evaluations,
        "group_by": rule.group_by,
        "filter": rule.filter.model_dump(mode="json"),
    }
    if rule.type is RuleType.ANOMALY:
        summary.update(
            direction=str(rule.direction), sensitivity=rule.sensitivity, min_history_s=rule.min_history
        )
    return summary


def webhook_body(rule: Rule | None, events: list[AlertEvent], search_url: str) -> dict[str, Any]:
    first = events[0]
    return {
        "version": 1,
        "state": str(first.state),
        "tenant": first.tenant,
        "rule": _rule_summary(rule, first),
        "alerts": [
            {
                "event_id": e.event_id,
                "group": e.group,
                "value": e.value,
                "comparison": e.comparison,
                "threshold": e.threshold,
                "window": {"start": iso(e.window_start_ms), "end": iso(e.window_end_ms)},
                "since": iso(e.since_ms),
                "samples": [_sample(s) for s in e.samples],
                "reason": e.reason,
                "link": search_link(search_url, rule, e),
            }
            for e in events
        ],
    }


def _group_text(event: AlertEvent) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(event.group.items())) or "all records"


def _line(event: AlertEvent, window_s: int | None) -> str:
    if event.state is State.RESOLVED and event.reason and (event.value is None or not event.comparison):
        # retired rule (no value), or an anomaly whose new level is being learnt (no band)
        return f"{_group_text(event)}: {event.reason}"
    value = "no data" if event.value is None else f"{event.value:g}"
    over = f" in {window_s}s" if window_s else ""
    why = f" ({event.reason})" if event.reason else ""  # an anomaly's expected value and band
    return f"{_group_text(event)}: {value} {event.comparison} {event.threshold:g}{over}{why}"


def title(rule: Rule | None, events: list[AlertEvent]) -> str:
    first = events[0]
    name = rule.name if rule is not None else first.rule_name or first.rule_id
    severity = str(rule.severity) if rule is not None else first.severity
    groups = f" ({len(events)} groups)" if len(events) > 1 else ""
    return f"[{first.state}] {name}{groups}" + (f" — {severity}" if severity else "")


def slack_body(rule: Rule | None, events: list[AlertEvent], search_url: str) -> dict[str, Any]:
    """Slack's incoming-webhook format (``text`` with mrkdwn links), also read by Mattermost."""
    icon = ":large_green_circle:" if events[0].state is State.RESOLVED else ":red_circle:"
    window_s = rule.window if rule is not None else None
    lines = [f"{icon} *{title(rule, events)}*"]
    for e in events:
        lines.append(f"• {_line(e, window_s)} (<{search_link(search_url, rule, e)}|logs>)")
        if e.samples and e.state is State.FIRING:
            lines.append(f"    > {e.samples[-1].get('message', '')[:200]}")
    return {"text": "\n".join(lines)}


def email_text(rule: Rule | None, events: list[AlertEvent], search_url: str) -> tuple[str, str]:
    """(subject, plain-text body)."""
    window_s = rule.window if rule is not None else None
    lines = [title(rule, events), ""]
    for e in events:
        lines.append(_line(e, window_s))
        lines.append(f"  window: {iso(e.window_start_ms)} to {iso(e.window_end_ms)}")
        for s in e.samples[-3:]:
            when = iso(s.get("timestamp")) or ""
            lines.append(f"  {when} {s.get('host', '')} {s.get('message', '')[:300]}")
        lines.append(f"  logs: {search_link(search_url, rule, e)}")
        lines.append("")
    return f"Strata alert: {title(rule, events)}", "\n".join(lines)
