"""The archive as other engines read it: DuckDB runs what ``strata archive ddl --engine duckdb``
prints, ``strata archive sql`` answers over it, and polars reads the same files, all through the
local S3 server and with no internet."""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.s3.archive import s3_filesystem
from infra.settings import Settings
from schemas.projections import ARCHIVE_PARTITIONS, archive_arrow_schema, to_archive_row
from schemas.record import Record
from tests.integration.search_support import make_records, now_utc

pytestmark = pytest.mark.integration


@dataclass
class Archive:
    settings: Settings
    records: dict[str, list[Record]]  # by tenant
    env: dict[str, str]  # what points the `strata` command at this archive


def write_archive(fs: Any, root: str, records: list[Record]) -> None:
    """``records`` laid out as the ingest job writes them: one Parquet part file per tenant-hour
    (no partition columns, JSON-text maps), named as Flink names them, with no suffix or with
    ``.parquet`` in turn, beside an in-progress file and, in older archives, a _SUCCESS marker,
    neither of them Parquet."""
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r.tenant, f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}")].append(r)
    for i, ((tenant, dt, hour), group) in enumerate(sorted(groups.items())):
        rows = [to_archive_row(r) for r in sorted(group, key=lambda r: r.timestamp)]
        table = pa.Table.from_pylist(rows, schema=archive_arrow_schema()).drop(list(ARCHIVE_PARTITIONS))
        folder = f"{root}/tenant={tenant}/dt={dt}/hour={hour}"
        suffix = ".parquet" if i % 2 else ""
        pq.write_table(table, f"{folder}/part-{uuid.uuid4()}-0-0{suffix}", filesystem=fs, compression="zstd")
        with fs.open_output_stream(f"{folder}/_SUCCESS") as out:
            out.write(b"")
        with fs.open_output_stream(f"{folder}/.part-{uuid.uuid4()}-1-0.inprogress.{uuid.uuid4()}") as out:
            out.write(b"not parquet: a file Flink has not finished")


@pytest.fixture(scope="module")
def archive(settings: Settings, require) -> Iterator[Archive]:  # type: ignore[no-untyped-def]
    require("s3")
    tag = uuid.uuid4().hex[:10]
    s = settings.model_copy(update={"archive_prefix": f"test-archive-{tag}/logs"})
    now = now_utc()
    rng = random.Random(14)
    records = {
        "acme": make_records("acme", 600, now, rng, days=30),
        "beta": make_records("beta", 150, now, rng),
    }
    fs = s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region)
    write_archive(fs, f"{s.s3_bucket}/{s.archive_prefix}", records["acme"] + records["beta"])
    env = {
        "STRATA_ARCHIVE_PREFIX": s.archive_prefix,
        "STRATA_S3_ENDPOINT": s.s3_endpoint_url,
        "STRATA_S3_BUCKET": s.s3_bucket,
    }
    try:
        yield Archive(s, records, env)
    finally:
        fs.delete_dir(f"{s.s3_bucket}/test-archive-{tag}")


def strata(archive: Archive, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "archive", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **archive.env},
        timeout=300,
    )


