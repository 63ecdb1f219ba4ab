"""``/metrics`` as Prometheus scrapes it: valid for promtool, and counting ingest, search and the
collectors by route and tenant."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.collector_support import ApiServer, kafka_topic, require_stack, tenant_with_key

pytestmark = pytest.mark.integration


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


def test_metrics_pass_promtool_and_count_routes_by_tenant() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian's prometheus package; infra/system-deps.sh --test)")
    settings = require_stack()
    with (
        kafka_topic(settings) as topic,
        ApiServer(settings.model_copy(update={"raw_topic": topic, "auth_cache_s": 0.0})) as server,
        tenant_with_key(settings, scopes=("ingest", "search")) as (tenant, key),
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client,
    ):
        batch = {
            "service": "checkout",
            "logs": [{"level": "INFO", "message": f"order {i}"} for i in range(3)],
        }
        assert client.post("/v1/logs/ingest", json=batch).status_code == 202
        assert client.get("/v1/logs/search", params={"q": "order", "from": "now-1h"}).status_code == 200
        assert client.get("/v1/logs/histogram", params={"from": "now-1h"}).status_code == 200
        assert client.get("/v1/logs/no-such-id", params={"from": "now-1h"}).status_code == 404
        assert client.get("/v1/logs/search", headers={"Authorization": "Bearer nope"}).status_code == 401
        text = httpx.get(f"{server.url}/metrics", timeout=30).text

    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    samples = _samples(text)
    requests = "strata_http_requests_total"
    assert _value(samples, requests, route="/v1/logs/ingest", method="POST", status="202", tenant=tenant) == 1
    assert _value(samples, requests, route="/v1/logs/search", method="GET", status="200", tenant=tenant) == 1
    assert _value(samples, requests, route="/v1/logs/histogram", status="200", tenant=tenant) == 1
    assert _value(samples, requests, route="/v1/logs/search", status="401", tenant="-") >= 1
    # A route template, never a raw path: the label set stays bounded.
    assert _value(samples, requests, route="/v1/logs/{log_id}", status="404", tenant=tenant) == 1
    assert not [lab for n, lab, _ in samples if n == requests and "no-such-id" in lab["route"]]
    assert _value(samples, "strata_ingest_records_accepted_total", route="ingest") >= 3
    assert _value(samples, "strata_search_tier_seconds_count", tier="hot") >= 2
