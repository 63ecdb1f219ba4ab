"""Archive figures: files per tenant-hour before and after compaction, archive bytes per record,
compaction CPU per record, the cold tier's first-page latency for a 30-day search over the
compacted archive, DuckDB's time for a count and a filtered query over the same 30 days, and
whether Parquet bloom filters on ``log_id`` and ``trace_id`` pay for themselves.

    .venv/bin/python -m tests.bench.bench_archive                        # about a minute
    .venv/bin/python -m tests.bench.bench_archive --per-hour 1000 --files 60

The 30 days are written straight to S3 in the archive's exact file schema (no ingest job): a few
hours as the ingest job leaves them (many small part files, one per checkpoint), which the
compactor then merges, and every other hour as compaction leaves it. Everything lives under a
prefix of the benchmark's own (``bench-archive-<random>/``), removed at the end.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.s3.archive import ColdArchive, forget_footers, s3_filesystem
from connectors.s3.client import s3_client
from connectors.s3.compaction import ArchiveCompactor, encode_group, file_schema, hour_summary, merge_rows
from connectors.s3.ddl import ArchiveLocation
from connectors.s3.sql import archive_connection
from core.compaction import GroupMeta, output_name, summary_prefix
from core.query import Node, TierPage, TierQuery, parse
from infra.settings import Settings, get_settings

TENANT = "bench-archive"
SERVICES = [f"svc-{i:02d}" for i in range(20)] + ["payment-service", "checkout"]
HOSTS = [f"host-{i:02d}" for i in range(40)]
LEVELS = ["DEBUG"] * 10 + ["INFO"] * 60 + ["WARN"] * 15 + ["ERROR"] * 12 + ["FATAL"] * 3
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


def hour_rows(start: datetime, count: int, rng: random.Random) -> pa.Table:
    """``count`` records of one hour in the archive's file schema, in time order (as written)."""
    rows = []
    for _ in range(count):
        ts = start + timedelta(microseconds=rng.randrange(3_600_000_000))
        n = rng.randrange(100_000)
        rows.append(
            {
                "log_id": f"{rng.getrandbits(128):032x}",
                "timestamp": ts.replace(tzinfo=None),
                "ingested_at": ts.replace(tzinfo=None),
                "level": rng.choice(LEVELS),
                "service": rng.choice(SERVICES),
                "host": rng.choice(HOSTS),
                "environment": "prod",
                "region": "eu-west-1",
                "message": rng.choice(TEMPLATES).format(n=n),
                "trace_id": f"{rng.getrandbits(128):032x}" if rng.random() < 0.4 else None,
                "span_id": None,
                "attributes": orjson.dumps(
                    {"req_id": f"r-{n % 5000}", "status": rng.choice(["200", "503"])}
                ).decode(),
                "tags": [],
                "source_format": "json",
                "pattern_id": None,
                "pattern": None,
                "masked": "{}",
            }
        )
    rows.sort(key=lambda r: r["timestamp"])
    return pa.Table.from_pylist(rows, schema=file_schema())


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def prefix_bytes(client: Any, bucket: str, prefix: str) -> tuple[int, int]:
    """(objects, bytes) under ``prefix``."""
    n = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            n += 1
            size += int(obj["Size"])
    return n, size


