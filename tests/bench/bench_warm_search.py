"""The warm tier's reader over 30 days of partitions with no storage-attached index (the default):
latency per query and what each query reads, so the cost of a scanned gigabyte can be stated.

    .venv/bin/python -m tests.bench.bench_warm_search load [--records 300000] [--days 30]
    .venv/bin/python -m tests.bench.bench_warm_search run [--runs 20] [--scan-rows 200000]
    .venv/bin/python -m tests.bench.bench_warm_search drop

``load`` writes the search benchmark's records (``bench_search.generate``: 22 services, 40 hosts,
one trace id shared by a few records) as the ingest job lays them out, into a keyspace of the
benchmark's own (``strata_bench_warm``) with no index, over the days 15 to 45 ago: the slice the
warm tier answers for. ``run`` calls :class:`connectors.cassandra.search.WarmSearch` directly (the
tier alone, no API or merge) over those 30 days, newest first, 100 records a page: everything, a
word, a level, a trace id, and a lookup by id over the whole slice and over the two hours around
its time (as ``GET /v1/logs/{id}?timestamp=`` asks). Each query is run ``--runs`` times after two
warm-up runs; it reports p50/p95, the rows the reader consumed (whole rows, key-only rows of a
lookup, column rows: the timestamp, id and checked columns of a condition on fields only, rows
Cassandra counted for an exact total), the bytes those rows hold (their values' sizes, measured
on a sample of the table; a key row is its 8-byte timestamp and 32-character id),
and Cassandra's CPU per query read from /proc (shared with the machine's other work: rough).
It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.cassandra.search import WarmSearch, _checked_columns, connect
from core.query import TierQuery, parse
from infra.settings import get_settings
from schemas.record import micros
from tests.bench.bench_ingest import CpuSampler
from tests.bench.bench_search import TENANT, TRACE, generate
from tests.support.tiers import create_warm_tables, write_warm

KEYSPACE = "strata_bench_warm"
HOUR_US = 3600 * 10**6
KEY_ROW_BYTES = 8 + 32


def _session() -> Any:
    s = get_settings()
    return connect(s.cassandra_contact_points, s.cassandra_port, timeout_s=60)


def load(records: int, days: int) -> None:
    session = _session()
    create_warm_tables(session, KEYSPACE, default_ttl_seconds=60 * 86400)
    now = datetime.now(UTC)
    start, end = now - timedelta(days=15 + days), now - timedelta(days=15)
    began = time.monotonic()
    write_warm(session, KEYSPACE, "logs", generate(records, start, end, seed=4))
    print(f"warm: {records:,} records over {days} days in {time.monotonic() - began:.0f} s", flush=True)
    session.cluster.shutdown()


def _value_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, int | float):
        return 8
    if isinstance(value, dict):
        return sum(_value_bytes(k) + _value_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return sum(_value_bytes(v) for v in value)
    return len(str(value))


def _column_bytes(session: Any) -> dict[str, float]:
    """Average bytes of each column's values, from a sample of the table."""
    rows = list(session.execute(f"SELECT * FROM {KEYSPACE}.logs LIMIT 3000", timeout=60))
    totals: dict[str, float] = {}
    for row in rows:
        for name, value in row.items():
            totals[name] = totals.get(name, 0.0) + _value_bytes(value)
    return {name: total / max(len(rows), 1) for name, total in totals.items()}


def _sample_ids(session: Any, start_us: int, end_us: int, n: int) -> list[tuple[str, int]]:
    rng = random.Random(5)
    by_day: dict[str, list[str]] = {}
    for row in session.execute(f"SELECT tenant, day, service FROM {KEYSPACE}.logs_services", timeout=60):
        if row["tenant"] == TENANT:
            by_day.setdefault(row["day"], []).append(row["service"])
    picks = []
    stmt = session.prepare(
        f'SELECT "timestamp", "log_id" FROM {KEYSPACE}.logs WHERE "tenant" = ? AND "service" = ? '
        'AND "day" = ? AND "timestamp" >= ? AND "timestamp" < ? LIMIT 50'
    )
    while len(picks) < n:
        day = rng.choice(sorted(by_day))
        rows = list(session.execute(stmt, [TENANT, rng.choice(by_day[day]), day, start_us, end_us]))
        if rows:
            row = rng.choice(rows)
            picks.append((row["log_id"], int(row["timestamp"])))
    return picks