def test_duckdb_runs_the_printed_script_and_finds_exactly_the_tenants_records(archive: Archive) -> None:
    import duckdb

    from connectors.s3.sql import load_httpfs

    printed = strata(archive, "ddl", "--engine", "duckdb", "--tenant", "acme")
    assert printed.returncode == 0, printed.stderr
    con = duckdb.connect()
    load_httpfs(con)  # "a DuckDB with its S3 extension loaded"; the script is run as printed
    con.execute(printed.stdout)
    expected = archive.records["acme"]
    rows = con.execute("SELECT log_id, tenant, service, level, message FROM logs").fetchall()
    assert sorted(rows) == sorted((r.log_id, r.tenant, r.service, r.level.value, r.message) for r in expected)
    # partition values are columns, and filters on them and on data columns answer as Python does
    errors = con.execute(
        "SELECT count(*) FROM logs WHERE level = 'ERROR' AND service = 'payment-service'"
    ).fetchone()
    assert errors == (
        sum(1 for r in expected if r.level.value == "ERROR" and r.service == "payment-service"),
    )
    by_day = dict(con.execute("SELECT strftime(dt, '%Y-%m-%d'), count(*) FROM logs GROUP BY ALL").fetchall())
    assert by_day == Counter(f"{r.timestamp:%Y-%m-%d}" for r in expected)
    hours = {h for (h,) in con.execute("SELECT DISTINCT hour FROM logs").fetchall()}
    assert hours == {r.timestamp.hour for r in expected}
    # the stored timestamp is the record's, to the microsecond, in UTC
    first = min(expected, key=lambda r: (r.timestamp, r.log_id))
    got = con.execute("SELECT epoch_us(timestamp) FROM logs WHERE log_id = ?", [first.log_id]).fetchone()
    assert got == (int(first.timestamp.timestamp() * 1_000_000),)


def test_duckdb_without_a_tenant_sees_every_tenant(archive: Archive) -> None:
    import duckdb

    from connectors.s3.sql import load_httpfs

    printed = strata(archive, "ddl", "--engine", "duckdb")
    assert printed.returncode == 0, printed.stderr
    con = duckdb.connect()
    load_httpfs(con)
    con.execute(printed.stdout)
    counts = dict(con.execute("SELECT tenant, count(*) FROM logs GROUP BY ALL").fetchall())
    assert counts == {t: len(rs) for t, rs in archive.records.items()}


def test_sql_command_answers_in_each_format(archive: Archive) -> None:
    expected = Counter(r.level.value for r in archive.records["beta"])
    query = "SELECT level, count(*) AS n FROM logs GROUP BY ALL ORDER BY level"

    as_json = strata(archive, "sql", "--tenant", "beta", "--format", "json", query)
    assert as_json.returncode == 0, as_json.stderr
    assert {o["level"]: o["n"] for o in map(orjson.loads, as_json.stdout.splitlines())} == expected

    as_csv = strata(archive, "sql", "--tenant", "beta", "--format", "csv", query)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {row["level"]: int(row["n"]) for row in rows} == expected

    as_table = strata(archive, "sql", "--tenant", "beta", query)
    assert as_table.returncode == 0, as_table.stderr
    lines = as_table.stdout.splitlines()
    assert lines[0].split() == ["level", "n"]
    assert {line.split()[0]: int(line.split()[1]) for line in lines[1:-1]} == expected
    assert lines[-1] == f"({len(expected)} rows)"


def test_sql_command_keeps_the_tenant_in_its_own_archive(archive: Archive) -> None:
    result = strata(
        archive, "sql", "--tenant", "beta", "--format", "json", "SELECT DISTINCT tenant FROM logs"
    )
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == [{"tenant": "beta"}]


def test_sql_command_says_what_is_wrong(archive: Archive) -> None:
    bad_sql = strata(archive, "sql", "--tenant", "acme", "SELEC nothing")
    assert bad_sql.returncode == 2
    assert "syntax error" in bad_sql.stderr.lower()

    no_files = strata(archive, "sql", "--tenant", "nobody", "SELECT count(*) FROM logs")
    assert no_files.returncode == 1
    assert "holds no files for tenant 'nobody'" in no_files.stderr

    bad_tenant = strata(archive, "sql", "--tenant", "x'; DROP", "SELECT 1")
    assert bad_tenant.returncode == 2
    assert "not a tenant id" in bad_tenant.stderr

    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    down = replace(archive, env=archive.env | {"STRATA_S3_ENDPOINT": f"http://127.0.0.1:{port}"})
    unreachable = strata(down, "sql", "--tenant", "acme", "SELECT count(*) FROM logs")
    assert unreachable.returncode == 1
    assert "cannot read the archive at s3://" in unreachable.stderr
    assert f"127.0.0.1:{port}" in unreachable.stderr


