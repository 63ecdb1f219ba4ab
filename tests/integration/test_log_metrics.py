"""Log metrics end to end: the real ingest job counts, ``/v1/metrics/logs`` answers, and its counts
equal the search API's counts of the same records over the tiers, and the records themselves,
after a kill and a restart from the checkpoint and after a replay from earliest."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import Settings
from schemas.record import Record
from tests.integration.collector_support import ApiServer, tenant_with_key
from tests.integration.ingest_support import (
    Expected,
    Job,
    Run,
    archive_ids,
    committed_lag,
    completed_checkpoints,
    isolated_run,
    messages,
    now_utc,
    produce,
    running,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_S = 240
CATCH_UP_S = 300
DAY = 86400
STEP_S = {"1m": 60, "1h": 3600, "1d": DAY}


@pytest.fixture
def run(stack: Settings, require, unique_name, tmp_path: Path) -> Iterator[Run]:
    require("kafka", "opensearch", "cassandra", "s3")
    with isolated_run(stack, unique_name("metrics").lower(), tmp_path) as r:
        yield r
        from opensearchpy import OpenSearch

        from connectors.opensearch.metrics import drop_metrics

        drop_metrics(OpenSearch(stack.opensearch_endpoint), r.settings.opensearch_index_prefix)


@pytest.fixture
def tenant(stack: Settings) -> Iterator[tuple[str, str]]:
    with tenant_with_key(stack, scopes=("search",)) as pair:
        yield pair


class Views:
    """What a dashboard and a searcher see through the API, for one tenant."""

    def __init__(self, api: ApiServer, key: str, now: datetime) -> None:
        self.http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        self.now = now

    def start(self, since: timedelta, step_s: int) -> str:
        """``since`` ago, at a step boundary: both APIs then cover whole buckets."""
        t = int((self.now - since).timestamp())
        return datetime.fromtimestamp(t - t % step_s, UTC).isoformat()

    def metrics(self, step: str, since: timedelta, **params: Any) -> Counter[tuple[int, str]]:
        r = self.http.get(
            "/v1/metrics/logs",
            params={
                "step": step,
                "group_by": "level",
                "from": self.start(since, STEP_S[step]),
                "to": (self.now + timedelta(minutes=2)).isoformat(),
                **params,
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body["truncated"]
        return Counter({(t, s["labels"]["level"]): v for s in body["series"] for t, v in s["points"]})

    def histogram(self, interval: str, since: timedelta) -> Counter[tuple[int, str]]:
        r = self.http.get(
            "/v1/logs/histogram",
            params={
                "interval": interval,
                "from": self.start(since, STEP_S[interval]),
                "to": (self.now + timedelta(minutes=2)).isoformat(),
            },
        )
        assert r.status_code == 200, r.text
        out: Counter[tuple[int, str]] = Counter()
        for bucket in r.json()["buckets"]:
            start = int(datetime.fromisoformat(bucket["start"]).timestamp())
            for level, n in bucket["levels"].items():
                out[(start, level)] += n
        return out


def _by_step(records: list[Record], step_s: int, since: datetime) -> Counter[tuple[int, str]]:
    since_s = int(since.timestamp())
    since_s -= since_s % step_s
    out: Counter[tuple[int, str]] = Counter()
    for r in records:
        if r.timestamp.timestamp() >= since_s:
            t = int(r.timestamp.timestamp())
            out[(t - t % step_s, str(r.level))] += 1
    return out


def _assert_metrics_exact(views: Views, expected: Expected) -> None:
    records = list(expected.records.values())
    now = views.now
    # Days over every tier (the oldest records are 60 days old: archive only), then minutes of the
    # last two hours (hot).
    seen: list[tuple[int, int, int]] = []
    recent = sum(_by_step(records, 60, now - timedelta(hours=2)).values())

    def all_counted() -> bool:
        # Each resolution has its own indices, refreshed on their own schedule: wait until all
        # three show the last checkpoint's writes.
        seen.append(
            (
                sum(views.metrics("1d", timedelta(days=70)).values()),
                sum(views.metrics("1h", timedelta(days=70)).values()),
                sum(views.metrics("1m", timedelta(hours=2)).values()),
            )
        )
        return all(n >= want for n, want in zip(seen[-1], (len(records), len(records), recent), strict=True))

    try:
        wait_for(all_counted, 120, f"the metrics of {len(records)} records (written at checkpoints)")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the totals seen, last first: {seen[::-1][:5]}") from None
    days = views.metrics("1d", timedelta(days=70))
    assert sum(days.values()) == len(records), "each record counted exactly once"
    assert days == _by_step(records, DAY, now - timedelta(days=70))
    assert days == views.histogram("1d", timedelta(days=70)), "metrics and the search API disagree"

    minutes = views.metrics("1m", timedelta(hours=2))
    assert minutes == _by_step(records, 60, now - timedelta(hours=2))
    assert minutes == views.histogram("1m", timedelta(hours=2))
    assert sum(views.metrics("1h", timedelta(days=70)).values()) == len(records)

    size = sum(len(r.message.encode()) for r in records)
    assert sum(views.metrics("1d", timedelta(days=70), metric="bytes").values()) == size


def test_metrics_equal_the_search_counts_after_a_restart_and_a_replay(
    run: Run, tenant: tuple[str, str]
) -> None:
    s = run.settings
    tenant_id, key = tenant
    now = now_utc()
    expected = Expected()
    batch = messages(30_000, now, seed=7, tenant=tenant_id)
    produce(s, s.raw_topic, batch)
    expected.add(batch, now, s)

    with running(Job(run, label="first")) as first:
        wait_for(lambda: archive_ids(s), START_S, "a first checkpoint", alive=first.check_running)
        assert completed_checkpoints(run)
        # The job may have read the whole first batch by its first checkpoint: more messages, and
        # the kill lands while it counts them, between two checkpoints.
        more = messages(20_000, now, seed=9, tenant=tenant_id)
        produce(s, s.raw_topic, more)
        expected.add(more, now, s)
        time.sleep(2)
        archived = len(set(archive_ids(s)))
        first.kill()
    print(f"killed with {archived} of {len(expected.records)} records archived")
    assert archived < len(expected.records), "the kill must land mid-run, or the restart proves nothing"

    with ApiServer(s) as api:
        views = Views(api, key, now)
        with running(Job(run, label="second")) as second:
            wait_for(
                lambda: committed_lag(s, s.raw_topic) == 0,
                CATCH_UP_S,
                "the job to commit every offset",
                alive=second.check_running,
            )
            _assert_metrics_exact(views, expected)
            assert second.stop() is not None
        assert "resuming from" in second.log.read_text()

        # New messages, then a replay of everything with new state: the replayed messages must
        # not count again, the new ones must count once.
        new = messages(2_000, now, seed=8, tenant=tenant_id)
        produce(s, s.raw_topic, new)
        expected.add(new, now, s)
        replay = Job(run, "--from", "earliest", "--bounded", "--fresh", label="replay").start()
        assert replay.wait(START_S + CATCH_UP_S) == 0, replay.tail()
        _assert_metrics_exact(views, expected)


def test_the_endpoint_is_scoped_to_the_tenant_and_refuses_bad_parameters(
    api: ApiServer, stack: Settings
) -> None:
    from opensearchpy import OpenSearch

    from connectors.opensearch.metrics import ensure_template, metrics_index
    from core.metrics import index_suffix

    client = OpenSearch(stack.opensearch_endpoint, timeout=60)
    ensure_template(client, stack.opensearch_index_prefix)
    now = int(now_utc().timestamp())
    minute = now - now % 60 - 600
    with (
        tenant_with_key(stack, scopes=("search",)) as (mine, key),
        tenant_with_key(stack, scopes=("search",)) as (theirs, _),
    ):
        index = metrics_index(stack.opensearch_index_prefix, index_suffix("1m", minute))
        docs = {
            f"{mine}-a": (mine, "api", "ERROR", 3),
            f"{mine}-b": (mine, "api", "INFO", 5),
            f"{mine}-c": (mine, "db", "INFO", 7),  # another service, same minute
            f"{mine}-d": (mine, "api", "ERROR", 2),  # a second contribution to the same bucket
            f"{theirs}-a": (theirs, "api", "ERROR", 100),
        }
        for doc_id, (tenant, service, level, count) in docs.items():
            body = {"tenant": tenant, "service": service, "level": level, "pattern": "_none", "host": "h"}
            client.index(index=index, id=doc_id, body={**body, "bucket": minute, "count": count, "bytes": 10})
        client.indices.refresh(index=index)
        try:
            http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

            def get(**params: Any) -> httpx.Response:
                return http.get("/v1/metrics/logs", params={"from": "now-1h", **params})

            body = get(service="api", group_by="level", step="5m").json()
            assert body["resolution"] == "1m" and body["step_s"] == 300
            five = minute - minute % 300
            assert sorted((s["labels"]["level"], s["points"]) for s in body["series"]) == [
                ("ERROR", [[five, 5]]),
                ("INFO", [[five, 5]]),
            ]
            everything = get(step="1m").json()["series"]
            assert everything == [{"labels": {}, "points": [[minute, 17]]}], "another tenant's counts leaked"
            assert get(step="1h", metric="bytes").json()["resolution"] == "1h"

            for params, message in (
                ({"step": "2m"}, "step '2m' is not one of"),
                ({"group_by": "region"}, "cannot group by 'region'"),
                ({"metric": "p99"}, "metric 'p99' is not one of"),
                ({"level": "LOUD"}, "unknown level 'LOUD'"),
                ({"from": "now-30d", "step": "1m"}, "more than 2000"),
                ({"from": "yesterday"}, "not a time"),
            ):
                r = get(**params)
                assert r.status_code == 400 and message in r.text, (params, r.text)
            assert httpx.get(f"{api.url}/v1/metrics/logs").status_code == 401
        finally:
            for doc_id in docs:
                client.delete(index=index, id=doc_id, ignore=[404])
