"""Alert rules: what the API refuses, and which records a rule counts in which group."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.alerts.matching import RuleMatcher
from core.alerts.rules import RuleSpec
from tests.unit.alert_support import record, rule

pytestmark = pytest.mark.unit


def refused(spec: dict) -> str:
    with pytest.raises(ValidationError) as info:
        RuleSpec.model_validate({"name": "r", "threshold": 1, **spec})
    return str(info.value)


def test_seed_rule_reads_as_written() -> None:
    spec = RuleSpec.model_validate(
        {
            "name": "payment errors",
            "filter": {"services": ["Payment-Service"], "levels": ["error"]},
            "window": "5m",
            "slide": "30s",
            "threshold": 100,
            "channels": [
                {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
                {"type": "email", "to": ["a@b.c"]},
            ],
        }
    )
    assert (spec.window, spec.slide, spec.cooldown) == (300, 30, 300)
    assert spec.filter.services == ["payment-service"]
    assert spec.monotone


def test_slide_defaults_to_a_minute_or_the_window() -> None:
    assert RuleSpec.model_validate({"name": "r", "window": "10m"}).slide == 60
    assert RuleSpec.model_validate({"name": "r", "window": 20}).slide == 20


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"treshold": 5}, "treshold"),
        ({"group_by": ["hostname"]}, "unknown field 'hostname'"),
        ({"window": 60, "slide": 120}, "cannot be longer than the window"),
        ({"window": 100, "slide": 30}, "whole multiple"),
        ({"window": "2d"}, "between 1s and 86400s"),
        ({"window": 86400, "slide": 1}, "at most 1440 slides"),
        ({"window": "5 minutes"}, "not a duration"),
        ({"aggregation": "count_distinct"}, "needs 'field'"),
        ({"aggregation": "count_distinct", "field": "nope"}, "unknown field 'nope'"),
        ({"aggregation": "rate", "threshold": 0.1}, "needs filter.levels"),
        ({"aggregation": "rate", "filter": {"levels": ["ERROR"]}, "threshold": 5}, "between 0 and 1"),
        ({"filter": {"q": 'service:"unclosed'}}, "q"),
        ({"channels": [{"type": "pager", "url": "http://x"}]}, "pager"),
        ({"channels": [{"type": "webhook", "url": "ftp://x"}]}, "url"),
        ({"type": "new_pattern", "group_by": ["host"]}, "groups by service and pattern"),
    ],
)
def test_impossible_rules_are_refused_with_the_reason(spec: dict, message: str) -> None:
    assert message in refused(spec)


def test_new_pattern_defaults_to_errors_per_service() -> None:
    spec = RuleSpec.model_validate({"name": "new errors", "type": "new_pattern", "threshold": 3})
    assert spec.filter.levels == ["ERROR"]
    assert spec.group_by == ["service"]


def test_matcher_counts_only_the_tenants_matching_records() -> None:
    r = rule(
        group_by=["host"],
        filter={
            "services": ["payment-service"],
            "levels": ["ERROR"],
            "attributes": {"region": "eu"},
            "q": "declined",
        },
    )
    matcher = RuleMatcher([r])
    hit = record(1, host="web-2", attributes={"region": "eu"})
    (point,) = matcher.points(hit)
    assert point.group == ("web-2",) and point.matched
    assert point.sample is not None and point.sample["log_id"] == hit.log_id
    assert matcher.points(record(1, tenant="other", attributes={"region": "eu"})) == []
    assert matcher.points(record(1, service="auth", attributes={"region": "eu"})) == []
    assert matcher.points(record(1, level="WARN", attributes={"region": "eu"})) == []
    assert matcher.points(record(1, attributes={"region": "us"})) == []
    assert matcher.points(record(1, attributes={"region": "eu"}, message="timeout")) == []


def test_rate_rules_see_every_level_and_disabled_rules_nothing() -> None:
    rate = rule(aggregation="rate", threshold=0.5)
    off = rule(id="r2", enabled=False)
    matcher = RuleMatcher([rate, off])
    (point,) = matcher.points(record(1, level="INFO"))
    assert point.rule_id == "r1" and not point.matched and point.sample is None


def test_count_distinct_skips_records_without_the_field() -> None:
    r = rule(aggregation="count_distinct", field="attributes.user", threshold=3)
    matcher = RuleMatcher([r])
    assert matcher.points(record(1)) == []
    (point,) = matcher.points(record(1, attributes={"user": "u1"}))
    assert point.value == "u1"