def test_polars_reads_the_same_archive(archive: Archive) -> None:
    import polars as pl

    s = archive.settings
    frame = (
        pl.scan_parquet(
            f"s3://{s.s3_bucket}/{s.archive_prefix}/tenant=acme/*/*/part-*",
            hive_partitioning=True,
            storage_options={
                "aws_endpoint_url": s.s3_endpoint_url,
                "aws_access_key_id": s.s3_access_key,
                "aws_secret_access_key": s.s3_secret_key,
                "aws_region": s.s3_region,
                "aws_allow_http": "true",
            },
        )
        .select("log_id", "tenant", "service")
        .collect()
    )
    expected = archive.records["acme"]
    assert sorted(frame.iter_rows()) == sorted((r.log_id, r.tenant, r.service) for r in expected)


def test_polars_filters_and_looks_up_as_the_archive_holds(archive: Archive) -> None:
    """Every tenant at once, partitions typed from the path (dt a date, hour an integer), filters
    pushed into the scan, and a record found by log_id with its timestamp to the microsecond."""
    import polars as pl

    s = archive.settings
    logs = pl.scan_parquet(
        f"s3://{s.s3_bucket}/{s.archive_prefix}/*/*/*/part-*",
        hive_partitioning=True,
        storage_options={
            "aws_endpoint_url": s.s3_endpoint_url,
            "aws_access_key_id": s.s3_access_key,
            "aws_secret_access_key": s.s3_secret_key,
            "aws_region": s.s3_region,
            "aws_allow_http": "true",
        },
    )
    counts = logs.group_by("tenant").agg(pl.len(), pl.col("log_id").n_unique().alias("ids")).collect()
    assert {t: (n, ids) for t, n, ids in counts.iter_rows()} == {
        t: (len(rs), len(rs)) for t, rs in archive.records.items()
    }

    acme = archive.records["acme"]
    errors = (
        logs.filter(
            (pl.col("tenant") == "acme")
            & (pl.col("service") == "payment-service")
            & (pl.col("level") == "ERROR")
        )
        .select("log_id")
        .collect()
    )
    assert sorted(errors["log_id"]) == sorted(
        r.log_id for r in acme if r.service == "payment-service" and r.level.value == "ERROR"
    )

    wanted = max(acme, key=lambda r: (r.timestamp, r.log_id))
    found = (
        logs.filter(pl.col("log_id") == wanted.log_id)
        .select("tenant", "dt", "hour", "timestamp", "message", "attributes")
        .collect()
    )
    assert found.drop("attributes").rows() == [
        (
            "acme",
            wanted.timestamp.astimezone(UTC).date(),
            wanted.timestamp.astimezone(UTC).hour,
            wanted.timestamp.astimezone(UTC).replace(tzinfo=None),
            wanted.message,
        )
    ]
    assert orjson.loads(found["attributes"][0]) == wanted.attributes


def test_the_search_tiers_cold_reader_reads_old_and_new_part_names(archive: Archive) -> None:
    from connectors.s3.archive import ColdArchive
    from core.query import TierQuery, parse
    from schemas.record import micros

    s = archive.settings
    cold = ColdArchive(
        s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region),
        s.s3_bucket,
        s.archive_prefix,
    )
    expected = archive.records["acme"]
    start = micros(min(r.timestamp for r in expected))
    end = micros(max(r.timestamp for r in expected)) + 1
    names = {path.rsplit("/", 1)[1] for path in cold.files("acme", start, end)}
    assert any(n.endswith(".parquet") for n in names) and any(not n.endswith(".parquet") for n in names)
    page = cold.search(TierQuery("acme", parse(None), start, end, limit=1000))
    assert sorted(r.log_id for r in page.records) == sorted(r.log_id for r in expected)
    assert page.total == len(expected)
