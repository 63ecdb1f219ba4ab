"""Trying a rule on past logs: read the range from the search tiers, replay it through AlertEngine.

The replay is the job's own logic (:class:`core.alerts.engine.AlertEngine`), in event-time order
with no lateness, so "would have fired at" means what the live job would have done had it seen
those records. Cooldown and ``for`` apply as they would live.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from core.alerts.engine import AlertEngine
from core.alerts.rules import Aggregation, Rule, RuleType
from schemas.record import Record

MAX_RECORDS = 1_000_000

# (settings, tenant, q, start, end, limit) -> (records, names of the tiers that answered)
Fetch = Callable[[Any, str, str, datetime, datetime, int], Awaitable[tuple[list[Record], list[str]]]]


class BacktestUnavailable(RuntimeError):
    """The search tiers did not answer, so the rule cannot be tried on the range."""


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_query(rule: Rule) -> str:
    """The search (``q``) that returns every record the rule looks at.

    Rate and new_pattern rules also need the records that fail the level condition (the rate's
    denominator, the patterns already known), so the levels are left out for them.

    >>> search_query(rule)   # services [payment-service], levels [ERROR], q 'timeout'
    '(service:"payment-service") AND (level:ERROR) AND (timeout)'
    """
    parts = []
    f = rule.filter
    if f.services:
        parts.append(" OR ".join(f"service:{_quote(s)}" for s in f.services))
    keeps_levels = rule.type is not RuleType.NEW_PATTERN and rule.aggregation is not Aggregation.RATE
    if f.levels and keeps_levels:
        parts.append(" OR ".join(f"level:{level}" for level in f.levels))
    for key, value in sorted(f.attributes.items()):
        parts.append(f"attributes.{key}:{_quote(value)}")
    if f.q:
        parts.append(f.q)
    return " AND ".join(f"({p})" for p in parts)


async def backtest(
    settings: Any, rule: Rule, start: datetime, end: datetime, *, fetch: Fetch
) -> dict[str, Any]:
    """When ``rule`` would have fired and resolved between ``start`` and ``end``; ``fetch`` reads
    the records of a search (the API passes the search tiers' reader)."""
    records, tiers = await fetch(settings, rule.tenant, search_query(rule), start, end, MAX_RECORDS)
    records.sort(key=lambda r: r.timestamp)
    engine = AlertEngine([rule.model_copy(update={"enabled": True})], lateness_ms=0)
    events = []
    matched = 0
    for record in records:
        points = engine.matcher.points(record)
        matched += bool(points)
        for point in points:
            events += engine.add_point(point)
        events += engine.process_time(record)
    events += engine.finish(int(end.timestamp() * 1000))
    return {"records": matched, "tiers": tiers, "events": [e.to_dict() for e in events]}
