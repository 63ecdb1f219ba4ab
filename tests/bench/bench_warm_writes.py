"""What a warm-tier row costs Cassandra: single inserts against UNLOGGED batches per partition, and
what each storage-attached index adds to the ingest job's throughput.

    .venv/bin/python tests/bench/bench_warm_writes.py [--rows 60000] [--batch 50] [--only none,all]

The rows are the ones the ingest job writes (``schemas.projections.to_cql_row`` of the ingest
benchmark's generated mix), into throwaway tables made with the job's own DDL. Each variant is
written with the Python driver (64 single inserts, or 16 batches, in flight) and reports rows per
second and Cassandra's own CPU microseconds per row, read from /proc (shared with whatever else
runs on the machine, so rough). Everything it creates is dropped. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import CpuSampler, cassandra, cpu_per_record, generate  # noqa: E402

from infra.settings import get_settings  # noqa: E402
from schemas import projections as P  # noqa: E402

SAI = {
    "all five indexes": None,
    "log_id, trace_id": ("log_id", "trace_id"),
    "all but attributes": ("log_id", "trace_id", "level", "host"),
    "no index": (),
}
SHORT = {
    "all": "all five indexes",
    "two": "log_id, trace_id",
    "four": "all but attributes",
    "none": "no index",
}


def rows(n: int) -> list[tuple[Any, ...]]:
    from core.records.pipeline import RecordPipeline
    from schemas.record import Record

    pipeline = RecordPipeline()
    envelopes = generate(n, seed=7, start=datetime.now(UTC) - timedelta(hours=2), span_s=6600)
    out = []
    for e in envelopes:
        record = pipeline.process(e.encode())
        if isinstance(record, Record):
            out.append(P.to_cql_row(record))
    return out


def write(
    session: Any, keyspace: str, data: list[tuple[Any, ...]], indexes: tuple[str, ...] | None, batch: int
):
    from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
    from cassandra.query import BatchStatement, BatchType

    table = f"bw_{uuid.uuid4().hex[:8]}"
    session.execute(P.cql_create_table(keyspace, table))
    try:
        for statement in P.cql_create_sai_indexes(keyspace, table):
            if indexes is None or any(f"{table}_{column}_sai " in statement for column in indexes):
                session.execute(statement)
        insert = session.prepare(P.cql_insert(keyspace, table))
        names = [n for n, _ in P.cql_columns()]
        key = [names.index(c) for c in P.CQL_PARTITION_KEY]
        sampler = CpuSampler(-1)
        time.sleep(2)
        before, started = sampler.sample(), time.perf_counter()
        if batch > 1:
            groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
            for row in data:
                groups[tuple(row[i] for i in key)].append(row)
            statements = []
            for group in groups.values():
                for i in range(0, len(group), batch):
                    b = BatchStatement(batch_type=BatchType.UNLOGGED)
                    for row in group[i : i + batch]:
                        b.add(insert, row)
                    statements.append((b, ()))
            execute_concurrent(session, statements, concurrency=16, raise_on_first_error=True)
        else:
            execute_concurrent_with_args(session, insert, data, concurrency=64, raise_on_first_error=True)
        elapsed = time.perf_counter() - started
        cpu = cpu_per_record(before, sampler.sample(), len(data))
        return len(data) / elapsed, cpu.get("service: cassandra (shared)", 0.0)
    finally:
        session.execute(f"DROP TABLE IF EXISTS {keyspace}.{table}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument(
        "--only", default="", help="variants to run, in this order: comma-separated of all, two, four, none"
    )
    args = parser.parse_args(argv)
    labels = [SHORT[v.strip()] for v in args.only.split(",") if v.strip()] or list(SAI)
    settings = get_settings()
    data = rows(args.rows)
    print(f"{len(data)} rows of the ingest benchmark's mix, batches of {args.batch} rows of one partition")
    print(f"{'indexes':<22} {'writes':<8} {'rows/s':>8} {'Cassandra CPU µs/row':>22}")
    with cassandra(settings) as session:
        for label in labels:
            indexes = SAI[label]
            for batch in (1, args.batch):
                rate, us = write(session, settings.cassandra_keyspace, data, indexes, batch)
                kind = "single" if batch == 1 else "batched"
                print(f"{label:<22} {kind:<8} {rate:>8,.0f} {us:>22.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