def bloom_figures(tables: list[pa.Table], lookups: list[str], runs: int) -> dict[str, float]:
    """File size and a point lookup by log_id with and without bloom filters, DuckDB writing and
    reading local files (DuckDB writes a bloom filter for each dictionary-encoded column; a high
    dictionary limit makes log_id and trace_id dictionary-encoded, so they get one)."""
    import duckdb

    out: dict[str, float] = {}
    rows = max(t.num_rows for t in tables)
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(config={"threads": 2})
        for label, options in (
            ("without", "COMPRESSION zstd"),
            # the limit also sizes DuckDB's work per column, so just above a file's rows
            (
                "with",
                f"COMPRESSION zstd, DICTIONARY_SIZE_LIMIT {4 * rows}, BLOOM_FILTER_FALSE_POSITIVE_RATIO 0.01",
            ),
        ):
            paths = []
            for i, table in enumerate(tables):
                path = Path(tmp) / f"{label}-{i}.parquet"
                # through a file: this DuckDB takes Arrow data only through PyCapsules, which pyarrow 11 lacks
                staged = Path(tmp) / "staged.parquet"
                merge_rows(table).write_parquet(staged)
                con.execute(f"COPY (FROM '{staged}') TO '{path}' (FORMAT parquet, {options})")
                paths.append(str(path))
            out[f"bytes_{label}"] = sum(Path(p).stat().st_size for p in paths)
            listed = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
            sql = f"SELECT count(*) FROM read_parquet({listed}) WHERE log_id = ?"
            for kind, ids in (("hit", lookups), ("miss", [f"{i:032x}" for i in range(len(lookups))])):
                ms = []
                for log_id in ids[:runs]:
                    t = time.perf_counter()
                    con.execute(sql, [log_id]).fetchall()
                    ms.append((time.perf_counter() - t) * 1000)
                out[f"lookup_{kind}_ms_{label}"] = statistics.median(ms)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-hour", type=int, default=100, help="records per tenant-hour")
    parser.add_argument("--small-hours", type=int, default=6, help="hours written as many small files")
    parser.add_argument("--files", type=int, default=40, help="part files per small hour (checkpoints)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each timed query")
    parser.add_argument("--keep", action="store_true", help="leave the archive in place")
    args = parser.parse_args(argv)

    base: Settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"archive_prefix": f"bench-archive-{tag}/logs"})
    client = s3_client(settings)
    bucket, prefix = settings.s3_bucket, settings.archive_prefix
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    start = end - timedelta(days=args.days)
    hours = [start + timedelta(hours=h) for h in range(args.days * 24)]
    rng = random.Random(42)

    def hour_dir(h: datetime) -> str:
        return f"{prefix}/tenant={TENANT}/dt={h:%Y-%m-%d}/hour={h:%H}"

    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    print(f"archive: {args.days} days x 24 hours x {args.per_hour} records, prefix {prefix}")
    t0 = time.perf_counter()
    small, large = hours[: args.small_hours], hours[args.small_hours :]
    objects: list[tuple[str, bytes]] = []
    small_tables = []
    for h in small:  # as the ingest job leaves them: consecutive slices, one file per checkpoint
        table = hour_rows(h, args.per_hour, rng)
        small_tables.append(table)
        step = -(-table.num_rows // args.files)
        for k in range(args.files):
            chunk = table.slice(k * step, step)
            if chunk.num_rows:
                objects.append(
                    (f"{hour_dir(h)}/part-{uuid.uuid4()}-{k % 2}-{k}.parquet", parquet_bytes(chunk))
                )
    lookups = []
    sample_tables = []
    for h in large:  # as compaction leaves them
        table = hour_rows(h, args.per_hour, rng)
        if len(sample_tables) < 24:
            sample_tables.append(table)
        lookups.append(table.column("log_id")[rng.randrange(table.num_rows)].as_py())
        group = uuid.uuid4().hex
        meta = GroupMeta(group, (output_name(group, 1, 1),), (), table.num_rows)
        frame = merge_rows(table)
        (data,) = encode_group(frame, meta, settings.archive_compact_row_group_rows)
        objects.append((f"{hour_dir(h)}/{meta.outputs[0]}", data))
        name, summary = hour_summary(frame, meta)
        summary_dir = f"{summary_prefix(prefix)}/tenant={TENANT}/dt={h:%Y-%m-%d}/hour={h:%H}"
        objects.append((f"{summary_dir}/{name}", summary))
    generated = time.perf_counter() - t0
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, objects))
    print(
        f"  generated in {generated:.1f} s, "
        f"uploaded {len(objects)} objects in {time.perf_counter() - t0 - generated:.1f} s"
    )

    try:
        small_prefixes = [hour_dir(h) + "/" for h in small]
        before = [prefix_bytes(client, bucket, p) for p in small_prefixes]
        small_records = args.per_hour * len(small)
        compactor = ArchiveCompactor(
            client,
            bucket,
            prefix,
            grace_s=0,
            target_bytes=settings.archive_compact_target_bytes,
            row_group_rows=settings.archive_compact_row_group_rows,
            delete_after_s=0,
        )
        t = time.perf_counter()
        cpu = time.process_time()
        report = compactor.run(tenant=TENANT)
        wall = time.perf_counter() - t
        cpu = time.process_time() - cpu
        after = [prefix_bytes(client, bucket, p) for p in small_prefixes]
        merge_cpu = sum(h.cpu_s for h in report.hours)
        print("compaction of the small-file hours:")
        print(
            f"  files per tenant-hour: before {statistics.median(n for n, _ in before):.0f}, "
            f"after {statistics.median(n for n, _ in after):.0f}"
        )
        print(
            f"  archive bytes per record: before {sum(b for _, b in before) / small_records:.1f}, "
            f"after {sum(b for _, b in after) / small_records:.1f}"
        )
        print(
            f"  compaction CPU per record: {cpu / small_records * 1e6:.1f} us (whole run, incl. S3 I/O), "
            f"{merge_cpu / small_records * 1e6:.1f} us (read, dedupe, sort, encode); "
            f"wall {wall:.2f} s for {len(report.hours)} hours"
        )
        total_files, total_bytes = prefix_bytes(client, bucket, f"{prefix}/")
        total_records = args.per_hour * len(hours)
        print(
            f"30-day archive: {total_records:,} records in {total_files} files, "
            f"{total_bytes / total_records:.1f} bytes per record"
        )

        fs = s3_filesystem(
            settings.s3_endpoint_url, settings.s3_access_key, settings.s3_secret_key, settings.s3_region
        )
        cold = ColdArchive(fs, bucket, prefix)
        span = (int(start.timestamp() * 1e6), int((end + timedelta(hours=1)).timestamp() * 1e6))
        for label, query in (("all records", ""), ("filtered", "service:checkout level:ERROR")):
            ast = parse(query)
            pages: list[TierPage] = []

            def first_page(ast: Node = ast, pages: list[TierPage] = pages) -> None:
                forget_footers()  # each run as the first search of a fresh process
                pages.append(cold.search(TierQuery(TENANT, ast, *span, "desc", 50)))

            ms = timed(first_page, args.runs)
            total = f"{pages[-1].total:,}" + ("" if pages[-1].total_exact else " (at least)")
            print(
                f"cold first page of 50, 30 days, {label} ({query or 'match all'}): "
                f"p50 {statistics.median(ms):.0f} ms, "
                f"p95 {percentile(ms, 95):.0f} ms ({args.runs} runs), total {total}"
            )

        loc = ArchiveLocation.from_settings(settings)
        counts, filtered, opens = [], [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            with archive_connection(loc, TENANT) as con:
                opens.append((time.perf_counter() - t) * 1000)
                counts += timed(lambda: con.execute("SELECT count(*) FROM logs").fetchall(), 1)
                filtered += timed(
                    lambda: con.execute(
                        "SELECT service, count(*) FROM logs WHERE level = 'ERROR' "
                        "AND message LIKE '%timeout%' GROUP BY ALL"
                    ).fetchall(),
                    1,
                )
        print(
            f"DuckDB over 30 days (strata archive sql): list + open {statistics.median(opens):.0f} ms, "
            f"count(*) {statistics.median(counts):.0f} ms, "
            f"filtered group-by {statistics.median(filtered):.0f} ms "
            f"(medians of {args.runs})"
        )

        bloom = bloom_figures(sample_tables, lookups, args.runs)
        print("bloom filters on log_id/trace_id (DuckDB-written, 24 hourly files on local disk):")
        print(
            f"  bytes: without {bloom['bytes_without']:,.0f}, with {bloom['bytes_with']:,.0f} "
            f"({(bloom['bytes_with'] / bloom['bytes_without'] - 1) * 100:+.1f} %)"
        )
        print(
            f"  point lookup by log_id, found: without {bloom['lookup_hit_ms_without']:.1f} ms, "
            f"with {bloom['lookup_hit_ms_with']:.1f} ms; "
            f"absent: without {bloom['lookup_miss_ms_without']:.1f} ms, "
            f"with {bloom['lookup_miss_ms_with']:.1f} ms"
        )
    finally:
        if not args.keep:
            root = f"bench-archive-{tag}/"  # the data and its summaries
            keys = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root):
                keys += [{"Key": o["Key"]} for o in page.get("Contents", [])]
            for i in range(0, len(keys), 1000):
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
