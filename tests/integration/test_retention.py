"""Retention end to end: a tenant's override through the API, searches that stop offering what is
past it at once, and ``strata retention apply`` deleting it from every tier, logged, while another
tenant's data stays."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cassandra.cluster import Cluster
from opensearchpy import OpenSearch

from api.deps import RetentionPolicies
from connectors.s3.client import s3_client
from infra.settings import Settings
from tests.integration.collector_support import ApiServer, require_stack, tenant_with_key
from tests.integration.search_support import loaded_tiers, make_records, now_utc

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)


def _archive_days(settings, tenant: str) -> set[str]:  # type: ignore[no-untyped-def]
    client = s3_client(settings)
    prefix = f"{settings.archive_prefix}/tenant={tenant}/"
    found = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.s3_bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found.add(obj["Key"][len(prefix) :].split("/")[0].removeprefix("dt="))
    return found


def _hot_count(os_client: OpenSearch, settings, tenant: str, before: str) -> int:  # type: ignore[no-untyped-def]
    os_client.indices.refresh(index=f"{settings.opensearch_index_prefix}-*")
    query = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"range": {"timestamp": {"lt": before}}}]}}
    return int(os_client.count(index=f"{settings.opensearch_index_prefix}-*", body={"query": query})["count"])


def _warm_days(session, settings, tenant: str) -> set[str]:  # type: ignore[no-untyped-def]
    rows = session.execute(
        f'SELECT "tenant", "day" FROM {settings.cassandra_keyspace}.{settings.cassandra_table}_services'
    )
    return {row.day for row in rows if row.tenant == tenant}


def _strata(settings, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update(
        STRATA_OPENSEARCH_INDEX_PREFIX=settings.opensearch_index_prefix,
        STRATA_CASSANDRA_KEYSPACE=settings.cassandra_keyspace,
        STRATA_ARCHIVE_PREFIX=settings.archive_prefix,
    )
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "retention", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _metric_docs(client: OpenSearch, s: Settings, tenants: tuple[str, ...], at: datetime) -> str:
    """One minute of log metrics per tenant at ``at``, as the ingest job writes it; the index."""
    from connectors.opensearch.metrics import ensure_template, metrics_index
    from core.metrics import index_suffix

    ensure_template(client, s.opensearch_index_prefix)
    bucket = int(at.timestamp()) // 60 * 60
    index = metrics_index(s.opensearch_index_prefix, index_suffix("1m", bucket))
    for tenant in tenants:
        doc = {"tenant": tenant, "service": "api", "level": "INFO", "pattern": "_none", "host": "h"}
        client.index(index=index, id=tenant, body={**doc, "bucket": bucket, "count": 3, "bytes": 99})
    client.indices.refresh(index=index)
    return index


def _metric_count(client: OpenSearch, index: str, tenant: str) -> int:
    return int(client.count(index=index, body={"query": {"term": {"tenant": tenant}}})["count"])


def test_a_tenants_retention_is_honoured_by_search_and_applied_to_every_tier() -> None:
    base = require_stack()
    now = now_utc()
    rng = random.Random(7)
    with (
        tenant_with_key(base, scopes=("search", "admin")) as (short, short_key),
        tenant_with_key(base, scopes=("search", "admin")) as (other, other_key),
    ):
        records = make_records(short, 300, now, rng) + make_records(other, 300, now, rng)
        with loaded_tiers(base, records, now) as loaded:
            settings = loaded.settings
            os_client = OpenSearch(settings.opensearch_endpoint, timeout=60)
            stale_index = f"{settings.opensearch_index_prefix}-{now - 20 * DAY:%Y.%m.%d}"
            stale_doc = {"tenant": "t-stale", "timestamp": f"{now - 20 * DAY:%Y-%m-%dT%H:%M:%SZ}"}
            os_client.index(index=stale_index, id="stale", body=stale_doc, refresh=True)

            def search(key: str) -> list[dict]:  # type: ignore[type-arg]
                params = {"from": "now-90d", "limit": 1000}
                answer = client.get(
                    "/v1/logs/search", params=params, headers={"Authorization": f"Bearer {key}"}
                )
                assert answer.status_code == 200, answer.text
                return answer.json()["logs"]

            with ApiServer(settings) as server, httpx.Client(base_url=server.url, timeout=120) as client:
                admin = {"Authorization": f"Bearer {short_key}"}
                oldest = min(r["timestamp"] for r in search(short_key))
                assert oldest < f"{now - 60 * DAY:%Y-%m-%d}"  # the archive answers before any override

                refused = client.put("/v1/retention", json={"hot_days": 99}, headers=admin)
                assert refused.status_code == 400 and "hot_days must be between 0 and 14" in refused.text
                days = {"hot_days": 2, "warm_days": 20, "archive_days": 30, "metrics_1m_days": 7}
                put = client.put("/v1/retention", json=days, headers=admin)
                assert put.status_code == 200, put.text
                assert put.json()["retention"] == {
                    **days,
                    "metrics_1h_days": settings.metrics_1h_days,
                    "metrics_1d_days": settings.metrics_1d_days,
                }
                assert put.json()["defaults"]["archive_days"] == settings.archive_days

                # Searches stop offering what is past it at once (within the policy cache), swept or not.
                time.sleep(RetentionPolicies.CACHE_S + 0.5)
                cutoff = now - 30 * DAY
                kept = sorted(r.log_id for r in records if r.tenant == short and r.timestamp >= cutoff)
                assert sorted(r["log_id"] for r in search(short_key)) == kept
                assert len(search(other_key)) == 300  # another tenant keeps the defaults

                listed = _strata(settings, "apply", "--dry-run")
                assert listed.returncode == 0, listed.stderr
                assert f"tenant={short}/dt=" in listed.stdout and f"tenant={other}/" not in listed.stdout
                assert stale_index in listed.stdout
                days_before = _archive_days(settings, short)
                assert days_before == {f"{r.timestamp:%Y-%m-%d}" for r in records if r.tenant == short}

                hot_cut = f"{(now - 2 * DAY).date()}T00:00:00Z"
                short_hot_before = _hot_count(os_client, settings, short, hot_cut)
                other_hot_before = _hot_count(os_client, settings, other, hot_cut)
                assert short_hot_before > 0

                metric_docs = _metric_docs(os_client, settings, (short, other), now - 10 * DAY)

                applied = _strata(settings, "apply")
                assert applied.returncode == 0, applied.stdout + applied.stderr

                keep_from = f"{(now - 30 * DAY).date()}"
                assert _archive_days(settings, short) == {d for d in days_before if d >= keep_from}
                assert _archive_days(settings, other) == {
                    f"{r.timestamp:%Y-%m-%d}" for r in records if r.tenant == other
                }
                assert not os_client.indices.exists(index=stale_index)
                assert _hot_count(os_client, settings, short, hot_cut) == 0
                assert _hot_count(os_client, settings, other, hot_cut) == other_hot_before
                os_client.indices.refresh(index=metric_docs)
                assert _metric_count(os_client, metric_docs, short) == 0
                assert _metric_count(os_client, metric_docs, other) == 1
                os_client.indices.delete(index=metric_docs)
                cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
                try:
                    session = cluster.connect()
                    warm_keep = f"{(now - 20 * DAY).date()}"
                    assert _warm_days(session, settings, short)
                    assert min(_warm_days(session, settings, short)) >= warm_keep
                    assert min(_warm_days(session, settings, other)) < warm_keep
                finally:
                    cluster.shutdown()

                log = client.get("/v1/retention/log", headers=admin)
                assert log.status_code == 200
                tiers = {(e["tier"], e["dry_run"]) for e in log.json()}
                assert {("hot", False), ("warm", False), ("cold", False), ("cold", True)} <= tiers
                assert all(e["tenant"] == short and e["reason"] for e in log.json())
                assert sorted(r["log_id"] for r in search(short_key)) == kept  # nothing kept was deleted
