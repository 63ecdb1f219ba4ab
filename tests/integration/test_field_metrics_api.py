"""``/v1/metrics/logs?rule=…&stat=…`` against the real API, PostgreSQL and OpenSearch: a rule's stored
sketch contributions merged per step, scoped to the tenant, bad parameters refused."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from core.fieldmetrics import Measurement, RuleAccumulator
from core.metrics import DictStore
from core.sketch import RELATIVE_ACCURACY
from infra.settings import Settings
from tests.integration.collector_support import ApiServer, tenant_with_key
from tests.integration.ingest_support import now_utc

pytestmark = pytest.mark.integration


def _write(client: Any, prefix: str, docs: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str]]:
    from connectors.opensearch.field_metrics import ensure_field_template, field_metrics_index

    ensure_field_template(client, prefix)
    body: list[dict[str, Any]] = []
    for doc_id, suffix, doc in docs:
        body += [{"index": {"_index": field_metrics_index(prefix, suffix), "_id": doc_id}}, doc]
    answer = client.bulk(body=body, refresh="true")
    assert not answer["errors"], answer
    return [(field_metrics_index(prefix, s), doc_id) for doc_id, s, _ in docs]


def test_a_rule_s_stats_per_step_from_its_contributions(api: ApiServer, stack: Settings) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(stack.opensearch_endpoint, timeout=60)
    prefix = stack.opensearch_index_prefix
    now = int(now_utc().timestamp())
    hour = now - now % 3600 - 3600  # the last whole hour
    rnd = random.Random(3)
    with (
        tenant_with_key(stack, scopes=("admin", "search")) as (mine, key),
        tenant_with_key(stack, scopes=("admin", "search")) as (theirs, their_key),
    ):
        http = httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60)
        rule = http.post("/v1/metrics/rules", json={"name": "latency", "field": "latency"}).json()
        theirs_rule = httpx.post(
            f"{api.url}/v1/metrics/rules",
            headers={"X-API-Key": their_key},
            json={"name": "latency", "field": "latency"},
        ).json()
        values = {
            "checkout": [rnd.lognormvariate(4, 1) for _ in range(900)],
            "search": [rnd.lognormvariate(2, 0.5) for _ in range(300)],
        }
        # two accumulators: contributions of two runs (a replay) add up
        runs = [RuleAccumulator(DictStore(), DictStore()) for _ in range(2)]
        offset = 0
        for service, vs in values.items():
            for i, v in enumerate(vs):
                m = Measurement(rule["id"], service, "INFO", hour + (i * 7) % 3600, v)
                runs[i % 2].add(m, 0, offset, 1000)
                offset += 1
        docs = [d for acc in runs for d in acc.flush(mine, rule["id"])]
        other = RuleAccumulator(DictStore(), DictStore())
        other.add(Measurement(theirs_rule["id"], "checkout", "INFO", hour + 5, 1e9), 0, 0, 1000)
        written = _write(client, prefix, docs + other.flush(theirs, theirs_rule["id"]))
        try:

            def get(**params: Any) -> httpx.Response:
                return http.get("/v1/metrics/logs", params={"from": "now-3h", "rule": rule["id"], **params})

            everything = sorted(v for vs in values.values() for v in vs)
            for step in ("1m", "1h"):
                body = get(step=step, stat="count").json()
                assert body["rule"]["name"] == "latency" and body["stat"] == "count"
                assert sum(p[1] for s in body["series"] for p in s["points"]) == len(everything)
            by_hour = {
                stat: get(step="1h", stat=stat).json()["series"][0]["points"]
                for stat in ("count", "sum", "min", "max", "avg", "p50", "p99")
            }
            assert by_hour["count"] == [[hour, len(everything)]]
            assert by_hour["sum"][0][1] == pytest.approx(sum(everything))
            assert (by_hour["min"][0][1], by_hour["max"][0][1]) == (everything[0], everything[-1])
            assert by_hour["avg"][0][1] == pytest.approx(sum(everything) / len(everything))
            for stat, q in (("p50", 0.5), ("p99", 0.99)):
                want = everything[int(q * (len(everything) - 1))]
                assert abs(by_hour[stat][0][1] - want) <= RELATIVE_ACCURACY * want * 1.0001
            # the hour read from minutes (step 1h reads the hour rollup; 15m the minutes)
            quarters = get(step="15m", stat="max").json()["series"][0]["points"]
            assert max(v for _, v in quarters) == everything[-1] and len(quarters) == 4

            grouped = get(step="1h", stat="max", group_by="service").json()["series"]
            assert [(s["labels"]["service"], s["points"][0][1]) for s in grouped] == [
                ("checkout", max(values["checkout"])),
                ("search", max(values["search"])),
            ]
            only = get(step="1h", stat="count", service="search").json()["series"]
            assert only == [{"labels": {}, "points": [[hour, 300.0]]}]
            by_name = http.get(
                "/v1/metrics/logs", params={"from": "now-3h", "rule": "latency", "step": "1h", "stat": "max"}
            ).json()
            assert by_name["series"][0]["points"][0][1] < 1e9, "another tenant's values leaked"

            for params, status, message in (
                ({"stat": "p42"}, 400, "stat 'p42' is not one of"),
                ({"group_by": "host"}, 400, "group by service or level"),
                ({"rule": "nope"}, 404, "no metric rule 'nope'"),
                ({"rule": theirs_rule["id"]}, 404, "no metric rule"),
            ):
                r = get(step="1h", **params)
                assert r.status_code == status and message in r.text, (params, r.text)
            r = http.get("/v1/metrics/logs", params={"stat": "p99"})
            assert r.status_code == 400 and "name the rule with rule=" in r.text
        finally:
            # the indices are the stack's own: only this test's documents go
            client.bulk(body=[{"delete": {"_index": i, "_id": d}} for i, d in written], refresh="true")


def test_rule_metrics_are_dropped_and_trimmed_by_the_metrics_retention(stack: Settings, unique_name) -> None:
    from opensearchpy import OpenSearch

    from connectors.opensearch.field_metrics import (
        FieldMetricsStore,
        ensure_field_template,
        field_metrics_index,
        field_metrics_pattern,
        fields_prefix,
    )
    from core.metrics import index_suffix
    from core.retention import Retention

    client = OpenSearch(stack.opensearch_endpoint, timeout=60)
    prefix = unique_name("fmret").lower().replace("_", "-")
    ensure_field_template(client, prefix)
    today = now_utc().date()
    old = int(now_utc().timestamp()) - 40 * 86400  # in the index of another month than today's
    recent = int(now_utc().timestamp()) - 3600
    ancient = field_metrics_index(prefix, "1m-2020.01")
    try:
        for tenant, bucket, index in (
            ("short", old, field_metrics_index(prefix, index_suffix("1m", old - old % 60))),
            ("short", recent, field_metrics_index(prefix, index_suffix("1m", recent - recent % 60))),
            ("long", old, field_metrics_index(prefix, index_suffix("1m", old - old % 60))),
            ("long", 1_578_000_000, ancient),
        ):
            acc = RuleAccumulator(DictStore(), DictStore())
            acc.add(Measurement("m1", "api", "INFO", bucket, 5.0), 0, bucket, 0)
            for doc_id, suffix, doc in acc.flush(tenant, "m1"):
                if suffix.startswith("1m"):
                    client.index(index=index, id=doc_id, body=doc, refresh="true")
        store = FieldMetricsStore(client, prefix)
        defaults = Retention(7, 45, 365)  # minutes kept 90 days
        plan = store.plan(today, defaults, {"short": Retention(7, 45, 365, metrics_1m_days=30)})
        drops = [d.target for d in plan if d.tenant is None]
        trims = [d for d in plan if d.tenant == "short"]
        assert drops == [ancient]
        assert len(trims) == 1 and trims[0].records == 1 and fields_prefix(prefix) in trims[0].target
        for deletion in plan:
            store.delete(deletion)
        client.indices.refresh(index=field_metrics_pattern(prefix))
        left = client.search(index=field_metrics_pattern(prefix), body={"size": 10})["hits"]["hits"]
        assert sorted((h["_source"]["tenant"], h["_source"]["bucket"] < recent - 3600) for h in left) == [
            ("long", True),
            ("short", False),
        ]
    finally:
        client.indices.delete(index=field_metrics_pattern(prefix), ignore=[404])
        client.indices.delete_index_template(name=fields_prefix(prefix), ignore=[404])
