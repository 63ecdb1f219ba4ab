"""Metrics from fields end to end: a rule saved through the API, records with ``latency=…`` made by
the record pipeline on the ``logs`` topic (some written twice, as the ingest job's at-least-once
writes can), the real field metrics job killed mid-batch after a checkpoint and restarted from
it, then run again with new state, and ``/v1/metrics/logs?rule=…`` equal to what the records
hold: count, sum, min and max exactly, p50/p99 within the sketch's relative accuracy."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.records.pipeline import RecordPipeline
from core.sketch import RELATIVE_ACCURACY, parse_measure
from infra.settings import Settings
from schemas.record import Record
from tests.integration.collector_support import ApiServer, tenant_with_key
from tests.integration.ingest_support import (
    Job,
    Run,
    committed_lag,
    now_utc,
    running,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_S = 240
CATCH_UP_S = 300


class FieldJob(Job):
    """``strata job run fieldmetrics`` in its own process group."""

    def start(self) -> FieldJob:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "job", "run", "fieldmetrics", *self.args],
                env={**os.environ, **self.run.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self


@pytest.fixture
def run(stack: Settings, require, unique_name, tmp_path: Path) -> Iterator[Run]:
    """The test's own logs topic, consumer group and index prefix; removed afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from opensearchpy import OpenSearch

    from connectors.opensearch.field_metrics import field_metrics_pattern, fields_prefix

    require("kafka", "opensearch")
    name = unique_name("fieldmetrics").lower()
    env = {
        "STRATA_LOGS_TOPIC": f"{name}_logs",
        "STRATA_FIELDMETRICS_GROUP": f"{name}_group",
        "STRATA_OPENSEARCH_INDEX_PREFIX": name.replace("_", "-"),
    }
    settings = stack.model_copy(update={k.removeprefix("STRATA_").lower(): v for k, v in env.items()})
    admin = AdminClient({"bootstrap.servers": stack.kafka_servers})
    for future in admin.create_topics([NewTopic(settings.logs_topic, 2, 1)]).values():
        future.result(timeout=60)
    r = Run(name, env, settings, tmp_path)
    try:
        yield r
    finally:
        for future in admin.delete_consumer_groups([settings.fieldmetrics_group]).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        for future in admin.delete_topics([settings.logs_topic]).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        client = OpenSearch(stack.opensearch_endpoint, timeout=60)
        prefix = settings.opensearch_index_prefix
        client.indices.delete(index=field_metrics_pattern(prefix), ignore=[404])
        client.indices.delete_index_template(name=fields_prefix(prefix), ignore=[404])
        shutil.rmtree(_checkpoints(r), ignore_errors=True)


def _checkpoints(r: Run) -> Path:
    return r.settings.home / "checkpoints" / f"fieldmetrics-{r.settings.fieldmetrics_group}"


def _completed(r: Run) -> list[Path]:
    return sorted(_checkpoints(r).glob("*/chk-*/_metadata"))


def _records(tenant: str, n: int, now: datetime, seed: int) -> list[Record]:
    """``n`` records of the last hour: checkout lines with a latency (the rule's), some without
    one, and search lines the rule does not select."""
    rnd = random.Random(seed)
    pipeline = RecordPipeline()
    out = []
    for i in range(n):
        ts = now - timedelta(seconds=rnd.randint(0, 3000), microseconds=rnd.randint(0, 999_999))
        service = "search" if i % 5 == 0 else "checkout"
        level = "WARN" if i % 7 == 0 else "INFO"
        if i % 11 == 0:
            line = f"{level} GET /cart/{i} done"  # no latency: counted as missing
        else:
            ms = rnd.lognormvariate(4, 1)
            value = f"{ms / 1000:.4f}s" if i % 3 == 0 else f"{ms:.3f}ms"
            line = f"{level} GET /cart/{i} done latency={value} status=200"
        envelope = {
            "tenant": tenant,
            "service": service,
            "host": f"web-{i % 4}",
            "line": f"{ts.isoformat().replace('+00:00', 'Z')} {line}",
            "received_at": now.isoformat(),
        }
        result = pipeline.process(json.dumps(envelope).encode())
        assert isinstance(result, Record), result
        out.append(result)
    return out


