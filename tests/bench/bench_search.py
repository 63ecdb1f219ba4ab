"""Search latency through the real API: typical hot-tier searches over millions of records, and a
30-day search that spans all three tiers.

    .venv/bin/python -m tests.bench.bench_search load --hot 5000000      # once: bulk-load the data
    .venv/bin/python -m tests.bench.bench_search run                      # p50/p95 per search
    .venv/bin/python -m tests.bench.bench_search drop                     # remove everything

The data lives in an index prefix, keyspace and S3 prefix of the benchmark's own
(``strata-bench-search``, ``strata_bench_search``, ``bench-search/``), under the tenant
``bench-search``, so it is loaded once and reused. The three-tier search runs with hot_days=7 and
warm_days=21 so that 30 days reach the archive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg

from infra.settings import Settings, get_settings
from schemas.projections import opensearch_index_name, opensearch_index_template
from schemas.record import Level, Record
from tests.support.tiers import create_warm_tables, write_archive_file, write_warm

PREFIX = "strata-bench-search"
KEYSPACE = "strata_bench_search"
ARCHIVE = "bench-search/logs"
TENANT = "bench-search"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SERVICES = [f"svc-{i:02d}" for i in range(20)] + ["payment-service", "checkout"]
HOSTS = [f"host-{i:02d}" for i in range(40)]
LEVELS = [Level.DEBUG] * 10 + [Level.INFO] * 60 + [Level.WARN] * 15 + [Level.ERROR] * 12 + [Level.FATAL] * 3
WORDS = [
    "payment", "timeout", "order", "user", "cache", "lock", "retry", "upstream",
    "queue", "disk", "socket", "token", "session", "refund", "invoice",
]  # fmt: skip
TEMPLATES = [
    "Payment failed: timeout after {n} ms",
    "payment accepted for order A-{n}",
    "connection reset by peer db-{n}.example.com",
    "user {n} logged in from 10.0.{n}.7",
    "GET /api/v1/orders/{n} 200 in {n} ms",
    "cache miss for key user:{n}",
    "timeout waiting for lock {n}",
    "retrying request attempt {n}: upstream unavailable",
]


def bench_settings(**update: Any) -> Settings:
    return get_settings().model_copy(
        update={
            "opensearch_index_prefix": PREFIX,
            "cassandra_keyspace": KEYSPACE,
            "archive_prefix": ARCHIVE,
            **update,
        }
    )


def generate(count: int, start: datetime, end: datetime, seed: int) -> Iterator[Record]:
    rng = random.Random(seed)
    span_us = int((end - start).total_seconds() * 1e6)
    for i in range(count):
        ts = start + timedelta(microseconds=rng.randrange(span_us))
        n = rng.randrange(100_000)
        message = rng.choice(TEMPLATES).format(n=n) + " " + " ".join(rng.sample(WORDS, 2))
        yield Record(
            log_id=f"{seed:04x}{i:028x}",
            tenant=TENANT,
            timestamp=ts,
            ingested_at=ts,
            level=rng.choice(LEVELS),
            service=rng.choice(SERVICES),
            host=rng.choice(HOSTS),
            environment="prod",
            region="eu-west-1",
            message=message,
            trace_id=TRACE
            if i % 100_000 == 7
            else (f"{rng.getrandbits(128):032x}" if rng.random() < 0.4 else None),
            span_id=None,
            attributes={"req_id": f"r-{n % 5000}", "status": rng.choice(["200", "200", "200", "500", "503"])},
            tags=[],
            source_format="json",
            pattern_id=None,
            pattern=None,
            masked={},
        )


# -- loading ------------------------------------------------------------------------------------


def load_hot(settings: Settings, count: int, now: datetime) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(settings.opensearch_endpoint, timeout=300)
    template = opensearch_index_template(PREFIX)
    template["template"]["settings"]["refresh_interval"] = "-1"  # during the load only
    client.indices.put_index_template(name=PREFIX, body=template)
    batches: list[bytes] = []
    lock = threading.Condition()
    done = False
    sent = 0
    began = time.monotonic()

    def sender() -> None:
        nonlocal sent
        while True:
            with lock:
                while not batches and not done:
                    lock.wait()
                if not batches:
                    return
                body = batches.pop(0)
                lock.notify_all()
            result = client.bulk(body=body, params={"filter_path": "errors,items.*.error"})
            if result.get("errors"):
                raise RuntimeError(f"bulk errors: {str(result)[:500]}")
            with lock:
                sent += body.count(b"\n") // 2

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    chunk: list[bytes] = []
    start = now - timedelta(days=settings.hot_days) + timedelta(hours=1)
    for i, r in enumerate(generate(count, start, now, seed=1), 1):
        meta = {"index": {"_index": opensearch_index_name(PREFIX, r), "_id": r.log_id}}
        chunk.append(orjson.dumps(meta) + b"\n" + r.to_json() + b"\n")
        if len(chunk) == 5000:
            with lock:
                while len(batches) >= 4:
                    lock.wait()
                batches.append(b"".join(chunk))
                lock.notify_all()
            chunk = []
        if i % 500_000 == 0:
            print(f"  hot: {i:,} generated, {sent:,} indexed, {time.monotonic() - began:.0f} s", flush=True)
    with lock:
        if chunk:
            batches.append(b"".join(chunk))
        done = True
        lock.notify_all()
    for t in threads:
        t.join()
    client.indices.put_settings(index=f"{PREFIX}-*", body={"index": {"refresh_interval": "1s"}})
    client.indices.refresh(index=f"{PREFIX}-*")
    print(f"  hot: {count:,} records in {time.monotonic() - began:.0f} s; merging segments", flush=True)
    client.indices.forcemerge(index=f"{PREFIX}-*", max_num_segments=4, params={"request_timeout": 3600})
    template["template"]["settings"]["refresh_interval"] = "1s"
    client.indices.put_index_template(name=PREFIX, body=template)


def load_warm(settings: Settings, count: int, now: datetime, hot_days: int, warm_days: int) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    session = cluster.connect()
    create_warm_tables(session, KEYSPACE, default_ttl_seconds=60 * 86400)
    began = time.monotonic()
    start, end = now - timedelta(days=warm_days), now - timedelta(days=hot_days) + timedelta(hours=1)
    write_warm(session, KEYSPACE, "logs", generate(count, start, end, seed=2))
    print(f"  warm: {count:,} records in {time.monotonic() - began:.0f} s", flush=True)
    cluster.shutdown()


def load_cold(settings: Settings, count: int, now: datetime, warm_days: int, days: int) -> None:
    from connectors.s3.archive import s3_filesystem

    s = settings
    fs = s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region)
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    start, end = now - timedelta(days=days), now - timedelta(days=warm_days) + timedelta(hours=1)
    for r in generate(count, start, end, seed=3):
        groups[(f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}")].append(r)
    began = time.monotonic()
    for (dt, hour), group in groups.items():
        write_archive_file(
            fs, f"{s.s3_bucket}/{ARCHIVE}/tenant={TENANT}/dt={dt}/hour={hour}/part-0-0-0", group
        )
    print(f"  cold: {count:,} records in {len(groups)} files in {time.monotonic() - began:.0f} s", flush=True)


# -- measuring ----------------------------------------------------------------------------------


@contextlib.contextmanager
def api_with_key(settings: Settings, **env: str) -> Iterator[tuple[str, str]]:
    """The API in a process of its own (as `strata serve` runs it), and a search key of the tenant."""
    import os
    import subprocess

    from connectors.postgres import tenants
    from connectors.postgres.migrate import migrate
    from tests.integration.collector_support import free_port
    from tests.support.server import answers_health

    migrate(settings.postgres_dsn)

    async def create() -> str:
        async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
            await conn.execute("DELETE FROM tenants WHERE id = %s", (TENANT,))
            await tenants.create_tenant(conn, TENANT)
            _, key = await tenants.create_key(conn, TENANT, scopes=("search",))
            return key

    key = asyncio.run(create())
    port = free_port()
    environ = dict(
        os.environ,
        STRATA_OPENSEARCH_INDEX_PREFIX=PREFIX,
        STRATA_CASSANDRA_KEYSPACE=KEYSPACE,
        STRATA_ARCHIVE_PREFIX=ARCHIVE,
        STRATA_AUTH_CACHE_S="600",
        **env,
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app"]
    server = subprocess.Popen([*cmd, "--port", str(port), "--log-level", "warning"], env=environ)
    url = f"http://127.0.0.1:{port}"
    try:
        if not answers_health(url, server):
            raise RuntimeError("the API did not start")
        yield url, key
    finally:
        server.terminate()
        server.wait(30)
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM tenants WHERE id = %s", (TENANT,))


def measure(client: httpx.Client, path: str, params: dict[str, Any], runs: int) -> tuple[float, float, Any]:
    for _ in range(3):
        client.get(path, params=params)
    took = []
    body = None
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(path, params=params)
        took.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        body = response.json()
    took.sort()
    return statistics.median(took), took[max(int(len(took) * 0.95) - 1, 0)], body


def run(runs: int) -> None:
    search, histogram, top = "/v1/logs/search", "/v1/logs/histogram", "/v1/logs/top"
    hot_cases = [
        (
            "filter only: service + level, last 24 h",
            search,
            {"service": "checkout", "level": "ERROR", "from": "now-24h"},
        ),
        ("filter only: level>=WARN, last 14 d", search, {"level": ">=WARN", "from": "now-14d"}),
        ("full text: payment timeout, last 24 h", search, {"q": "payment timeout", "from": "now-24h"}),
        (
            'full text: "connection reset" NOT lock, 14 d',
            search,
            {"q": '"connection reset" NOT lock', "from": "now-14d"},
        ),
        ("trace id, last 14 d", search, {"trace_id": TRACE, "from": "now-14d"}),
        ("histogram by level, last 24 h (auto)", histogram, {"from": "now-24h"}),
        ("histogram by level, last 14 d, 1 h buckets", histogram, {"from": "now-14d", "interval": "1h"}),
        ("top services, last 14 d", top, {"by": "service", "from": "now-14d"}),
    ]
    print("| search | p50 ms | p95 ms | hits (total) |\n|---|---:|---:|---:|")
    with (
        api_with_key(bench_settings()) as (url, key),
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client,
    ):
        for name, path, params in hot_cases:
            p50, p95, body = measure(client, path, params, runs)
            hits = body.get("total", sum(i["count"] for i in body.get("items", [])))
            print(f"| {name} | {p50:.0f} | {p95:.0f} | {hits:,} |", flush=True)
    tiered = bench_settings(hot_days=7, warm_days=21)
    cases = [
        ("30 d, all tiers: payment (first page)", {"q": "payment", "from": "now-30d"}),
        (
            "30 d, all tiers: service + level>=WARN",
            {"service": "checkout", "level": ">=WARN", "from": "now-30d"},
        ),
        ("30 d, all tiers: histogram", None),
    ]
    with (
        api_with_key(tiered, STRATA_HOT_DAYS="7", STRATA_WARM_DAYS="21") as (url, key),
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client,
    ):
        for name, params in cases:
            if params is None:
                p50, p95, body = measure(client, "/v1/logs/histogram", {"from": "now-30d"}, runs)
            else:
                p50, p95, body = measure(client, "/v1/logs/search", params, runs)
            tiers = ", ".join(
                f"{t['tier']} {t['took_ms']:.0f} ms"
                + ("" if t["status"] == "ok" else f" {t['status'].upper()}")
                for t in body["tiers"]
            )
            print(f"| {name} | {p50:.0f} | {p95:.0f} | {body['total']:,} ({tiers}) |", flush=True)


def drop() -> None:
    from cassandra.cluster import Cluster
    from opensearchpy import OpenSearch

    from connectors.s3.archive import s3_filesystem

    s = bench_settings()
    client = OpenSearch(s.opensearch_endpoint, timeout=120)
    client.indices.delete(index=f"{PREFIX}-*")
    with contextlib.suppress(Exception):
        client.indices.delete_index_template(name=PREFIX)
    cluster = Cluster(s.cassandra_contact_points, port=s.cassandra_port)
    cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    cluster.shutdown()
    s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region).delete_dir(
        f"{s.s3_bucket}/bench-search"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_search")
    sub = parser.add_subparsers(dest="cmd", required=True)
    load = sub.add_parser("load")
    load.add_argument("--hot", type=int, default=5_000_000)
    load.add_argument("--warm", type=int, default=200_000)
    load.add_argument("--cold", type=int, default=200_000)
    load.add_argument("--only", choices=["hot", "warm", "cold"])
    bench = sub.add_parser("run")
    bench.add_argument("--runs", type=int, default=40)
    sub.add_parser("drop")
    args = parser.parse_args(argv)
    if args.cmd == "load":
        now = datetime.now(UTC)
        s = bench_settings()
        if args.only in (None, "hot"):
            load_hot(s, args.hot, now)
        if args.only in (None, "warm"):
            load_warm(s, args.warm, now, hot_days=7, warm_days=21)
        if args.only in (None, "cold"):
            load_cold(s, args.cold, now, warm_days=21, days=35)
    elif args.cmd == "run":
        run(args.runs)
    else:
        drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