def run(runs: int, scan_rows: int) -> None:
    session = _session()
    reader = WarmSearch(session, KEYSPACE, scan_rows=scan_rows)
    assert not reader._indexed, "the benchmark's table must have no index"
    now_us = micros(datetime.now(UTC))
    start, end = now_us - 45 * 86_400 * 10**6, now_us - 15 * 86_400 * 10**6
    column_bytes = _column_bytes(session)
    row_bytes = sum(column_bytes.values())
    ids = _sample_ids(session, start, end, runs + 2)
    # The ids' days, oldest = 0, so a lookup's cost can be read against how far back it had to go.
    print("sampled ids, days before the slice's end:", sorted((end - ts) // 86_400_000_000 for _, ts in ids))
    total = int(
        next(iter(session.execute(f"SELECT COUNT(*) FROM {KEYSPACE}.logs", timeout=600).one().values()))
    )
    print(
        f"{total:,} rows in {KEYSPACE}.logs, {row_bytes:.0f} bytes of values a row on average; "
        f"scan budget {scan_rows:,} rows a request"
    )

    def page(q: str) -> Any:
        return lambda i: reader.search(TierQuery(TENANT, parse(q), start, end, limit=100))

    def column_row_bytes(q: str | None) -> float:
        """A column row's bytes for the query: timestamp, log_id and the columns it checks."""
        checked = () if q is None else (_checked_columns(parse(q)) or ())
        return 8 + 32 + sum(column_bytes.get(c, 0.0) for c in checked if c not in ("timestamp", "log_id"))

    def lookup(window_us: int | None) -> Any:
        def go(i: int) -> Any:
            log_id, ts = ids[i % len(ids)]
            lo, hi = (start, end) if window_us is None else (ts - window_us, ts + window_us)
            return reader.get(TENANT, [log_id], max(lo, start), min(hi, end))

        return go

    # (name, call, runs): a query that reads the whole slice is run fewer times.
    few = max(3, runs // 4)
    trace = f"trace_id:{TRACE}"
    cases = [
        ("match all, first page", page(""), runs, None),
        ("a word: timeout", page("timeout"), runs, None),
        ("level:ERROR", page("level:ERROR"), runs, "level:ERROR"),
        ("trace id", page(trace), few, trace),
        ("get by id, the 30 days", lookup(None), few * 2, None),
        ("get by id, ±1 h of its time", lookup(HOUR_US), runs, None),
    ]
    print(
        "| query (30 days, no index) | p50 ms | p95 ms | whole rows / query | column rows / query | "
        "key rows / query | rows counted / query | MB read / query | Cassandra CPU ms / query | result |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    sampler = CpuSampler(-1)
    for name, call, runs, query in cases:
        for i in range(2):
            call(i)
        before_stats = (
            reader.stats.rows,
            reader.stats.key_rows,
            reader.stats.counted,
            reader.stats.column_rows,
        )
        cpu_before = sampler.sample().get("service: cassandra (shared)", 0.0)
        took = []
        result = None
        found = 0
        for i in range(runs):
            began = time.perf_counter()
            result = call(i + 2)
            took.append((time.perf_counter() - began) * 1000)
            found += len(result) if isinstance(result, list) else 0
        cpu = (sampler.sample().get("service: cassandra (shared)", 0.0) - cpu_before) * 1000 / runs
        rows = (reader.stats.rows - before_stats[0]) / runs
        key_rows = (reader.stats.key_rows - before_stats[1]) / runs
        counted = (reader.stats.counted - before_stats[2]) / runs
        column_rows = (reader.stats.column_rows - before_stats[3]) / runs
        mb = (rows * row_bytes + key_rows * KEY_ROW_BYTES + column_rows * column_row_bytes(query)) / 1e6
        took.sort()
        p95 = took[max(int(len(took) * 0.95) - 1, 0)]
        if isinstance(result, list):
            shown = f"{found} of {runs} ids found"
        else:
            shown = f"{len(result.records)} records, total {result.total}" + (
                "" if result.total_exact else " (not exact)"
            )
            if any("stopped" in n for n in result.notes):
                shown += ", scan budget spent"
        print(
            f"| {name} | {statistics.median(took):.0f} | {p95:.0f} | {rows:,.0f} | {column_rows:,.0f} | "
            f"{key_rows:,.0f} | "
            f"{counted:,.0f} | {mb:.1f} | {cpu:.0f} | {shown} |",
            flush=True,
        )
    reader.close()
    session.cluster.shutdown()


def drop() -> None:
    session = _session()
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    session.cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_warm_search", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    loading = sub.add_parser("load")
    loading.add_argument("--records", type=int, default=300_000)
    loading.add_argument("--days", type=int, default=30)
    bench = sub.add_parser("run")
    bench.add_argument("--runs", type=int, default=20)
    bench.add_argument("--scan-rows", type=int, default=get_settings().search_warm_scan_rows)
    sub.add_parser("drop")
    args = parser.parse_args(argv)
    if args.cmd == "load":
        load(args.records, args.days)
    elif args.cmd == "run":
        run(args.runs, args.scan_rows)
    else:
        drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
