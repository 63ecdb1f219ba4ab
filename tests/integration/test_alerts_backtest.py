"""POST /v1/alerts/rules/{id}/test: a rule tried on past logs read from the real search tiers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from schemas.record import Level, Record, format_ts
from tests.integration.collector_support import ApiServer, require_stack, tenant_with_key
from tests.integration.search_support import loaded_tiers

pytestmark = pytest.mark.integration


def burst(tenant: str, start: datetime, count: int, level: str = "ERROR") -> list[Record]:
    out = []
    for i in range(count):
        ts = start + timedelta(seconds=i)
        out.append(
            Record(
                log_id=hashlib.blake2b(f"{tenant}{ts}{level}{i}".encode(), digest_size=16).hexdigest(),
                tenant=tenant,
                timestamp=ts,
                ingested_at=ts,
                level=Level(level),
                service="payment-service",
                host="web-1",
                environment=None,
                region=None,
                message=f"payment failed {i}",
                trace_id=None,
                span_id=None,
                source_format="json",
            )
        )
    return out


def test_a_rule_tried_on_past_logs_says_when_it_would_have_fired() -> None:
    base = require_stack()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    hot_burst = (now - timedelta(days=2)).replace(minute=0)  # in OpenSearch
    warm_burst = (now - timedelta(days=20)).replace(minute=0)  # in Cassandra
    with tenant_with_key(base) as (tenant, key):
        records = burst(tenant, hot_burst, 40) + burst(tenant, warm_burst, 40)
        records += burst(tenant, hot_burst + timedelta(minutes=10), 50, level="INFO")
        with (
            loaded_tiers(base, records, now) as loaded,
            # a busy machine may take a while to answer; this test is about the answer
            ApiServer(loaded.settings.model_copy(update={"search_tier_timeout_s": 60.0})) as api,
            httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        ):
            rule = http.post(
                "/v1/alerts/rules",
                json={
                    "name": "payment errors",
                    "filter": {"services": ["payment-service"], "levels": ["ERROR"]},
                    "window": "1m",
                    "threshold": 30,
                },
            ).json()
            response = http.post(
                f"/v1/alerts/rules/{rule['id']}/test",
                json={"from": format_ts(now - timedelta(days=30)), "to": format_ts(now)},
            )
            assert response.status_code == 200, response.text
            result = response.json()
            assert result["records"] == 80
            assert {"hot", "warm"} <= set(result["tiers"])
            fired = [(e["state"], e["window_end_ms"]) for e in result["events"]]

            def end_ms(t: datetime) -> int:
                return int(t.timestamp() * 1000)

            assert fired == [
                ("FIRING", end_ms(warm_burst + timedelta(minutes=1))),
                ("RESOLVED", end_ms(warm_burst + timedelta(minutes=2))),
                ("FIRING", end_ms(hot_burst + timedelta(minutes=1))),
                ("RESOLVED", end_ms(hot_burst + timedelta(minutes=2))),
            ]
            missing = http.post("/v1/alerts/rules/nope/test", json={"from": format_ts(now)})
            assert missing.status_code == 404
