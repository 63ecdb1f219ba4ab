"""The ingest job end to end: throughput into every tier, the OpenSearch ceiling, latency to
searchable, and the cold tier's compression.

    .venv/bin/python tests/bench/bench_ingest.py [--records 300000] [--parallelism 2]

1. Throughput. ``--records`` ~300-byte ``raw_logs`` envelopes (a mix of plain lines, JSON entries,
   JSON lines, logfmt, syslog 5424/3164, about one in ten with PII; recent event times, so every
   record belongs in every tier) are loaded into a topic of their own with 4 partitions. Then
   ``strata job run ingest --from earliest --bounded --fresh`` runs against tiers of its own. The
   clock starts when the first record is searchable in OpenSearch (the JVM, the graph and the Python
   workers are up by then; the records already in at that moment are subtracted) and stops when
   OpenSearch, Cassandra and the Parquet archive all hold every record (polled counts).
2. Ceiling. The same records, as the documents the job writes, bulk-indexed straight into a
   throwaway OpenSearch index with the same template (opensearch-py ``parallel_bulk``).
3. Latency. The job runs unbounded on a fresh topic; a producer thread sends the same mix at half
   the measured throughput for ``--latency-seconds``, every ``--probe-every``-th record a probe
   (tenant ``bench-probe``) stamped with its send time as ``received_at`` (the record's
   ``ingested_at``). A poller searches every 200 ms for probes sent since the oldest one not yet
   seen; a probe's latency is the time its first search hit came back minus its send time.
4. Compression. Bytes of Parquet under the archive prefix per byte of NDJSON input.

Where the time goes: while the throughput run is in its measured window, the CPU time of the job's
own processes is read from /proc, the JVM's by thread (Kafka source and Python operator chain,
dedupe and sink chain, Cassandra driver, Kafka producers, JIT, GC, ...), the Python workers' (one
process per subtask, as jobs.flink starts them), the job's client process, and that of the stack's
services, minus what each used in the 15 s before the job started (they are shared with everyone's
work on the machine, so those figures are rough). Reported in CPU microseconds per record.
``--conf key=value`` overrides a flink-conf.yaml setting for this benchmark's jobs only;
``--ceiling-refresh 30s`` adds a ceiling run with a longer refresh interval.

Everything it creates (topics, indices, templates, tables, objects, checkpoints) is removed at the
end. Results are printed and written to bench-results/ingest.json. This measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from connectors.opensearch.metrics import drop_metrics, metrics_pattern  # noqa: E402
from connectors.s3.client import s3_client  # noqa: E402
from infra.settings import Settings, get_settings  # noqa: E402
from schemas.envelope import RawEnvelope  # noqa: E402
from schemas.record import format_ts, micros, parse_ts  # noqa: E402
from tests.support.loggen import HOSTS, SERVICES, fill_message  # noqa: E402

RESULTS = REPO / "bench-results" / "ingest.json"
JOB_LOGS: list[Path] = []  # the jobs' output, kept only when something went wrong
PARTITIONS = 4
PROBE_TENANT = "bench-probe"

# -- input ----------------------------------------------------------------------------------

MESSAGES = [
    "User {uid} logged in from the mobile app version 4.{n}",
    "Order {oid} created for user {uid} with {n} items",
    "Payment failed for order {oid}: card declined by issuer",
    "Cache miss for key session:{uid}, loading from the database",
    "Slow query on table orders took {ms}ms (rows examined: {n})",
    "Connection to db-{n} established after {ms}ms",
    "Retrying request to upstream {ip} attempt {n}",
    "Job {oid} finished in {ms}ms with status ok",
    "Rate limit exceeded for client {uid} on /api/v1/orders",
    "Inventory updated sku={oid} qty={n} warehouse=eu-{n}",
]
PII = [
    "Password reset mail sent to {user}{n}@example.com",
    "Charged card 4111 1111 1111 1111 for order {oid}",
    "Contact phone (555) 234-{n4} saved for user {uid}",
    "Login from 203.0.113.{n} with token=abcd{oid}",
]


def _message(rng: random.Random) -> str:
    return fill_message(rng, MESSAGES, PII)


def generate(n: int, *, seed: int, start: datetime, span_s: float) -> list[RawEnvelope]:
    """``n`` envelopes with event times spread over ``span_s`` seconds from ``start``; one in five
    each of: a JSON entry (structured, as HTTP/OTLP collectors send), logfmt, syslog (5424 and
    3164), a JSON line, a plain line with key=value pairs."""
    rng = random.Random(seed)
    step = timedelta(seconds=span_s / max(n, 1))
    out: list[RawEnvelope] = []
    for i in range(n):
        ts = start + step * i
        level = rng.choice(["info", "info", "info", "warn", "error", "debug"])
        svc, host = rng.choice(SERVICES), rng.choice(HOSTS)
        line: str | None = None
        entry: dict[str, Any] | None = None
        kind = i % 5
        if kind == 0:
            entry = {
                "timestamp": ts.isoformat(),
                "level": level,
                "message": _message(rng),
                "service": svc,
                "traceId": f"{rng.getrandbits(128):032x}",
                "metadata": {"userId": str(rng.randint(1, 10**6)), "region": "eu-west-1"},
            }
        elif kind == 1:
            line = (
                f'ts={ts.isoformat()} level={level} msg="{_message(rng)}" service={svc} '
                f"req_id=r{rng.randint(1, 10**9)} latency={rng.randint(1, 900)}ms"
            )
        elif kind == 2:
            if i % 2:
                line = (
                    f"<{rng.randint(8, 191)}>1 {ts.isoformat()} {host} {svc} {rng.randint(100, 9999)} - "
                    f'[req@32473 id="r{rng.randint(1, 10**9)}"] {_message(rng)}'
                )
            else:
                line = (
                    f"{ts:%b %d %H:%M:%S} {host} {svc}[{rng.randint(100, 9999)}]: {_message(rng)} "
                    f"client=10.1.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
                )
        elif kind == 3:
            line = (
                f'{{"ts":"{ts.isoformat()}","level":"{level}","msg":"{_message(rng)}","service":"{svc}",'
                f'"req_id":"r{rng.randint(1, 10**9)}","duration_ms":{rng.randint(1, 900)}}}'
            )
        else:
            line = (
                f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d} {level.upper()} [{svc}] "
                f"{_message(rng)} req_id=abc{rng.randint(1, 10**6)} latency={rng.randint(1, 5000)}ms"
            )
        out.append(
            RawEnvelope(
                tenant=f"tenant-{i % 3}",
                received_at=ts + timedelta(milliseconds=40),
                source="bench",
                host=host,
                line=line,
                entry=entry,
            )
        )
    return out


@dataclass
class Expected:
    """What the job must store, from the same pure pipeline run here."""

    records: int
    rejected: int
    partitions: Counter[tuple[str, str, str]]  # (tenant, service, day) -> rows, Cassandra's key
    docs: list[tuple[str, str, str]]  # (index day, log_id, JSON) for the ceiling run
    formats: Counter[str]


def expect(values: list[bytes]) -> Expected:
    from core.records.pipeline import RecordPipeline
    from schemas.projections import cql_day, to_opensearch_doc
    from schemas.record import Record

    pipeline = RecordPipeline()
    seen: set[str] = set()
    partitions: Counter[tuple[str, str, str]] = Counter()
    formats: Counter[str] = Counter()
    docs: list[tuple[str, str, str]] = []
    rejected = 0
    for value in values:
        record = pipeline.process(value)
        if not isinstance(record, Record):
            rejected += 1
            continue
        if record.log_id in seen:
            continue
        seen.add(record.log_id)
        partitions[(record.tenant, record.service, cql_day(record.timestamp))] += 1
        formats[record.source_format] += 1
        doc = orjson.dumps(to_opensearch_doc(record)).decode()
        docs.append((f"{record.timestamp:%Y.%m.%d}", record.log_id, doc))
    return Expected(len(seen), rejected, partitions, docs, formats)


# -- names and cleanup ----------------------------------------------------------------------


@dataclass
class Tiers:
    """One job run's own names: consumer group, side topics, index prefix, table, archive prefix."""

    name: str
    raw_topic: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "STRATA_RAW_TOPIC": self.raw_topic,
            "STRATA_DLQ_TOPIC": f"{self.name}_dlq",
            "STRATA_LOGS_TOPIC": f"{self.name}_logs",
            "STRATA_INGEST_GROUP": f"{self.name}_group",
            "STRATA_OPENSEARCH_INDEX_PREFIX": self.name.replace("_", "-"),
            "STRATA_CASSANDRA_TABLE": self.name,
            "STRATA_ARCHIVE_PREFIX": self.name,
        }

    @property
    def settings(self) -> Settings:
        return Settings(**{k.removeprefix("STRATA_").lower(): v for k, v in self.env.items()})


