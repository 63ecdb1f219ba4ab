"""From a record to the rule groups it counts in: the fan-out step before the keyed evaluation.

``RuleMatcher(rules).points(record)`` returns one :class:`Point` per (rule, group) the record
counts in. The job keys the points by :attr:`Point.key`, so each rule's group lives in its own
keyed state. Rules are indexed by tenant and service so a record is only tested against the rules
that could match it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from core.alerts.query import Predicate, compile_query
from core.alerts.rules import Aggregation, Rule, RuleType, field_value
from core.ruleindex import TenantServiceIndex
from schemas.record import Level, Record, micros

SAMPLE_MESSAGE_CHARS = 500
KEY_SEPARATOR = "\x1f"


class Point(NamedTuple):
    """One record's contribution to one (rule, group)."""

    key: str  # rule id and group values: the keyed-state key
    rule_id: str
    group: tuple[str, ...]  # values of rule.group_by, in order ("" where the record has none)
    ts_ms: int  # event time
    matched: bool  # passes the level condition too (else it only counts in a rate's denominator)
    value: str | None  # the distinct value counted, or the pattern id of a new_pattern rule
    sample: dict[str, Any] | None  # a short form of the record, for the notification


def group_key(rule_id: str, group: tuple[str, ...]) -> str:
    return KEY_SEPARATOR.join((rule_id, *group))


def sample_of(record: Record) -> dict[str, Any]:
    """What a notification shows of a matching record: enough to recognise it, no more."""
    return {
        "log_id": record.log_id,
        "timestamp": micros(record.timestamp) // 1000,
        "service": record.service,
        "host": record.host,
        "level": str(record.level),
        "message": record.message[:SAMPLE_MESSAGE_CHARS],
        "pattern_id": record.pattern_id,
        "pattern": record.pattern,
    }


@dataclass(slots=True)
class _Compiled:
    rule: Rule
    levels: frozenset[Level]
    attributes: tuple[tuple[str, str], ...]
    query: Predicate | None
    emits_unmatched: bool  # rate and new_pattern also need records that fail the level condition

    def points(self, record: Record, ts_ms: int) -> Point | None:
        for key, expected in self.attributes:
            if record.attributes.get(key) != expected:
                return None
        if self.query is not None and not self.query(record):
            return None
        matched = not self.levels or record.level in self.levels
        if not matched and not self.emits_unmatched:
            return None
        rule = self.rule
        value: str | None = None
        if rule.type is RuleType.NEW_PATTERN:
            value = record.pattern_id
            if value is None:
                return None
        elif rule.aggregation is Aggregation.COUNT_DISTINCT:
            assert rule.field is not None
            value = field_value(record, rule.field)
            if value is None:
                return None
        group = tuple(field_value(record, f) or "" for f in rule.group_by)
        return Point(
            key=group_key(rule.id, group),
            rule_id=rule.id,
            group=group,
            ts_ms=ts_ms,
            matched=matched,
            value=value,
            sample=sample_of(record) if matched else None,
        )


def _compile(rule: Rule) -> _Compiled:
    return _Compiled(
        rule=rule,
        levels=frozenset(rule.filter.levels),
        attributes=tuple(sorted(rule.filter.attributes.items())),
        query=compile_query(rule.filter.q) if rule.filter.q else None,
        emits_unmatched=rule.type is RuleType.NEW_PATTERN or rule.aggregation is Aggregation.RATE,
    )


class RuleMatcher:
    """The enabled rules, indexed for matching records against them."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._index: TenantServiceIndex[_Compiled] = TenantServiceIndex()
        self.rules: dict[str, Rule] = {}
        for rule in rules:
            if not rule.enabled:
                continue
            self.rules[rule.id] = rule
            self._index.add(rule.tenant, rule.filter.services, _compile(rule))

    def __len__(self) -> int:
        return len(self.rules)

    def points(self, record: Record) -> list[Point]:
        """Every (rule, group) ``record`` counts in; usually none."""
        candidates = self._index.candidates(record.tenant, record.service)
        if not candidates:
            return []
        ts_ms = micros(record.timestamp) // 1000
        out = []
        for compiled in candidates:
            point = compiled.points(record, ts_ms)
            if point is not None:
                out.append(point)
        return out
