"""Trying a rule on past records: the replay and the search it asks the tiers for."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from core.alerts.backtest import backtest, search_query
from core.query import parse
from schemas.record import Record
from tests.unit.alert_support import T0, ms, record, rule

pytestmark = pytest.mark.unit


def test_search_query_is_valid_query_language() -> None:
    r = rule(
        filter={
            "services": ["payment-service", "auth"],
            "levels": ["ERROR", "FATAL"],
            "attributes": {"region": 'eu "west"'},
            "q": "declined OR timeout",
        }
    )
    q = search_query(r)
    assert q == (
        '(service:"auth" OR service:"payment-service") AND (level:ERROR OR level:FATAL) '
        'AND (attributes.region:"eu \\"west\\"") AND (declined OR timeout)'
    )
    parse(q)
    # a rate needs the records of every level: the levels are left out
    assert "level" not in search_query(rule(aggregation="rate", threshold=0.5))


def test_backtest_reports_when_the_rule_would_have_fired() -> None:
    past = [record(i) for i in range(0, 120, 1)]  # one error a second for two minutes
    asked: dict[str, Any] = {}

    async def fetch(
        settings: Any, tenant: str, q: str, start: datetime, end: datetime, limit: int
    ) -> tuple[list[Record], list[str]]:
        asked.update(tenant=tenant, q=q)
        return list(reversed(past)), ["hot"]

    r = rule(window="1m", slide="1m", threshold=30)
    end = datetime.fromtimestamp(ms(600) / 1000, T0.tzinfo)
    result = asyncio.run(backtest(None, r, T0, end, fetch=fetch))
    assert asked["tenant"] == "acme" and "payment-service" in asked["q"]
    assert result["records"] == 120 and result["tiers"] == ["hot"]
    assert [(e["state"], e["window_end_ms"]) for e in result["events"]] == [
        ("FIRING", ms(60)),
        ("RESOLVED", ms(180)),
    ]