class Cleanup:
    """Everything the benchmark created, removed in reverse order even when a step failed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics: list[str] = []
        self.tiers: list[Tiers] = []
        self.templates: list[str] = []

    def run(self) -> None:
        for tiers in reversed(self.tiers):
            _quietly(f"tiers of {tiers.name}", lambda t=tiers: drop_tiers(t))  # type: ignore[misc]
        for name in self.templates:
            _quietly(f"index {name}", lambda n=name: drop_index(self.settings, n))  # type: ignore[misc]
        if self.topics:
            _quietly("topics", lambda: delete_topics(self.settings, self.topics))


def _quietly(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:
        print(f"cleanup of {what} failed: {exc}", file=sys.stderr)


def admin(settings: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": settings.kafka_servers})


def create_topics(settings: Settings, cleanup: Cleanup, names: list[str], partitions: int) -> None:
    from confluent_kafka.admin import NewTopic

    client = admin(settings)  # kept alive until the futures are done
    futures = client.create_topics([NewTopic(n, partitions, 1) for n in names])
    for name, future in futures.items():
        future.result(30)
        cleanup.topics.append(name)


def delete_topics(settings: Settings, names: list[str]) -> None:
    client = admin(settings)
    for future in client.delete_topics(names).values():
        future.result(30)


def opensearch(settings: Settings) -> Any:
    from opensearchpy import OpenSearch

    return OpenSearch(settings.opensearch_endpoint, timeout=120)


def drop_index(settings: Settings, prefix: str) -> None:
    client = opensearch(settings)
    client.indices.delete(index=f"{prefix}-*", ignore=[404])
    client.indices.delete_index_template(name=prefix, ignore=[404])
    drop_metrics(client, prefix)  # what the job's log metrics wrote


def archive_objects(settings: Settings) -> list[tuple[str, int]]:
    client = s3_client(settings)
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=settings.s3_bucket, Prefix=settings.archive_prefix + "/"
    ):
        out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    return out


@contextmanager
def cassandra(settings: Settings) -> Iterator[Any]:
    from cassandra.cluster import Cluster

    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def drop_tiers(tiers: Tiers) -> None:
    """Remove one run's index, tables, archive objects, checkpoints and Flink logs; every step is
    tried even when another failed (a service restarted by someone else's test, say)."""
    s = tiers.settings
    failed: list[str] = []

    def step(what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            failed.append(f"{what}: {exc}")

    def tables() -> None:
        with cassandra(s) as session:
            for table in (s.cassandra_table, f"{s.cassandra_table}_services"):
                session.execute(f"DROP TABLE IF EXISTS {s.cassandra_keyspace}.{table}", timeout=120)

    def objects() -> None:
        client = s3_client(s)
        keys = [k for k, _ in archive_objects(s)]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            client.delete_objects(Bucket=s.s3_bucket, Delete={"Objects": batch, "Quiet": True})

    step("index", lambda: drop_index(s, s.opensearch_index_prefix))
    step("tables", tables)
    step("archive", objects)
    shutil.rmtree(s.home / "checkpoints" / f"ingest-{s.ingest_group}", ignore_errors=True)
    for folder in (s.log_dir / "flink").glob(f"ingest-{s.ingest_group}-*"):
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        raise RuntimeError("; ".join(failed))


# -- load -----------------------------------------------------------------------------------


def producer(settings: Settings) -> Any:
    import confluent_kafka

    from connectors.kafka.producer import producer_config

    return confluent_kafka.Producer(producer_config(settings, client_id="strata-bench-ingest"))


def produce_all(settings: Settings, topic: str, values: list[bytes]) -> float:
    """Load ``values`` round-robin over the partitions; returns the seconds it took."""
    p = producer(settings)
    started = time.perf_counter()
    for i, value in enumerate(values):
        while True:
            try:
                p.produce(topic, value, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} messages not acknowledged by Kafka")
    return time.perf_counter() - started


def topic_size(settings: Settings, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        total = 0
        for p in range(PARTITIONS):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        c.close()


# -- running the job ------------------------------------------------------------------------


class Load:
    """Samples the 1-minute load average while a phase runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(5):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> Load:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        return {
            "mean": round(statistics.fmean(self.samples), 2),
            "max": round(max(self.samples), 2),
        }


def job_command(parallelism: int, conf: dict[str, str], *, bounded: bool = True) -> list[str]:
    """The real CLI for the job as it is; this script's own runner when settings are overridden."""
    if not conf:
        cmd = [sys.executable, "-m", "infra.cli", "job", "run", "ingest", "--from", "earliest", "--fresh"]
        cmd += ["--parallelism", str(parallelism)]
        return cmd + (["--bounded"] if bounded else [])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job-runner"]
    cmd += ["--parallelism", str(parallelism)] + [f"--conf={k}={v}" for k, v in conf.items()]
    return cmd + ([] if bounded else ["--unbounded"])


def start_job(tiers: Tiers, command: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    JOB_LOGS.append(log)
    with log.open("wb") as out:
        # A session of its own: stopping the job stops its JVM and Python workers, nothing else.
        return subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **tiers.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_job(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def job_restarts(s: Settings, pid: int) -> int:
    """How often the job restarted, from its Flink log (jobs.flink names the folder after the pid)."""
    folder = s.log_dir / "flink" / f"ingest-{s.ingest_group}-{pid}"
    return sum(
        log.read_text(errors="replace").count("switched from state RUNNING to RESTARTING")
        for log in folder.glob("*.log")
    )


def hot_count(client: Any, prefix: str) -> int:
    return int(client.count(index=f"{prefix}-*", params={"ignore_unavailable": "true"})["count"])


def metric_writes(client: Any, prefix: str) -> tuple[int, int]:
    """(index requests OpenSearch took, documents it holds) in the log metrics' indices: how often
    the job rewrote each contribution."""
    stats = client.indices.stats(
        index=metrics_pattern(prefix), metric="indexing,docs", params={"ignore_unavailable": "true"}
    )
    primaries = stats["_all"]["primaries"]
    writes = primaries.get("indexing", {}).get("index_total", 0)
    return int(writes), int(primaries.get("docs", {}).get("count", 0))


def warm_count(session: Any, s: Settings, partitions: Counter[tuple[str, str, str]]) -> int:
    query = session.prepare(
        f"SELECT COUNT(*) FROM {s.cassandra_keyspace}.{s.cassandra_table} "
        "WHERE tenant = ? AND service = ? AND day = ?"
    )
    return sum(session.execute(query, key, timeout=120).one()[0] for key in partitions)


class ColdCounter:
    """Rows in the committed Parquet files under the archive prefix (footers read once per file)."""

    def __init__(self, s: Settings) -> None:
        import pyarrow.fs as pafs

        self.s = s
        self.fs = pafs.S3FileSystem(
            access_key=s.s3_access_key,
            secret_key=s.s3_secret_key,
            endpoint_override=s.s3_endpoint_url,
            region=s.s3_region,
        )
        self.rows: dict[str, int] = {}

    def count(self) -> int:
        import pyarrow.parquet as pq

        for key, size in archive_objects(self.s):
            name = key.rsplit("/", 1)[-1]
            if key in self.rows or name.startswith((".", "_")) or size == 0:
                continue
            with self.fs.open_input_file(f"{self.s.s3_bucket}/{key}") as f:
                self.rows[key] = pq.read_metadata(f).num_rows
        return sum(self.rows.values())


# -- where the CPU goes ---------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")
SERVICES_BY_CMD = {
    "opensearch": "org.opensearch.bootstrap.OpenSearch",
    "cassandra": "CassandraDaemon",
    "kafka": "kafka.Kafka ",
    "s3proxy": "org.gaul.s3proxy.Main",
}
# JVM thread names (15 characters at most in /proc) -> what they do in the ingest job.
JVM_THREADS = (
    ("Source: ", "jvm: Kafka source + Python operator chain (Python itself in thread mode)"),
    ("Deduplicate", "jvm: dedupe + OpenSearch/Parquet/logs sink chain"),
    ("log-metrics-agg", "jvm: log metrics count + its OpenSearch sink"),
    ("C1 Compiler", "jvm: JIT compiler"),
    ("C2 Compiler", "jvm: JIT compiler"),
    ("GC Thread", "jvm: garbage collector"),
    ("G1 ", "jvm: garbage collector"),
    ("cluster", "jvm: Cassandra driver I/O"),
    ("kafka-producer", "jvm: Kafka producers (logs, DLQ)"),
    ("opensearch[", "jvm: OpenSearch bulk client"),
    ("I/O dispatcher", "jvm: OpenSearch bulk client"),
    ("grpc-", "jvm: gRPC to the Python workers"),
    ("PartitionCommit", "jvm: Parquet partition commit"),
    ("s3a-", "jvm: S3A uploads"),
)


def _stat(path: str) -> tuple[int, str, int] | None:
    """(session id, comm, utime + stime ticks) from a /proc stat file."""
    try:
        raw = Path(path).read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[3]), comm, int(fields[11]) + int(fields[12])


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _thread_group(comm: str) -> str:
    for prefix, group in JVM_THREADS:
        if comm.startswith(prefix):
            return group
    return "jvm: other threads"


class CpuSampler:
    """CPU seconds used so far by the job's processes (its JVM by thread group, its Python workers)
    and by the stack's services (shared with whatever else runs on the machine)."""

    def __init__(self, session: int) -> None:
        self.session = session
        self.services = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            cmd = _cmdline(pid)
            for name, marker in SERVICES_BY_CMD.items():
                if marker in cmd and "java" in cmd:
                    self.services[pid] = name
        self.seen: dict[str, float] = {}  # key -> cumulative seconds; keys of exited threads stay
        self.kinds: dict[str, str] = {}  # pid -> java, worker or client

    def sample(self) -> dict[str, float]:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if pid in self.services:
                st = _stat(f"/proc/{pid}/stat")
                if st:
                    self.seen[f"pid {pid}"] = st[2] / TICK
                continue
            st = _stat(f"/proc/{pid}/stat")
            if st is None or st[0] != self.session:
                continue
            if pid not in self.kinds:
                # Read once: a process that is exiting has an empty command line, and a worker
                # taken then for the client would be counted twice.
                cmd = _cmdline(pid)
                if not cmd:
                    continue
                java = cmd.split(" ", 1)[0].endswith("java")
                self.kinds[pid] = "java" if java else "worker" if "fn_execution" in cmd else "client"
            if self.kinds[pid] == "java":
                with suppress(OSError):
                    for tid in os.listdir(f"/proc/{pid}/task"):
                        t = _stat(f"/proc/{pid}/task/{tid}/stat")
                        if t:
                            self.seen[f"jvm {tid} {t[1]}"] = t[2] / TICK
            else:
                self.seen[f"proc {pid} {self.kinds[pid]}"] = st[2] / TICK
        out: Counter[str] = Counter()
        for key, seconds in self.seen.items():
            kind, ident, *rest = key.split(" ", 2)
            if kind == "pid":
                out[f"service: {self.services[ident]} (shared)"] += seconds
            elif kind == "jvm":
                out[_thread_group(rest[0])] += seconds
            elif rest[0] == "worker":
                out["python workers (parse-normalize-mask)"] += seconds
            else:
                # The process that built the graph and waits for the job (in loopback mode, which
                # jobs.flink does not use, it would also run the Python workers).
                out["job client process"] += seconds
        return dict(out)


def cpu_per_record(before: dict[str, float], after: dict[str, float], records: int) -> dict[str, float]:
    """Microseconds of CPU per record and group between two samples, largest first."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    return {k: round(v * 1e6 / max(records, 1), 1) for k, v in sorted(delta.items(), key=lambda kv: -kv[1])}


@dataclass
class Throughput:
    label: str
    records: int
    parallelism: int
    conf: dict[str, str]
    job_wall_s: float = 0.0  # process start to exit
    first_visible_s: float | None = None  # process start to the first searchable record
    first_visible_count: int = 0
    done_s: dict[str, float] = field(default_factory=dict)  # tier -> seconds from process start
    complete: bool = False
    rate: float | None = None  # records/s from first visible to every tier complete
    steady_rate: float | None = None  # records/s while OpenSearch went from 10 % to 90 % of the records
    # CPU per record between first visible and OpenSearch complete; the shared services' share is
    # what they used minus their background rate measured just before the job (raw: not subtracted).
    cpu_us_per_record: dict[str, float] = field(default_factory=dict)
    cpu_us_per_record_raw: dict[str, float] = field(default_factory=dict)
    services_background_cores: dict[str, float] = field(default_factory=dict)
    job_cores: float | None = None  # CPU the job's own processes used in that window, in cores
    load: dict[str, float] = field(default_factory=dict)
    exit_code: int | None = None
    poll_errors: list[str] = field(default_factory=list)  # a tier unreachable while polling
    restarts: int = 0  # the job failed and restarted (a tier timed out, say): a disturbed figure
    # The same from ``warmup_s`` after the first searchable record to OpenSearch complete: the
    # steady state, without the JVM's first minute of compiling (None when the run is too short).
    warmup_s: float = 60.0
    after_warmup_rate: float | None = None  # records/s into OpenSearch in that window
    after_warmup_records: int = 0
    after_warmup_cpu_us_per_record: dict[str, float] = field(default_factory=dict)
    # Index requests into the log metrics' indices per record, and the documents they left.
    metric_writes_per_record: float | None = None
    metric_documents: int = 0


def adjusted_cpu(
    before: dict[str, float],
    after: dict[str, float],
    records: int,
    window_s: float,
    idle_rate: dict[str, float],
) -> tuple[dict[str, float], dict[str, float]]:
    """CPU µs per record between two samples, with the shared services' background rate over
    ``window_s`` subtracted (largest first), and the raw figures."""
    raw = cpu_per_record(before, after, records)
    background = {k: v * window_s for k, v in idle_rate.items()}
    adjusted = {k: max(v - background.get(k, 0.0) * 1e6 / max(records, 1), 0.0) for k, v in raw.items()}
    ranked = sorted(adjusted.items(), key=lambda kv: -kv[1])
    return {k: round(v, 1) for k, v in ranked}, raw


def run_throughput(
    settings: Settings,
    cleanup: Cleanup,
    raw_topic: str,
    expected: Expected,
    *,
    label: str,
    parallelism: int,
    conf: dict[str, str],
    keep_tiers: bool = False,
    warmup_s: float = 60.0,
) -> tuple[Throughput, Tiers]:
    """The real graph, bounded from earliest, into tiers of its own; every tier polled."""
    tiers = Tiers(f"bi_{uuid.uuid4().hex[:8]}", raw_topic)
    cleanup.tiers.append(tiers)
    s = tiers.settings
    create_topics(settings, cleanup, [s.dlq_topic, s.logs_topic], 2)
    result = Throughput(label, expected.records, parallelism, conf, warmup_s=warmup_s)
    client = opensearch(settings)
    cold = ColdCounter(s)
    # What the shared services use without this job (other people's work), to subtract below.
    idle = CpuSampler(-1)
    idle_before, idle_t0 = idle.sample(), time.monotonic()
    time.sleep(15)
    idle_s = time.monotonic() - idle_t0
    idle_rate = {k: (v - idle_before.get(k, 0.0)) / idle_s for k, v in idle.sample().items()}
    log = REPO / "bench-results" / f"ingest-job-{tiers.name}.log"
    print(f"[{label}] job running (log: {log.relative_to(REPO)})", flush=True)
    with Load() as load:
        started = time.monotonic()
        proc = start_job(tiers, job_command(parallelism, conf), log)
        try:
            sampler = CpuSampler(proc.pid)
            cpu_first: dict[str, float] = {}
            cpu_done: dict[str, float] = {}
            cpu_warm: dict[str, float] = {}
            warm_at: tuple[float, int] | None = None  # (seconds, hot count) once warmed up
            series: list[tuple[float, int]] = []
            last_slow = 0.0
            exited_at: float | None = None
            with cassandra(s) as session:
                while True:
                    now = time.monotonic() - started
                    try:
                        n_hot = hot_count(client, s.opensearch_index_prefix)
                    except Exception as exc:  # a service restarted by someone else: keep polling
                        result.poll_errors.append(f"{now:.0f}s {type(exc).__name__}")
                        time.sleep(1)
                        continue
                    series.append((now, n_hot))
                    cpu = sampler.sample() if proc.poll() is None else cpu_done or sampler.sample()
                    if n_hot and result.first_visible_s is None:
                        result.first_visible_s, result.first_visible_count = now, n_hot
                        cpu_first = cpu
                        print(f"[{label}] first records searchable after {now:.1f}s ({n_hot})", flush=True)
                    if (
                        warm_at is None
                        and result.first_visible_s is not None
                        and now - result.first_visible_s >= warmup_s
                        and "hot" not in result.done_s
                    ):
                        warm_at, cpu_warm = (now, n_hot), cpu
                    if n_hot >= expected.records and "hot" not in result.done_s:
                        result.done_s["hot"] = now
                        cpu_done = cpu
                    if proc.poll() is not None and exited_at is None:
                        exited_at = now
                    # The slow counts wait until OpenSearch is complete or the job is over.
                    if ("hot" in result.done_s or exited_at is not None) and now - last_slow >= 2:
                        last_slow = now
                        try:
                            if "warm" not in result.done_s and (
                                warm_count(session, s, expected.partitions) >= expected.records
                            ):
                                result.done_s["warm"] = now
                            if "cold" not in result.done_s and cold.count() >= expected.records:
                                result.done_s["cold"] = now
                        except Exception as exc:
                            result.poll_errors.append(f"{now:.0f}s {type(exc).__name__}")
                    if len(result.done_s) == 3:
                        break
                    if exited_at is not None and now - exited_at > 120:
                        break  # incomplete: reported as such
                    time.sleep(0.5)
                result.complete = len(result.done_s) == 3
            with suppress(subprocess.TimeoutExpired):
                proc.wait(600)
        finally:
            stop_job(proc)
        result.job_wall_s = round(time.monotonic() - started, 2)
        result.exit_code = proc.returncode
        result.restarts = job_restarts(s, proc.pid)
    with suppress(Exception):
        writes, result.metric_documents = metric_writes(client, s.opensearch_index_prefix)
        result.metric_writes_per_record = round(writes / expected.records, 3)
    result.load = load.summary()
    if result.complete and result.first_visible_s is not None:
        end = max(result.done_s.values())
        in_window = expected.records - result.first_visible_count
        result.rate = round(in_window / (end - result.first_visible_s))
        window_s = result.done_s["hot"] - result.first_visible_s
        result.cpu_us_per_record, raw = adjusted_cpu(cpu_first, cpu_done, in_window, window_s, idle_rate)
        result.cpu_us_per_record_raw = raw
        if warm_at is not None and result.done_s["hot"] > warm_at[0]:
            steady_records = expected.records - warm_at[1]
            steady_s = result.done_s["hot"] - warm_at[0]
            result.after_warmup_records = steady_records
            result.after_warmup_rate = round(steady_records / steady_s)
            result.after_warmup_cpu_us_per_record, _ = adjusted_cpu(
                cpu_warm, cpu_done, steady_records, steady_s, idle_rate
            )
        result.services_background_cores = {k: round(v, 2) for k, v in idle_rate.items()}
        own = sum(v for k, v in raw.items() if not k.startswith("service"))
        result.job_cores = round(own * in_window / 1e6 / max(window_s, 1e-3), 2)
    t10 = next((t for t, n in series if n >= expected.records * 0.1), None)
    t90 = next((t for t, n in series if n >= expected.records * 0.9), None)
    if t10 is not None and t90 is not None and t90 > t10:
        result.steady_rate = round(expected.records * 0.8 / (t90 - t10))
    if not keep_tiers:
        drop_tiers(tiers)
        cleanup.tiers.remove(tiers)
    return result, tiers


# -- ceiling --------------------------------------------------------------------------------


def run_ceiling(
    settings: Settings, cleanup: Cleanup, expected: Expected, threads: int, refresh: str | None = None
) -> dict[str, Any]:
    """``expected.docs`` bulk-indexed straight into OpenSearch (a throwaway index, the job's
    template, ``refresh`` overriding its refresh_interval), until searchable."""
    from opensearchpy import helpers

    from schemas.projections import opensearch_index_template

    prefix = f"bi-ceiling-{uuid.uuid4().hex[:8]}"
    client = opensearch(settings)
    template = opensearch_index_template(prefix)
    if refresh:
        template["template"]["settings"]["refresh_interval"] = refresh
    client.indices.put_index_template(name=prefix, body=template)
    cleanup.templates.append(prefix)
    actions = ({"_index": f"{prefix}-{day}", "_id": lid, "_source": doc} for day, lid, doc in expected.docs)
    services = CpuSampler(-1)
    with Load() as load:
        cpu0 = services.sample()
        started = time.perf_counter()
        for ok, item in helpers.parallel_bulk(
            client, actions, thread_count=threads, chunk_size=2000, max_chunk_bytes=5 * 1024 * 1024
        ):
            if not ok:
                raise RuntimeError(f"bulk item failed: {item}")
        client.indices.refresh(index=f"{prefix}-*")
        elapsed = time.perf_counter() - started
        cpu = cpu_per_record(cpu0, services.sample(), len(expected.docs))
    count = hot_count(client, prefix)
    drop_index(settings, prefix)
    cleanup.templates.remove(prefix)
    return {
        "records": count,
        "seconds": round(elapsed, 2),
        "rate": round(count / elapsed),
        "threads": threads,
        "chunk_docs": 2000,
        "refresh_interval": template["template"]["settings"]["refresh_interval"],
        # Includes whatever else OpenSearch was doing for other people meanwhile.
        "opensearch_cpu_us_per_record": cpu.get("service: opensearch (shared)"),
        "load": load.summary(),
    }


# -- latency --------------------------------------------------------------------------------


def run_latency(
    settings: Settings,
    cleanup: Cleanup,
    *,
    rate: int,
    seconds: float,
    probe_every: int,
    parallelism: int,
    conf: dict[str, str],
) -> dict[str, Any]:
    raw_topic = f"bi_lat_{uuid.uuid4().hex[:8]}"
    create_topics(settings, cleanup, [raw_topic], PARTITIONS)
    tiers = Tiers(raw_topic, raw_topic)
    cleanup.tiers.append(tiers)
    s = tiers.settings
    create_topics(settings, cleanup, [s.dlq_topic, s.logs_topic], 2)
    now = datetime.now(UTC)
    n = int(rate * seconds)
    envelopes = generate(n + 10_000, seed=11, start=now - timedelta(minutes=30), span_s=1800)
    for i in range(0, len(envelopes), probe_every):
        envelopes[i].tenant = PROBE_TENANT
    client = opensearch(settings)
    prefix = s.opensearch_index_prefix
    p = producer(settings)
    sent: dict[int, float] = {}  # probe received_at (µs) -> nothing yet; seen ones are removed
    lock = threading.Lock()
    latencies: list[float] = []
    last_us = 0

    def send(env: RawEnvelope, i: int) -> None:
        nonlocal last_us
        us = max(time.time_ns() // 1000, last_us + 1)  # unique per probe: the probe's key below
        last_us = us
        env.received_at = datetime.fromtimestamp(us / 1e6, UTC)
        if env.tenant == PROBE_TENANT:
            with lock:
                sent[us] = us / 1e6
        while True:
            try:
                p.produce(raw_topic, env.encode(), partition=i % PARTITIONS)
                return
            except BufferError:
                p.poll(0.01)

    from opensearchpy.exceptions import TransportError

    def poll_once() -> None:
        with lock:
            if not sent:
                return
            oldest = min(sent)
        body = {
            "size": 10_000,
            "_source": ["ingested_at"],
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"tenant": PROBE_TENANT}},
                        {
                            "range": {
                                "ingested_at": {"gte": format_ts(datetime.fromtimestamp(oldest / 1e6, UTC))}
                            }
                        },
                    ]
                }
            },
        }
        try:
            hits = client.search(index=f"{prefix}-*", body=body, params={"ignore_unavailable": "true"})
        except TransportError as exc:
            # A daily index the job has just created answers 503 until its shard has started.
            if exc.status_code == 503:
                return
            raise
        seen_at = time.time()
        with lock:
            for hit in hits["hits"]["hits"]:
                us = micros(parse_ts(hit["_source"]["ingested_at"]))
                sent_s = sent.pop(us, None)
                if sent_s is not None:
                    latencies.append(seen_at - sent_s)

    log = REPO / "bench-results" / f"ingest-job-{tiers.name}.log"
    print(f"[latency] job running unbounded (log: {log.relative_to(REPO)})", flush=True)
    proc = start_job(tiers, job_command(parallelism, conf, bounded=False), log)
    result: dict[str, Any] = {"rate": rate, "seconds": seconds, "probe_every": probe_every}
    try:
        # Warm-up: a trickle of probes until the job answers, then a few quiet seconds.
        warm = iter(envelopes[n:])
        started = time.monotonic()
        while not latencies:
            if proc.poll() is not None:
                raise RuntimeError(f"the job exited ({proc.returncode}); see {log}")
            if time.monotonic() - started > 600:
                raise RuntimeError("the job did not index anything within 10 minutes")
            env = next(warm)
            env.tenant = PROBE_TENANT
            send(env, 0)
            p.poll(0)
            time.sleep(0.1)
            poll_once()
        result["startup_s"] = round(time.monotonic() - started, 1)
        time.sleep(5)
        poll_once()
        with lock:
            latencies.clear()
            sent.clear()
        stop = threading.Event()

        def poller() -> None:
            while not stop.is_set():
                t = time.monotonic()
                poll_once()
                stop.wait(max(0.2 - (time.monotonic() - t), 0.0))

        poll_thread = threading.Thread(target=poller, daemon=True)
        with Load() as load:
            poll_thread.start()
            begin = time.monotonic()
            i = 0
            while i < n:
                due = min(int((time.monotonic() - begin) * rate), n)
                while i < due:
                    send(envelopes[i], i)
                    i += 1
                p.poll(0)
                time.sleep(0.005)
            p.flush(60)
            result["send_s"] = round(time.monotonic() - begin, 2)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with lock:
                    if not sent:
                        break
                time.sleep(0.5)
            stop.set()
            poll_thread.join()
        with lock:
            result["unseen"] = len(sent)
            values = sorted(latencies)
    finally:
        stop_job(proc)
        result["restarts"] = job_restarts(s, proc.pid)
    drop_tiers(tiers)
    cleanup.tiers.remove(tiers)
    result["probes"] = len(values)
    if values:
        result["p50_ms"] = round(1000 * values[len(values) // 2])
        result["p99_ms"] = round(1000 * values[min(int(len(values) * 0.99), len(values) - 1)])
        result["max_ms"] = round(1000 * values[-1])
    result["load"] = load.summary()
    return result


# -- the job runner (configuration overrides) -------------------------------------------------


def job_runner(parallelism: int, conf: dict[str, str], bounded: bool) -> int:
    """Runs as the job's own process: the ingest job as ``strata job run`` runs it, with ``conf``
    over flink-conf.yaml (``--conf``), to try a setting without editing the shared file."""
    import jobs.flink as jf
    from jobs.ingest import job

    base = jf.read_flink_conf
    jf.read_flink_conf = lambda path=jf.FLINK_CONF: {**base(path), **conf}  # type: ignore[assignment]
    settings = get_settings()
    options = job.IngestOptions.from_settings(settings, start=job.StartPosition("earliest"), bounded=bounded)
    job.run(settings, options, parallelism=parallelism)
    return 0


# -- report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "cpu": model, "memory_gib": round(mem, 1)}


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def parse_conf(items: list[str]) -> dict[str, str]:
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--conf {item!r}: expected key=value")
        conf[key.strip()] = value.strip()
    return conf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--parallelism", type=int, default=None, help="default: STRATA_JOB_PARALLELISM")
    parser.add_argument("--conf", action="append", default=[], help="key=value over flink-conf.yaml")
    parser.add_argument("--ceiling-threads", type=int, default=2)
    parser.add_argument("--ceiling-refresh", help="also a ceiling run with this refresh_interval")
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--latency-rate", type=int, default=None, help="default: half the throughput")
    parser.add_argument("--probe-every", type=int, default=20)
    parser.add_argument(
        "--warmup-s", type=float, default=60.0, help="the steady state starts this long after the first hit"
    )
    parser.add_argument("--skip", action="append", default=[], choices=["ceiling", "latency"])
    parser.add_argument("--job-runner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--unbounded", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    conf = parse_conf(args.conf)
    settings = get_settings()
    parallelism = args.parallelism or settings.job_parallelism
    if args.job_runner:
        return job_runner(parallelism, conf, not args.unbounded)

    from infra.stack.services import all_services

    for service in all_services(settings):
        if service.name in ("kafka", "opensearch", "cassandra", "s3") and (problem := service.check()):
            print(f"{service.name} is not available ({problem}); run `strata stack up`", file=sys.stderr)
            return 1
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(["tests/bench/bench_ingest.py", *(argv if argv is not None else sys.argv[1:])]),
        "parallelism": parallelism,
        "conf": conf,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    cleanup = Cleanup(settings)
    try:
        raw_topic = f"bi_raw_{uuid.uuid4().hex[:8]}"
        create_topics(settings, cleanup, [raw_topic], PARTITIONS)
        now = datetime.now(UTC)
        envelopes = generate(args.records, seed=7, start=now - timedelta(hours=2), span_s=6600)
        values = [e.encode() for e in envelopes]
        del envelopes
        raw_bytes = sum(len(v) + 1 for v in values)  # as NDJSON: one line per envelope
        print(f"{len(values)} envelopes, {raw_bytes / len(values):.0f} bytes each on average", flush=True)
        t = time.perf_counter()
        expected = expect(values)
        print(
            f"expected: {expected.records} records ({expected.rejected} rejected), "
            f"pipeline check {time.perf_counter() - t:.0f}s",
            flush=True,
        )
        produce_s = produce_all(settings, raw_topic, values)
        loaded = topic_size(settings, raw_topic)
        print(f"loaded {loaded} messages into {raw_topic} ({PARTITIONS} partitions) in {produce_s:.1f}s")
        results["input"] = {
            "records": len(values),
            "stored_records": expected.records,
            "rejected": expected.rejected,
            "mean_envelope_bytes": round(raw_bytes / len(values) - 1, 1),
            "formats": dict(expected.formats),
            "topic_messages": loaded,
        }
        del values

        main_run, tiers = run_throughput(
            settings,
            cleanup,
            raw_topic,
            expected,
            label="pipeline",
            parallelism=parallelism,
            conf=conf,
            keep_tiers=True,
            warmup_s=args.warmup_s,
        )
        results["throughput"] = main_run.__dict__
        objects = archive_objects(tiers.settings)
        parquet = sum(size for _, size in objects)
        results["compression"] = {
            "raw_ndjson_bytes": raw_bytes,
            "parquet_bytes": parquet,
            "parquet_files": sum(1 for k, size in objects if size and "/_" not in k and "/." not in k),
            "ratio": round(parquet / raw_bytes, 4),
        }
        drop_tiers(tiers)
        cleanup.tiers.remove(tiers)
        print(f"[pipeline] {main_run.rate} records/s", flush=True)

        if "ceiling" not in args.skip:
            results["ceiling"] = run_ceiling(settings, cleanup, expected, args.ceiling_threads)
            print(f"[ceiling] {results['ceiling']}", flush=True)
            if args.ceiling_refresh:
                results["ceiling_refresh"] = run_ceiling(
                    settings, cleanup, expected, args.ceiling_threads, args.ceiling_refresh
                )
                print(f"[ceiling] {results['ceiling_refresh']}", flush=True)
        del expected.docs[:]

        if "latency" not in args.skip:
            rate = args.latency_rate or max(int((main_run.rate or 2000) / 2), 100)
            results["latency"] = run_latency(
                settings,
                cleanup,
                rate=rate,
                seconds=args.latency_seconds,
                probe_every=args.probe_every,
                parallelism=parallelism,
                conf=conf,
            )

    finally:
        results["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
        cleanup.run()

    tp = results["throughput"]
    rows = [
        (
            "input",
            f"{results['input']['records']:,} envelopes, {results['input']['mean_envelope_bytes']} B avg",
        ),
        (
            "pipeline throughput",
            f"{tp['rate']:,} records/s (all three tiers)" if tp["rate"] else "incomplete",
        ),
        ("  first searchable", f"{tp['first_visible_s']:.1f}s after launch ({tp['first_visible_count']} in)"),
        ("  tiers complete", ", ".join(f"{k} {v:.1f}s" for k, v in tp["done_s"].items())),
        ("  job wall time", f"{tp['job_wall_s']:.1f}s (exit {tp['exit_code']}, {tp['restarts']} restarts)"),
        ("  OpenSearch 10-90 %", f"{tp['steady_rate']} records/s"),
        ("  job's own CPU", f"{tp['job_cores']} cores while running"),
        (
            "  log metrics writes",
            f"{tp['metric_writes_per_record']} index requests a record, {tp['metric_documents']:,} documents",
        ),
    ]

    def cpu_rows(per_record: dict[str, float]) -> None:
        for group, us in list(per_record.items())[:12]:
            rows.append((f"  CPU µs/record, {group}", f"{us}"))

    cpu_rows(tp["cpu_us_per_record"])
    if tp["after_warmup_rate"]:
        steady = tp["after_warmup_cpu_us_per_record"]
        rows.append(
            (
                f"after the first {tp['warmup_s']:.0f} s",
                f"{tp['after_warmup_rate']:,} records/s into OpenSearch "
                f"({tp['after_warmup_records']:,} records), "
                f"{sum(steady.values()):.0f} µs CPU/record",
            )
        )
        cpu_rows(steady)
    else:
        rows.append((f"after the first {tp['warmup_s']:.0f} s", "run too short for a steady-state window"))
    if "ceiling" in results:
        c = results["ceiling"]
        ratio = f" (pipeline/ceiling {tp['rate'] / c['rate']:.2f})" if tp["rate"] else ""
        rows.append(("OpenSearch bulk ceiling", f"{c['rate']:,} records/s{ratio}, load {c['load']}"))
        if "ceiling_refresh" in results:
            c = results["ceiling_refresh"]
            rows.append((f"  refresh_interval {c['refresh_interval']}", f"{c['rate']:,} records/s"))
    if "latency" in results:
        lat = results["latency"]
        rows.append(
            (
                "latency to searchable",
                f"p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms at {lat['rate']:,} records/s "
                f"({lat['probes']} probes, {lat['unseen']} unseen, {lat['restarts']} restarts), "
                f"load {lat['load']}",
            )
        )
    comp = results["compression"]
    rows.append(("cold tier", f"{comp['ratio']:.3f} Parquet bytes per NDJSON byte"))
    rows.append(("load average", f"start {results['load_at_start']}, during run {tp['load']}"))
    print(table(rows))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"results: {RESULTS.relative_to(REPO)}")
    if tp["complete"] and not tp["poll_errors"] and not tp["restarts"]:
        for log in JOB_LOGS:
            log.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
