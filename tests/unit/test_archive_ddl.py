"""The definitions engines read the archive with, and the archive command's output (no services)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import duckdb
import orjson
import pytest

from connectors.s3.ddl import ArchiveLocation, DdlError, athena_ddl, ddl, duckdb_secret, duckdb_view
from connectors.s3.sql import httpfs_extension_path, load_httpfs
from infra.cli.archive import write_rows
from schemas.projections import ARCHIVE_PARTITIONS, archive_arrow_schema

pytestmark = pytest.mark.unit

LOC = ArchiveLocation("strata-archive", "logs", "http://127.0.0.1:9000", "key", "secret", "eu-west-1")
DATA_FIELDS = [f.name for f in archive_arrow_schema() if f.name not in ARCHIVE_PARTITIONS]


@pytest.mark.parametrize("engine", ["athena", "trino", "spark"])
def test_every_stored_field_is_a_column_and_the_path_parts_are_partitions(engine: str) -> None:
    text = ddl(engine, LOC)
    quote = '"' if engine == "trino" else "`"
    for name in DATA_FIELDS:
        assert f"{quote}{name}{quote} " in text, name
    assert "tags" in text and ("array<string>" in text or "array(varchar)" in text)
    for name in ARCHIVE_PARTITIONS:
        assert f"{quote}{name}{quote} " in text or f"'{name}'" in text


def test_athena_projects_partitions_and_scopes_tenants() -> None:
    shared = athena_ddl(LOC)
    assert "'projection.tenant.type' = 'injected'" in shared  # a query must name its tenant
    assert (
        "'storage.location.template' = 's3://strata-archive/logs/tenant=${tenant}/dt=${dt}/hour=${hour}/'"
        in shared
    )
    assert "'projection.hour.digits' = '2'" in shared
    assert "'projection.dt.format' = 'yyyy-MM-dd'" in shared
    one = athena_ddl(LOC, "acme")
    assert "'projection.tenant.type' = 'enum'" in one
    assert "'projection.tenant.values' = 'acme'" in one


@pytest.mark.parametrize("engine", ["athena", "trino", "duckdb", "spark"])
@pytest.mark.parametrize("tenant", ["x'; DROP TABLE logs; --", "../other", "ACME", ""])
def test_a_tenant_that_is_not_an_id_is_refused(engine: str, tenant: str) -> None:
    with pytest.raises(DdlError, match="not a tenant id"):
        ddl(engine, LOC, tenant)


def test_an_unknown_engine_is_named() -> None:
    with pytest.raises(DdlError, match="choose one of athena, trino, duckdb, spark"):
        ddl("presto", LOC)


def test_the_duckdb_view_reads_only_part_files_of_the_tenant() -> None:
    assert "'s3://strata-archive/logs/tenant=acme/*/*/part-*'" in duckdb_view(LOC, "acme")
    assert "'s3://strata-archive/logs/*/*/*/part-*'" in duckdb_view(LOC)


def test_the_duckdb_secret_is_accepted_by_duckdb_with_the_packaged_extension() -> None:
    assert httpfs_extension_path().name == "httpfs.duckdb_extension"
    con = duckdb.connect()
    load_httpfs(con)
    con.execute(duckdb_secret(LOC))
    secret = con.execute("SELECT type, scope, secret_string FROM duckdb_secrets()").fetchone()
    assert secret is not None
    assert secret[0] == "s3" and secret[1] == ["s3://strata-archive"]
    for part in ("endpoint=127.0.0.1:9000", "url_style=path", "use_ssl=false", "region=eu-west-1"):
        assert part in secret[2]
    aws = ArchiveLocation("b", "logs", "", "", "", "us-east-1")
    assert "PROVIDER credential_chain" in duckdb_secret(aws)
    assert "ENDPOINT" not in duckdb_secret(aws)
    assert "USE_SSL true" in duckdb_secret(ArchiveLocation("b", "logs", "https://s3.example.com"))


def test_rows_print_as_table_csv_and_json_lines() -> None:
    columns = ["service", "n", "at"]
    rows = [("auth", 3, datetime(2026, 1, 2, 3, 4, 5)), ("pay, ment", 1, None)]

    out = io.StringIO()
    write_rows(columns, rows, "json", out)
    assert [orjson.loads(line) for line in out.getvalue().splitlines()] == [
        {"service": "auth", "n": 3, "at": "2026-01-02T03:04:05+00:00"},
        {"service": "pay, ment", "n": 1, "at": None},
    ]
    out = io.StringIO()
    write_rows(columns, rows, "csv", out)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        columns,
        ["auth", "3", "2026-01-02 03:04:05"],
        ["pay, ment", "1", ""],
    ]
    out = io.StringIO()
    write_rows(columns, rows, "table", out)
    assert out.getvalue().splitlines() == [
        "service    n  at",
        "auth       3  2026-01-02 03:04:05",
        "pay, ment  1  NULL",
        "(2 rows)",
    ]


def test_trino_reads_timestamps_at_the_files_precision() -> None:
    """Trino's Hive connector refuses a column whose precision differs from its session's: the
    script sets the session to the files' microseconds and declares the columns so."""
    text = ddl("trino", LOC)
    assert "SET SESSION hive.timestamp_precision = 'MICROSECONDS';" in text
    assert text.index("SET SESSION") < text.index("CREATE TABLE")
    stamps = [f.name for f in archive_arrow_schema() if f.type == "timestamp[us]"]
    assert stamps
    for name in stamps:
        assert f'"{name}" timestamp(6),' in text