def _produce_slowly(s: Settings, records: list[Record], seconds: float, parts: int = 40) -> None:
    """``records`` in ``parts`` equal sends spread over ``seconds``."""
    size = -(-len(records) // parts)
    for start in range(0, len(records), size):
        _produce(s, records[start : start + size])
        time.sleep(seconds / parts)


def committed(s: Settings) -> int:
    """How many messages of the logs topic the field metrics job's group has committed."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": s.kafka_servers, "group.id": s.fieldmetrics_group, "enable.auto.commit": False}
    )
    try:
        parts = [
            TopicPartition(s.logs_topic, p)
            for p in consumer.list_topics(s.logs_topic, timeout=10).topics[s.logs_topic].partitions
        ]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def _produce(s: Settings, records: list[Record]) -> None:
    """As the ingest job writes ``logs``: the record's JSON, keyed by tenant/service."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": s.kafka_servers, "enable.idempotence": True, "linger.ms": 20})
    for r in records:
        producer.produce(s.logs_topic, r.to_json(), key=f"{r.tenant}/{r.service}".encode())
        producer.poll(0)
    assert producer.flush(60) == 0


def _latencies(records: list[Record]) -> list[float]:
    out = []
    for r in records:
        if r.service == "checkout" and "latency" in r.attributes:
            m = parse_measure(r.attributes["latency"])
            assert m is not None
            out.append(m.value)
    return out


def test_rule_metrics_equal_the_records_after_a_restart_from_the_checkpoint(run: Run) -> None:
    s = run.settings
    now = now_utc()
    with (
        tenant_with_key(s, scopes=("admin", "search")) as (tenant_id, key),
        ApiServer(s) as api,
        httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=60) as http,
    ):
        rule = http.post(
            "/v1/metrics/rules",
            json={"name": "checkout latency", "filter": {"services": ["checkout"]}, "field": "latency"},
        ).json()
        first = _records(tenant_id, 2000, now, seed=1)
        second = _records(tenant_id, 15000, now, seed=2)
        _produce(s, first)

        def stat(name: str, step: str = "1h", **params: Any) -> list[dict[str, Any]]:
            r = http.get(
                "/v1/metrics/logs",
                params={"rule": rule["id"], "stat": name, "step": step, "from": "now-3h", **params},
            )
            assert r.status_code == 200, r.text
            series: list[dict[str, Any]] = r.json()["series"]
            return series

        def total() -> int:
            return int(sum(p[1] for series in stat("count") for p in series["points"]))

        lag_settings = s.model_copy(update={"ingest_group": s.fieldmetrics_group})

        def lag() -> int:
            return committed_lag(lag_settings, s.logs_topic) or 0

        with running(FieldJob(run, label="first")) as job:
            wait_for(
                lambda: total() == len(_latencies(first)),
                START_S,
                "the first records' values, written at a checkpoint",
                alive=job.check_running,
            )
            # Kill once a checkpoint has committed part of the second batch and the job is reading
            # the rest: what it read past that checkpoint is lost with it and must be read again.
            # The batch is sent over more than a checkpoint interval: sent at once, a fast machine
            # reads all of it before the next checkpoint and no checkpoint falls inside it.
            sender = threading.Thread(target=_produce_slowly, args=(s, second, 20.0), daemon=True)
            sender.start()
            wait_for(
                lambda: len(first) < committed(s) < len(first) + len(second),
                CATCH_UP_S,
                "a checkpoint within the batch",
                alive=job.check_running,
                interval=0.5,
            )
            job.kill()
            sender.join(timeout=120)
            assert not sender.is_alive(), "the second batch was not sent in time"
        left = lag()
        print(f"killed with {total()} values stored, {left} of {len(second)} records not committed")
        assert 0 < left < len(second), "the kill must land mid-batch, or the restart proves nothing"

        # What the ingest job could write again after its own restart.
        _produce(s, first[:500])
        records = first + second
        values = sorted(_latencies(records))
        with running(FieldJob(run, label="second")) as job:
            wait_for(
                lambda: lag() == 0,
                CATCH_UP_S,
                "the job to commit every offset",
                alive=job.check_running,
            )
            seen: list[int] = []

            def all_counted() -> bool:
                seen.append(total())
                return seen[-1] >= len(values)

            try:
                wait_for(all_counted, 120, f"{len(values)} values (written at checkpoints)")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; totals seen, last first: {seen[::-1][:5]}") from None
        assert "resuming from" in job.log.read_text()

        assert total() == len(values), "each value counted exactly once"
        by_hour: dict[str, float] = {}
        for name in ("count", "sum", "min", "max"):
            points = [p for series in stat(name, step="1d") for p in series["points"]]
            assert len(points) in (1, 2)  # the last hour may straddle midnight
            by_hour[name] = (
                min(p[1] for p in points)
                if name == "min"
                else max(p[1] for p in points)
                if name == "max"
                else sum(p[1] for p in points)
            )
        assert by_hour["count"] == len(values)
        assert by_hour["sum"] == pytest.approx(sum(values), rel=1e-9)
        assert (by_hour["min"], by_hour["max"]) == (values[0], values[-1])

        # minutes: each minute's count and max equal the records', p50/p99 within the accuracy
        minutes = stat("count", step="1m")[0]["points"]
        expected: dict[int, list[float]] = {}
        for r in records:
            if r.service == "checkout" and "latency" in r.attributes:
                t = int(r.timestamp.timestamp())
                m = parse_measure(r.attributes["latency"])
                assert m is not None
                expected.setdefault(t - t % 60, []).append(m.value)
        assert {t: int(v) for t, v in minutes} == {t: len(v) for t, v in expected.items()}
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            for t, v in stat(name, step="1m")[0]["points"]:
                vs = sorted(expected[t])
                want = vs[int(q * (len(vs) - 1))]
                assert abs(v - want) <= RELATIVE_ACCURACY * want * 1.0001, (name, t, v, want)
        per_level = {s["labels"]["level"]: s["points"] for s in stat("count", step="1d", group_by="level")}
        assert set(per_level) == {"INFO", "WARN"}

        # A run with new state (--fresh) starts at the group's committed offsets: the new records'
        # values add to what is stored, and nothing counts twice.
        third = _records(tenant_id, 1000, now, seed=3)
        _produce(s, third)
        values = sorted(_latencies(records + third))
        with running(FieldJob(run, "--fresh", label="fresh")) as job:
            wait_for(lambda: lag() == 0, CATCH_UP_S, "the fresh run to commit", alive=job.check_running)
            wait_for(lambda: total() >= len(values), 120, f"{len(values)} values after the fresh run")
        assert "resuming from" not in job.log.read_text()
        assert total() == len(values)
        (points,) = [series["points"] for series in stat("sum", step="1d", service="checkout")] or [[]]
        assert sum(p[1] for p in points) == pytest.approx(sum(values), rel=1e-9)
