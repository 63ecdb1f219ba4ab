"""Records written straight into the warm and cold tiers in the layout the ingest job gives them, for
the search tests and the search benchmark (which load data without running the job)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from schemas.projections import (
    ARCHIVE_PARTITIONS,
    archive_arrow_schema,
    cql_create_sai_indexes,
    cql_create_services_table,
    cql_create_table,
    cql_day,
    cql_insert,
    cql_insert_service,
    to_archive_row,
    to_cql_row,
)
from schemas.record import Record

CHUNK = 2000  # rows in flight at most, so a generator of millions of records is never held at once


def create_warm_tables(
    session: Any,
    keyspace: str,
    table: str = "logs",
    *,
    default_ttl_seconds: int | None = None,
    indexes: Sequence[str] = (),
) -> None:
    """The keyspace (one replica) if missing, the table, its services table and, as the ingest job
    does with STRATA_WARM_INDEXES, the storage-attached ``indexes`` only (none by default)."""
    ttl = {} if default_ttl_seconds is None else {"default_ttl_seconds": default_ttl_seconds}
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        timeout=60,
    )
    session.execute(cql_create_table(keyspace, table, **ttl), timeout=60)
    session.execute(cql_create_services_table(keyspace, table, **ttl), timeout=60)
    for statement in cql_create_sai_indexes(keyspace, table, indexes):
        session.execute(statement, timeout=300)


def write_warm(
    session: Any,
    keyspace: str,
    table: str,
    records: Iterable[Record],
    ttl_s: Callable[[Record], int] | None = None,
) -> None:
    """``records`` and the (tenant, day, service) row of each. With ``ttl_s`` a row lives that many
    seconds and a record with none left is not written; without it the table's default TTL applies."""
    from cassandra.concurrent import execute_concurrent_with_args

    insert = session.prepare(cql_insert(keyspace, table) + ("" if ttl_s is None else " USING TTL ?"))
    services: set[tuple[str, str, str]] = set()
    rows: list[tuple[Any, ...]] = []
    for r in records:
        row = to_cql_row(r)
        if ttl_s is not None:
            left = ttl_s(r)
            if left <= 0:
                continue
            row = (*row, left)
        rows.append(row)
        services.add((r.tenant, cql_day(r.timestamp), r.service))
        if len(rows) == CHUNK:
            execute_concurrent_with_args(session, insert, rows, concurrency=64)
            rows = []
    execute_concurrent_with_args(session, insert, rows, concurrency=64)
    execute_concurrent_with_args(
        session, session.prepare(cql_insert_service(keyspace, table)), list(services)
    )


def write_archive_file(fs: Any, path: str, records: list[Record]) -> None:
    """One hour's ``records`` as one Parquet file at ``path`` (bucket/key) of the pyarrow filesystem
    ``fs``, as the ingest job writes them: oldest first, map fields as JSON text, no partition
    columns (they are in the path), zstd."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [to_archive_row(r) for r in sorted(records, key=lambda r: r.timestamp)]
    table = pa.Table.from_pylist(rows, schema=archive_arrow_schema()).drop(list(ARCHIVE_PARTITIONS))
    pq.write_table(table, path, filesystem=fs, compression="zstd")
