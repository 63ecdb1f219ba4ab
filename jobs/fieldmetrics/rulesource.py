"""The field metrics job's rules, indexed by tenant and service (:class:`core.fieldmetrics.FieldRules`);
how they are held, shipped and reloaded: :mod:`jobs.rulesource`."""

from __future__ import annotations

from collections.abc import Sequence

from core.fieldmetrics import FieldRules, MetricRule
from jobs.rulesource import PostgresSource, RuleSource, StaticSource


def _load(dsn: str) -> list[MetricRule]:
    from connectors.postgres.metric_rules import load_rules

    return load_rules(dsn)


class FieldRuleSource(RuleSource[MetricRule, FieldRules]):
    what = "metric rules"

    @property
    def rules(self) -> FieldRules:
        return self.current


class StaticFieldRules(StaticSource[MetricRule, FieldRules], FieldRuleSource):
    def __init__(self, rules: Sequence[MetricRule]) -> None:
        super().__init__(FieldRules, MetricRule, rules)


class PostgresFieldRules(PostgresSource[MetricRule, FieldRules], FieldRuleSource):
    def __init__(self, dsn: str, refresh_s: float) -> None:
        super().__init__(FieldRules, _load, dsn, refresh_s)
