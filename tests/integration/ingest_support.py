"""Helpers for the ingest job's integration tests: topics, tiers and a consumer group of a run's own
(:func:`isolated_run`), a realistic volume of raw messages, the job as a subprocess in its own
process group, and what each tier holds as a user would count it."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from connectors.s3.client import s3_client
from core.records.pipeline import RecordPipeline
from infra.settings import Settings
from schemas.envelope import RawEnvelope
from schemas.record import Record


@dataclass
class Run:
    """One test's own topics, index prefix, table, archive prefix and consumer group."""

    name: str
    env: dict[str, str]
    settings: Settings
    logs: Path  # where the job subprocesses' output goes

    @property
    def checkpoints(self) -> Path:
        return self.settings.home / "checkpoints" / f"ingest-{self.settings.ingest_group}"


@contextmanager
def isolated_run(settings: Settings, name: str, logs: Path, partitions: int = 2) -> Iterator[Run]:
    """A :class:`Run` whose topics exist for the test; every trace of it is removed afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    env = {
        "STRATA_RAW_TOPIC": name,
        "STRATA_DLQ_TOPIC": f"{name}_dlq",
        "STRATA_LOGS_TOPIC": f"{name}_logs",
        "STRATA_INGEST_GROUP": f"{name}_group",
        "STRATA_OPENSEARCH_INDEX_PREFIX": name.replace("_", "-"),
        "STRATA_CASSANDRA_TABLE": name,
        "STRATA_ARCHIVE_PREFIX": name,
    }
    overrides: dict[str, Any] = {k.removeprefix("STRATA_").lower(): v for k, v in env.items()}
    run_settings = Settings(**overrides)
    topics = [name, f"{name}_dlq", f"{name}_logs"]
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})
    for future in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        future.result()
    run = Run(name, env, run_settings, logs)
    try:
        yield run
    finally:
        # The group and its archive bookmark (jobs.ingest.marks), before their topic; a group that
        # never committed does not exist.
        groups = [run_settings.ingest_group, f"{run_settings.ingest_group}.archived"]
        for future in admin.delete_consumer_groups(groups).values():
            with suppress(Exception):
                future.result()
        for future in admin.delete_topics(topics).values():
            future.result()
        cleanup_tiers(run_settings)
        shutil.rmtree(run.checkpoints, ignore_errors=True)


def cleanup_tiers(s: Settings) -> None:
    from cassandra.cluster import Cluster
    from opensearchpy import OpenSearch

    from connectors.opensearch.metrics import drop_metrics

    client = OpenSearch(s.opensearch_endpoint, timeout=60)
    client.indices.delete(index=f"{s.opensearch_index_prefix}-*", ignore=[404])
    client.indices.delete_index_template(name=s.opensearch_index_prefix, ignore=[404])
    drop_metrics(client, s.opensearch_index_prefix)  # what the job's log metrics wrote
    cluster = Cluster(s.cassandra_contact_points, port=s.cassandra_port)
    try:
        session = cluster.connect()
        for table in (s.cassandra_table, f"{s.cassandra_table}_services"):
            session.execute(f"DROP TABLE IF EXISTS {s.cassandra_keyspace}.{table}", timeout=120)
    finally:
        cluster.shutdown()
    s3 = s3_client(s)
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=s.s3_bucket, Prefix=s.archive_prefix + "/"
    ):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=s.s3_bucket, Delete={"Objects": keys})


# -- input ------------------------------------------------------------------------------------------


def messages(n: int, now: datetime, *, seed: int = 1, tenant: str = "acme") -> list[bytes]:
    """``n`` raw_logs messages of about 300 bytes: five formats, PII to mask, 5% from 20 days ago
    (warm and cold only), 2% from 60 days ago (cold only), 3% sent twice (the same bytes, or the
    same line in a later envelope) and 0.1% that are not envelopes at all (the DLQ's)."""
    rnd = random.Random(seed)
    users = ["alice", "bob", "carol", "dave", "erin", "frank"]
    hosts = [f"web-{i}" for i in range(8)]
    out: list[bytes] = []
    while len(out) < n:
        i = len(out)
        roll = rnd.random()
        if roll < 0.03 and out:
            out.append(rnd.choice(out))  # the same bytes again
            continue
        if roll < 0.031:
            out.append(rnd.choice([b"not an envelope", b'{"tenant": "acme", "line"', b'{"v": 1}']))
            continue
        ts = now - timedelta(seconds=rnd.randint(0, 3600), microseconds=rnd.randint(0, 999_999))
        age = rnd.random()
        if age < 0.05:
            ts -= timedelta(days=20)
        elif age < 0.07:
            ts -= timedelta(days=60)
        user, host = rnd.choice(users), rnd.choice(hosts)
        received = now - timedelta(seconds=rnd.randint(0, 5)) if roll < 0.04 else now
        kind = i % 5
        if kind == 0:
            env = RawEnvelope(
                tenant,
                received,
                service="payment-service",
                host=host,
                line=(
                    f"{ts:%Y-%m-%d %H:%M:%S.%f} {rnd.choice(['INFO', 'WARN', 'ERROR'])} [payment-service] "
                    f"Payment {i} of {rnd.randint(1, 999)}.{rnd.randint(0, 99):02d} EUR for "
                    f"{user}@example.com card=4111111111111111 took latency={rnd.randint(5, 900)}ms "
                    f"req_id=r{i:08x}"
                ),
            )
        elif kind == 1:
            env = RawEnvelope(
                tenant,
                received,
                source="otlp",
                entry={
                    "timestamp": ts.isoformat(),
                    "level": rnd.choice(["info", "warning", "error", "debug"]),
                    "message": f"order {i} shipped to {user} in {rnd.randint(1, 30)} parcels",
                    "service": "orders",
                    "traceId": f"{rnd.getrandbits(128):032x}",
                    "spanId": f"{rnd.getrandbits(64):016x}",
                    "metadata": {"region": rnd.choice(["eu-west-1", "us-east-1"]), "shard": str(i % 16)},
                },
                attributes={"k8s.pod": f"orders-{i % 7}"},
            )
        elif kind == 2:
            env = RawEnvelope(
                tenant,
                received,
                service="db",
                host=host,
                format="logfmt",
                line=(
                    f'level=warn ts={ts.isoformat()} msg="slow query {i}" '
                    f"duration={rnd.randint(100, 5000)}ms "
                    f"table=orders rows={rnd.randint(1, 10_000)} client=10.1.{i % 256}.{i % 199 + 1}"
                ),
            )
        elif kind == 3:
            env = RawEnvelope(
                tenant,
                received,
                service="web",
                host=host,
                line=(
                    f"10.0.{rnd.randint(0, 255)}.{rnd.randint(1, 254)} - {user} "
                    f'[{ts:%d/%b/%Y:%H:%M:%S +0000}] "GET /api/items/{i}?page={rnd.randint(1, 9)} HTTP/1.1" '
                    f'{rnd.choice([200, 200, 200, 404, 500])} {rnd.randint(100, 9000)} "-" "curl/8.{i % 9}"'
                ),
            )
        else:
            env = RawEnvelope(
                tenant,
                received,
                source="syslog",
                line=(
                    f"<{rnd.choice([11, 13, 14, 30])}>1 {ts.isoformat()} {host} sshd {1000 + i % 5000} - - "
                    f"Accepted publickey for {user} from 192.168.{i % 256}.{i % 250 + 1} port "
                    f"{rnd.randint(1024, 65535)} ssh2"
                ),
            )
        out.append(env.encode())
    return out


@dataclass
class Expected:
    """What each tier must hold, by log_id, computed by the same pure pipeline the job runs."""

    records: dict[str, Record] = field(default_factory=dict)
    hot: set[str] = field(default_factory=set)
    warm: set[str] = field(default_factory=set)
    rejected: int = 0

    def add(self, batch: list[bytes], now: datetime, s: Settings) -> None:
        pipeline = RecordPipeline()
        for m in batch:
            result = pipeline.process(m)
            if not isinstance(result, Record):
                self.rejected += 1
                continue
            self.records[result.log_id] = result
            age = now - result.timestamp
            if age < timedelta(days=s.hot_days):
                self.hot.add(result.log_id)
            if age < timedelta(days=s.warm_days):
                self.warm.add(result.log_id)


def produce(s: Settings, topic: str, batch: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": s.kafka_servers,
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "zstd",
        }
    )
    errors: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for m in batch:
        while True:
            try:
                producer.produce(topic, m, key=b"acme", on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    assert left == 0 and not errors, f"{left} messages not delivered; {errors[:3]}"


# -- the job as a user runs it ----------------------------------------------------------------------


class Job:
    """``strata job run ingest …`` in its own process group (the Python client, its JVM and the
    Python workers), output to a file under the test's temporary folder."""

    def __init__(self, run: Run, *args: str, label: str) -> None:
        self.log = run.logs / f"{label}.log"
        self.run = run
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Job:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "job", "run", "ingest", *self.args],
                env={**os.environ, **self.run.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def check_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the job exited with {self.proc.returncode}:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it (no shutdown hook runs)."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        wait_for(lambda: not self.group_alive(), 30, "the job's process group to be gone")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM the process group as an operator would; SIGKILL whatever is left after ``timeout``."""
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            deadline = time.monotonic() + 10
            while self.group_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            self.kill()

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the job did not finish within {timeout:.0f}s:\n{self.tail()}") from None

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no output)"


