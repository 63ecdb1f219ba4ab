"""The alerts job's rules, as a matcher (the fan-out) and by id (the evaluation); how they are
held, shipped and reloaded: :mod:`jobs.rulesource`."""

from __future__ import annotations

from collections.abc import Sequence

from core.alerts.matching import RuleMatcher
from core.alerts.rules import Rule
from jobs.rulesource import PostgresSource, StaticSource
from jobs.rulesource import RuleSource as _Source


def _load(dsn: str) -> list[Rule]:
    from connectors.postgres.alerts import load_rules

    return load_rules(dsn)


class RuleSource(_Source[Rule, RuleMatcher]):
    what = "alert rules"

    @property
    def matcher(self) -> RuleMatcher:
        return self.current

    def get(self, rule_id: str) -> Rule | None:
        return self.current.rules.get(rule_id)


class StaticRules(StaticSource[Rule, RuleMatcher], RuleSource):
    def __init__(self, rules: Sequence[Rule]) -> None:
        super().__init__(RuleMatcher, Rule, rules)


class PostgresRules(PostgresSource[Rule, RuleMatcher], RuleSource):
    def __init__(self, dsn: str, refresh_s: float) -> None:
        super().__init__(RuleMatcher, _load, dsn, refresh_s)
