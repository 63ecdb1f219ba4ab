"""Log metrics: a dashboard's queries over 30 days of stored series, per store, and the metrics
step's CPU per record in the ingest job.

    .venv/bin/python -m tests.bench.bench_metrics load      # once: 30 days x 50 services, 1m/1h/1d
    .venv/bin/python -m tests.bench.bench_metrics run       # p50/p95 of each dashboard query
    .venv/bin/python -m tests.bench.bench_metrics cpu       # the accumulator's CPU per record,
                                                            # Python's reference and the job's Java
    .venv/bin/python -m tests.bench.bench_metrics drop

The series are written straight into the stores as the job writes them (one contribution per
series and bucket): OpenSearch metric indices under the prefix ``strata-bench-metrics`` and, for
comparison, a PostgreSQL table per resolution (``bench_metrics_1m``, ``…_1h``, ``…_1d``) indexed
on (tenant, bucket). The tenant is ``bench-metrics``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import psycopg

from connectors.opensearch.metrics import (
    MetricsQuery,
    MetricsReader,
    drop_metrics,
    metrics_index,
    metrics_index_template,
    metrics_pattern,
    metrics_template_name,
)
from core.metrics import RESOLUTIONS, DictStore, Series, ServiceAccumulator, contribution_id, index_suffix
from infra.settings import Settings, get_settings

PREFIX = "strata-bench-metrics"
TENANT = "bench-metrics"
SERVICES = [f"svc-{i:02d}" for i in range(50)]
DAYS = 30
NOW = 1_764_115_200  # a fixed midnight (2025-11-26), so every run reads the same data
START = NOW - DAYS * 86400
RUNS = 40


def _docs(resolution: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    size = RESOLUTIONS[resolution]
    rnd = random.Random(resolution)
    for service in SERVICES:
        series = Series(TENANT, service, "INFO", "_none", "_other")
        for bucket in range(START, NOW, size):
            count = rnd.randint(0, 60) * size // 60
            doc = {
                "tenant": TENANT,
                "service": service,
                "level": "INFO",
                "pattern": "_none",
                "host": "_other",
                "bucket": bucket,
                "count": count,
                "bytes": count * 180,
            }
            yield contribution_id(series, resolution, bucket, 0, 0), index_suffix(resolution, bucket), doc


def load(s: Settings) -> None:
    from opensearchpy import OpenSearch, helpers

    client = OpenSearch(s.opensearch_endpoint, timeout=120)
    client.indices.put_index_template(
        name=metrics_template_name(PREFIX), body=metrics_index_template(PREFIX, refresh_interval="-1")
    )
    with psycopg.connect(s.postgres_dsn, autocommit=True) as conn:
        for res in RESOLUTIONS:
            began = time.monotonic()
            expected = len(SERVICES) * DAYS * 86400 // RESOLUTIONS[res]
            client.indices.refresh(index=metrics_pattern(PREFIX, res), ignore_unavailable=True)
            have = client.count(index=metrics_pattern(PREFIX, res), ignore_unavailable=True)["count"]
            if have != expected:  # a load cut short is redone; ids make it idempotent
                actions = (
                    {"_index": metrics_index(PREFIX, suffix), "_id": doc_id, "_source": doc}
                    for doc_id, suffix, doc in _docs(res)
                )
                helpers.bulk(client, actions, chunk_size=5000, request_timeout=300)
            table = f"bench_metrics_{res}"
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(
                f"CREATE TABLE {table} (id text PRIMARY KEY, tenant text, service text, level text, "
                "pattern text, host text, bucket bigint, count bigint, bytes bigint)"
            )
            with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for doc_id, _, d in _docs(res):
                    copy.write_row(
                        (
                            doc_id,
                            d["tenant"],
                            d["service"],
                            d["level"],
                            d["pattern"],
                            d["host"],
                            d["bucket"],
                            d["count"],
                            d["bytes"],
                        )
                    )
            conn.execute(f"CREATE INDEX ON {table} (tenant, bucket) INCLUDE (service, count)")
            conn.execute(f"ANALYZE {table}")
            print(f"{res}: {expected} series points in {time.monotonic() - began:.0f}s")
    client.indices.put_settings(index=metrics_pattern(PREFIX), body={"refresh_interval": "5s"})
    client.indices.refresh(index=metrics_pattern(PREFIX))
    client.indices.forcemerge(index=metrics_pattern(PREFIX), max_num_segments=1, request_timeout=600)


def _timed(call: Callable[[], Any], before: Callable[[], Any] | None = None) -> tuple[float, float]:
    call()  # warm
    times = []
    for _ in range(RUNS):
        if before is not None:
            before()
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


class _WriteToday:
    """What the job does while a dashboard is open: rewrite a contribution of the range's last chunk
    (the same id each time, count 0, so the answer stays the same but the chunk is recomputed)."""

    def __init__(self, os_client: Any, q: MetricsQuery) -> None:
        bucket = q.end_s - RESOLUTIONS[q.resolution]
        series = Series(TENANT, q.services[0] if q.services else SERVICES[0], "INFO", "_none", "_other")
        self.client = os_client
        self.index = metrics_index(PREFIX, index_suffix(q.resolution, bucket))
        self.id = contribution_id(series, q.resolution, bucket, 99, 0)
        self.doc = {**series.__dict__, "bucket": bucket, "count": 0, "bytes": 0}

    def __call__(self) -> None:
        self.client.index(index=self.index, id=self.id, body=self.doc, refresh="true")

    def remove(self) -> None:
        self.client.delete(index=self.index, id=self.id, refresh="true", ignore=[404])


def run(s: Settings) -> None:
    """Each query three ways: cold (a new reader: the whole range is aggregated), while the job
    writes the range's last chunk (that chunk is aggregated again), and over unchanged chunks (all
    reused). The answers of the three are checked to be the same."""
    from connectors.opensearch.search import client

    os_client = client(s.opensearch_endpoint, timeout_s=60)
    reader = MetricsReader(os_client, PREFIX)
    cases = {
        "30d, step 1h, by service (1h rollup)": MetricsQuery(
            TENANT, "1h", START, NOW, 3600, group_by="service"
        ),
        "30d, step 1d, by service (1d rollup)": MetricsQuery(
            TENANT, "1d", START, NOW, 86400, group_by="service"
        ),
        "24h, step 5m, by service (1m)": MetricsQuery(
            TENANT, "1m", NOW - 86400, NOW, 300, group_by="service"
        ),
        "24h, step 1m, one service (1m)": MetricsQuery(
            TENANT, "1m", NOW - 86400, NOW, 60, services=("svc-07",)
        ),
        "30d, step 1h, one service (1h)": MetricsQuery(TENANT, "1h", START, NOW, 3600, services=("svc-07",)),
    }
    print(
        f"{'query':40s} {'points':>6s}  OpenSearch p50/p95 ms: cold | last chunk written | unchanged"
        "   PostgreSQL p50/p95 ms"
    )
    written: list[_WriteToday] = []
    try:
        with psycopg.connect(s.postgres_dsn, autocommit=True) as conn:
            for name, q in cases.items():
                answer = reader.read(q)
                assert MetricsReader(os_client, PREFIX).read(q) == answer
                points = sum(len(x["points"]) for x in answer.series)
                cold = _timed(lambda q=q: MetricsReader(os_client, PREFIX).read(q))
                written.append(_WriteToday(os_client, q))
                live = _timed(lambda q=q: reader.read(q), before=written[-1])
                assert reader.last_recomputed == 1
                warm = _timed(lambda q=q: reader.read(q))
                assert reader.last_recomputed == 0
                assert reader.read(q) == answer  # the count-0 contribution changes no value
                pg_sql = (
                    "SELECT service, bucket - bucket %% %s AS b, SUM(count) "
                    f"FROM bench_metrics_{q.resolution} WHERE tenant = %s AND bucket >= %s AND bucket < %s"
                    + (" AND service = ANY(%s)" if q.services else "")
                    + " GROUP BY 1, 2 ORDER BY 1, 2"
                )
                args: list[Any] = [q.step_s, TENANT, q.start_s, q.end_s] + (
                    [list(q.services)] if q.services else []
                )
                rows = conn.execute(pg_sql, args).fetchall()
                assert len(rows) == points, (len(rows), points)
                pg = _timed(lambda sql=pg_sql, a=args: conn.execute(sql, a).fetchall())
                print(
                    f"{name:40s} {points:6d}  {cold[0]:6.1f}/{cold[1]:6.1f} | {live[0]:6.1f}/{live[1]:6.1f}"
                    f" | {warm[0]:6.1f}/{warm[1]:6.1f}   {pg[0]:6.1f}/{pg[1]:6.1f}"
                )
    finally:
        for marker in written:  # so that a later `load` finds the counts it expects
            marker.remove()


def cpu() -> None:
    """The per-record work of the job's metrics step, without Flink: the accumulator over dict
    stores (the job's MapState adds its own cost, which this leaves out), with a flush of what
    changed every 5,000 records, as the job's timer does every 5 s at 1,000 records/s."""
    for patterns, hosts in ((10, 8), (40, 30)):
        rnd = random.Random(1)
        n = 200_000
        rows = [
            (
                rnd.choice(["INFO", "WARN", "ERROR"]),
                f"p{rnd.randint(1, patterns)}",
                f"h{rnd.randint(1, hosts)}",
                NOW + i // 100,
                "x" * rnd.randint(80, 300),
                i,
            )
            for i in range(n)
        ]
        accs = {svc: ServiceAccumulator(DictStore(), DictStore(), DictStore()) for svc in SERVICES[:10]}
        added = flushed = 0.0
        docs = 0
        for i, (level, pattern, host, ts, msg, off) in enumerate(rows):
            svc = SERVICES[i % 10]
            began = time.process_time()
            accs[svc].add(level, pattern, host, ts, len(msg.encode()), 0, off, i)
            added += time.process_time() - began
            if i % 5000 == 4999:
                began = time.process_time()
                for name, acc in accs.items():
                    for _id, _suffix, doc in acc.flush(TENANT, name):
                        orjson.dumps(doc)
                        docs += 1
                    acc.close_idle(i, 600)
                flushed += time.process_time() - began
        print(
            f"{patterns} patterns x {hosts} hosts x 3 levels per service: add {added / n * 1e6:.1f} µs, "
            f"flush {flushed / n * 1e6:.1f} µs CPU per record ({docs / n:.2f} documents per record)"
        )


def cpu_jvm(s: Settings) -> None:
    """The same workload through the job's Java accumulator (tests/bench/java/BenchLogMetrics.java,
    run by ``java`` as a source file against Strata's jar)."""
    import subprocess
    from pathlib import Path

    import pyflink

    from infra.stack.flink_jars import strata_jar

    lib = Path(pyflink.__file__).resolve().parent / "lib"
    source = Path(__file__).resolve().parent / "java" / "BenchLogMetrics.java"
    subprocess.run(["java", "-cp", f"{strata_jar(s)}:{lib}/*", str(source)], check=True)


def drop(s: Settings) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(s.opensearch_endpoint, timeout=120)
    drop_metrics(client, PREFIX)
    with psycopg.connect(s.postgres_dsn, autocommit=True) as conn:
        for res in RESOLUTIONS:
            conn.execute(f"DROP TABLE IF EXISTS bench_metrics_{res}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["load", "run", "cpu", "drop"], nargs="?", default="run")
    args = parser.parse_args(argv)
    s = get_settings()
    actions = {"load": lambda: load(s), "run": lambda: run(s), "drop": lambda: drop(s)}
    actions["cpu"] = lambda: (cpu(), cpu_jvm(s))
    actions[args.what]()


if __name__ == "__main__":
    sys.exit(main())