@contextmanager
def running(job: Job) -> Iterator[Job]:
    """The job started, and its whole process group killed on the way out, whatever happened."""
    job.start()
    try:
        yield job
    finally:
        job.kill()


def wait_for(
    probe: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    interval: float = 2.0,
    alive: Callable[[], None] | None = None,
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        if alive is not None:
            alive()
        try:
            last = probe()
        except Exception as exc:  # a tier coming back up answers with errors for a while
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def completed_checkpoints(run: Run) -> list[Path]:
    return sorted(run.checkpoints.glob("*/chk-*/_metadata"))


# -- what a user sees -------------------------------------------------------------------------------


def hot_ids(s: Settings) -> list[str]:
    """Every document id of the run's daily indices (duplicates would show as repeated ids)."""
    from opensearchpy import OpenSearch, helpers

    client = OpenSearch(s.opensearch_endpoint, timeout=60)
    pattern = f"{s.opensearch_index_prefix}-*"
    client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    return [
        h["_id"]
        for h in helpers.scan(
            client,
            index=pattern,
            query={"query": {"match_all": {}}},
            _source=False,
            size=5000,
            ignore_unavailable=True,
        )
    ]


def hot_count(s: Settings) -> int:
    from opensearchpy import OpenSearch

    client = OpenSearch(s.opensearch_endpoint, timeout=30)
    pattern = f"{s.opensearch_index_prefix}-*"
    client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    return int(client.count(index=pattern, ignore_unavailable=True, allow_no_indices=True)["count"])


def warm_ids(s: Settings) -> list[str]:
    from cassandra.cluster import Cluster
    from cassandra.query import SimpleStatement

    cluster = Cluster(s.cassandra_contact_points, port=s.cassandra_port)
    try:
        session = cluster.connect(s.cassandra_keyspace)
        statement = SimpleStatement(f"SELECT log_id FROM {s.cassandra_table}", fetch_size=5000)
        return [r.log_id for r in session.execute(statement, timeout=60)]
    finally:
        cluster.shutdown()


def archive_ids(s: Settings) -> list[str]:
    """The log_id of every row of the run's Parquet archive, as written (no deduplication)."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(
        access_key=s.s3_access_key,
        secret_key=s.s3_secret_key,
        endpoint_override=s.s3_endpoint_url,
        region=s.s3_region,
    )
    try:
        dataset = ds.dataset(
            f"{s.s3_bucket}/{s.archive_prefix}", filesystem=fs, format="parquet", partitioning="hive"
        )
    except FileNotFoundError:
        return []
    return [str(v) for v in dataset.to_table(columns=["log_id"]).column("log_id").to_pylist()]


def duplicates(ids: list[str]) -> dict[str, int]:
    return {k: n for k, n in Counter(ids).items() if n > 1}


def committed_lag(s: Settings, topic: str) -> int | None:
    """How many raw messages the job's consumer group has not committed yet (None: no commits)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": s.kafka_servers, "group.id": s.ingest_group, "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        committed = consumer.committed(parts, timeout=10)
        if all(tp.offset < 0 for tp in committed):
            return None
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def decode(values: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(v) for v in values]


def now_utc() -> datetime:
    return datetime.now(UTC)


@contextmanager
def outage(settings: Settings, name: str) -> Iterator[None]:
    """``name`` (a stack service other engineers share) stopped with the stack's own ``stop()`` for
    the body, and always started again and waited for until healthy, whatever the body did."""
    from infra.stack import stack

    (service,) = stack.select(settings, [name])
    if service.pid() is None:
        raise AssertionError(f"{name} was not started by `strata stack up`: this test cannot restart it")
    service.stop()
    try:
        yield
    finally:
        stack.up(settings, [name], log=lambda _line: None)  # waits until healthy


def topic_values(s: Settings, topic: str) -> list[bytes]:
    """Every message of ``topic``, read to its end."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": s.kafka_servers,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in todo])
        out: list[bytes] = []
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            out.append(msg.value() or b"")
            if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                todo.discard(msg.partition() or 0)
        assert not todo, f"could not read {topic} to its end"
        return out
    finally:
        consumer.close()
