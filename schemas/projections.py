"""Every tier's layout, derived from ``schemas.record.FIELDS`` and never typed again.

- OpenSearch: :func:`opensearch_index_template`, :func:`to_opensearch_doc` / :func:`from_opensearch_doc`
- Cassandra: :func:`cql_create_table`, :func:`cql_insert`, :func:`to_cql_row` / :func:`from_cql_row`
- Arrow / Parquet: :func:`arrow_schema`, :func:`records_to_arrow` / :func:`arrow_to_records`
- Flink: :func:`flink_row_fields`, :func:`flink_row_type_info` (imports pyflink lazily),
  :func:`to_flink_row_values`, :func:`flink_sql_ddl`

Choices that differ per tier are explained where they are made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from schemas.record import FIELDS, Kind, Level, Record, format_ts, from_micros, micros, parse_ts

if TYPE_CHECKING:
    import pyarrow as pa

# -- OpenSearch --------------------------------------------------------------------------------

_OPENSEARCH_TYPES: dict[Kind, dict[str, Any]] = {
    Kind.ID: {"type": "keyword"},
    Kind.KEYWORD: {"type": "keyword", "ignore_above": 1024},
    Kind.TEXT: {"type": "text"},
    Kind.TIMESTAMP: {"type": "date_nanos", "format": "strict_date_optional_time"},
    # flat_object (OpenSearch >= 2.7) keeps arbitrary keys from exploding the mapping and avoids the
    # conflict an object mapping hits when a line has both "error" and "error.type".
    Kind.STRING_MAP: {"type": "flat_object"},
    Kind.STRING_LIST: {"type": "keyword"},
    Kind.COUNT_MAP: {"type": "object", "dynamic": True},
}


def opensearch_mappings() -> dict[str, Any]:
    properties = {f.name: dict(_OPENSEARCH_TYPES[f.kind]) for f in FIELDS}
    return {
        "dynamic": "strict",
        "dynamic_templates": [],
        "properties": properties,
    }


def opensearch_index_template(
    index_prefix: str = "strata-logs",
    *,
    shards: int = 1,
    replicas: int = 0,
    priority: int = 100,
    refresh_interval: str = "1s",
) -> dict[str, Any]:
    """The composable index template body for ``PUT _index_template/<name>``.

    Daily indices are named ``<prefix>-YYYY.MM.DD`` (see :func:`opensearch_index_name`).
    ``refresh_interval`` is how soon a written document is searchable (the ingest job passes
    ``STRATA_OPENSEARCH_REFRESH_INTERVAL``).
    """
    mappings = opensearch_mappings()
    # `masked` counts are the only open-ended object: its values must map as integers, not longs
    # guessed from the first document, so the template says so.
    mappings["dynamic_templates"] = [
        {"masked_counts": {"path_match": "masked.*", "mapping": {"type": "integer"}}}
    ]
    return {
        "index_patterns": [f"{index_prefix}-*"],
        "priority": priority,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                "refresh_interval": refresh_interval,
            },
            "mappings": mappings,
        },
    }


def opensearch_index_name(index_prefix: str, record: Record) -> str:
    """Daily index by event time, so hot-tier retention is dropping whole indices."""
    return f"{index_prefix}-{record.timestamp:%Y.%m.%d}"


def to_opensearch_doc(record: Record) -> dict[str, Any]:
    """The document body; index it with ``_id = record.log_id`` so a replay overwrites, not doubles."""
    return record.to_dict()


def from_opensearch_doc(source: Mapping[str, Any]) -> Record:
    return Record.from_dict(dict(source))


# -- Cassandra ---------------------------------------------------------------------------------

# CQL `timestamp` holds milliseconds only; storing microseconds as bigint keeps the record lossless
# and still sorts, which is all the clustering order needs.
_CQL_TYPES: dict[Kind, str] = {
    Kind.ID: "text",
    Kind.KEYWORD: "text",
    Kind.TEXT: "text",
    Kind.TIMESTAMP: "bigint",
    Kind.STRING_MAP: "map<text, text>",
    Kind.STRING_LIST: "list<text>",
    Kind.COUNT_MAP: "map<text, int>",
}

# Columns the table adds to the record's fields: the day bucket of the partition key, as
# 'YYYY-MM-DD' text. Not CQL `date`: Flink's Cassandra sink binds Java values through the 3.x driver,
# whose `date` codec takes only the driver's own LocalDate, which no Flink row type produces.
CQL_DERIVED_COLUMNS: dict[str, str] = {"day": "text"}
CQL_PARTITION_KEY: tuple[str, ...] = ("tenant", "service", "day")
CQL_CLUSTERING: tuple[tuple[str, str], ...] = (("timestamp", "DESC"), ("log_id", "ASC"))


def cql_columns() -> list[tuple[str, str]]:
    """(column, CQL type) in insert order: the record's fields, then the derived columns."""
    cols = [(f.name, _CQL_TYPES[f.kind]) for f in FIELDS]
    cols.extend(CQL_DERIVED_COLUMNS.items())
    return cols


def _cql_ident(name: str) -> str:
    # `timestamp` is a CQL type name; quoting every identifier keeps that from ever biting.
    return f'"{name}"'


def cql_create_table(keyspace: str, table: str = "logs", *, default_ttl_seconds: int = 45 * 86400) -> str:
    """``CREATE TABLE`` partitioned by (tenant, service, day), newest first, with a table-wide TTL."""
    cols = ",\n".join(f"    {_cql_ident(n)} {t}" for n, t in cql_columns())
    pk = ", ".join(_cql_ident(c) for c in CQL_PARTITION_KEY)
    ck = ", ".join(_cql_ident(c) for c, _ in CQL_CLUSTERING)
    order = ", ".join(f"{_cql_ident(c)} {o}" for c, o in CQL_CLUSTERING)
    window_days = 1
    return (
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{table} (\n{cols},\n"
        f"    PRIMARY KEY (({pk}), {ck})\n"
        f") WITH CLUSTERING ORDER BY ({order})\n"
        f"  AND default_time_to_live = {int(default_ttl_seconds)}\n"
        # Whole SSTables expire together when every row has the same TTL and rows arrive roughly
        # in time order: TWCS is the compaction made for exactly that.
        f"  AND compaction = {{'class': 'TimeWindowCompactionStrategy', "
        f"'compaction_window_unit': 'DAYS', 'compaction_window_size': {window_days}}}"
    )


def cql_insert(keyspace: str, table: str = "logs") -> str:
    """The prepared INSERT matching :func:`to_cql_row`'s value order (idempotent on the primary key)."""
    names = [n for n, _ in cql_columns()]
    return (
        f"INSERT INTO {keyspace}.{table} ({', '.join(_cql_ident(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )


def field_values(record: Record, timestamp: Callable[[datetime], Any]) -> list[Any]:
    """The record's values in field order, each timestamp as ``timestamp`` writes it and the
    level as its name: the row shape every columnar projection starts from."""
    values: list[Any] = []
    for f in FIELDS:
        value = getattr(record, f.name)
        if f.kind is Kind.TIMESTAMP:
            value = timestamp(value)
        elif f.name == "level":
            value = str(value)
        values.append(value)
    return values


def to_cql_row(record: Record) -> tuple[Any, ...]:
    return (*field_values(record, micros), cql_day(record.timestamp))


def from_cql_row(row: Mapping[str, Any] | Sequence[Any]) -> Record:
    """Accepts a mapping (the driver's dict_factory) or a sequence in :func:`cql_columns` order."""
    if not isinstance(row, Mapping):
        row = dict(zip([n for n, _ in cql_columns()], row, strict=False))
    kwargs: dict[str, Any] = {}
    for f in FIELDS:
        value = row.get(f.name)
        if f.kind is Kind.TIMESTAMP:
            value = from_micros(int(value))  # type: ignore[arg-type]
        elif f.kind is Kind.STRING_MAP or f.kind is Kind.COUNT_MAP:
            value = dict(value or {})
        elif f.kind is Kind.STRING_LIST:
            value = list(value or [])
        kwargs[f.name] = value
    kwargs["level"] = Level(kwargs["level"])
    return Record(**kwargs)


def cql_day(ts: datetime | date) -> str:
    """The ``day`` partition-key value of an event time (or a calendar day), UTC."""
    return f"{ts:%Y-%m-%d}"


# The warm tier is partitioned by service, so a search without a service has to know which
# services logged on a day: this small table answers that without scanning partition keys.
CQL_SERVICES_SUFFIX = "_services"


def cql_create_services_table(
    keyspace: str, table: str = "logs", *, default_ttl_seconds: int = 45 * 86400
) -> str:
    """``(tenant, day) -> service`` for the warm tier's fan-out; one row per service and day."""
    return (
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{table}{CQL_SERVICES_SUFFIX} (\n"
        f'    "tenant" text,\n    "day" text,\n    "service" text,\n'
        f'    PRIMARY KEY (("tenant", "day"), "service")\n'
        f") WITH default_time_to_live = {int(default_ttl_seconds)}"
    )


def cql_insert_service(keyspace: str, table: str = "logs") -> str:
    """Prepared upsert with values ``(tenant, day, service)``; write it beside each warm row (or once
    per service and day: it is idempotent)."""
    return (
        f'INSERT INTO {keyspace}.{table}{CQL_SERVICES_SUFFIX} ("tenant", "day", "service") VALUES (?, ?, ?)'
    )


# Storage-attached indexes the warm table may carry: exact-match columns a search filters on inside
# a (tenant, service, day) partition, and log_id for finding one record. None is made by default:
# each costs Cassandra CPU on every row written (docs/benchmarks.md, "Warm tier writes"), while the
# warm tier's reader scans the partitions of a query's time range and checks every condition on the
# rows it reads. An operator lists the ones worth their write cost in STRATA_WARM_INDEXES.
# Cassandra 5.0's SAI has no word analyzer, so message words are always matched while scanning.
CQL_SAI_TARGETS: tuple[str, ...] = ("log_id", "level", "host", "trace_id", "entries(attributes)")


def cql_sai_target(name: str) -> str:
    """The :data:`CQL_SAI_TARGETS` entry a setting names: a column, or ``attributes`` for the map's
    entries. Raises ``ValueError`` for anything else."""
    name = name.strip()
    target = "entries(attributes)" if name == "attributes" else name
    if target not in CQL_SAI_TARGETS:
        allowed = ", ".join("attributes" if "(" in t else t for t in CQL_SAI_TARGETS)
        raise ValueError(f"{name!r} is not a warm-tier index; choose among: {allowed}")
    return target


def cql_sai_index_name(table: str, target: str) -> str:
    """The name Strata gives the index on ``target`` (``logs_trace_id_sai``, ``logs_attributes_sai``)."""
    column = target[target.find("(") + 1 : -1] if "(" in target else target
    return f"{table}_{column}_sai"


def cql_create_sai_indexes(
    keyspace: str, table: str = "logs", targets: Sequence[str] = CQL_SAI_TARGETS
) -> list[str]:
    """``CREATE INDEX IF NOT EXISTS ... USING 'sai'`` statements for ``targets`` (of
    :data:`CQL_SAI_TARGETS`)."""
    out = []
    for target in targets:
        column = target[target.find("(") + 1 : -1] if "(" in target else target
        expr = f"{target[: target.find('(')]}({_cql_ident(column)})" if "(" in target else _cql_ident(column)
        out.append(
            f"CREATE INDEX IF NOT EXISTS {cql_sai_index_name(table, target)} ON {keyspace}.{table} "
            f"({expr}) USING 'sai'"
        )
    return out


def cql_drop_sai_indexes(keyspace: str, table: str = "logs", keep: Sequence[str] = ()) -> list[str]:
    """``DROP INDEX IF EXISTS`` statements for the Strata-named indexes of :data:`CQL_SAI_TARGETS`
    not in ``keep``."""
    return [
        f"DROP INDEX IF EXISTS {keyspace}.{cql_sai_index_name(table, target)}"
        for target in CQL_SAI_TARGETS
        if target not in keep
    ]


# -- Arrow / Parquet ---------------------------------------------------------------------------


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    types: dict[Kind, pa.DataType] = {
        Kind.ID: pa.string(),
        Kind.KEYWORD: pa.string(),
        Kind.TEXT: pa.string(),
        Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        Kind.STRING_MAP: pa.map_(pa.string(), pa.string()),
        Kind.STRING_LIST: pa.list_(pa.string()),
        Kind.COUNT_MAP: pa.map_(pa.string(), pa.int32()),
    }
    return pa.schema([pa.field(f.name, types[f.kind], nullable=not f.required) for f in FIELDS])


def to_arrow_row(record: Record) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in FIELDS:
        value = getattr(record, f.name)
        if f.kind is Kind.STRING_MAP or f.kind is Kind.COUNT_MAP:
            value = list(value.items())
        elif f.name == "level":
            value = str(value)
        row[f.name] = value
    return row


def records_to_arrow(records: Iterable[Record]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist([to_arrow_row(r) for r in records], schema=arrow_schema())


def arrow_to_records(table: pa.Table) -> list[Record]:
    out = []
    for row in table.to_pylist():
        kwargs: dict[str, Any] = {}
        for f in FIELDS:
            value = row.get(f.name)
            if f.kind is Kind.STRING_MAP or f.kind is Kind.COUNT_MAP:
                value = dict(value or [])
            elif f.kind is Kind.STRING_LIST:
                value = list(value or [])
            elif f.kind is Kind.TIMESTAMP:
                value = parse_ts(value)
            kwargs[f.name] = value
        kwargs["level"] = Level(kwargs["level"])
        out.append(Record(**kwargs))
    return out


# -- Parquet archive (cold tier) ----------------------------------------------------------------

# The cold tier's files are written by Flink's Parquet writer, which marks every map key optional;
# pyarrow (and with it DuckDB over a pyarrow dataset) refuses such maps. So in the archive the
# map-valued fields are JSON text, which pyarrow, DuckDB (json_extract) and Athena all read.
# Timestamps are int64 microseconds, UTC, without a zone annotation. tenant/dt/hour are Hive
# partitions of the path ``<prefix>/tenant=…/dt=YYYY-MM-DD/hour=HH/``, not columns of the files.
ARCHIVE_PARTITIONS: tuple[str, ...] = ("tenant", "dt", "hour")
_ARCHIVE_JSON_KINDS = (Kind.STRING_MAP, Kind.COUNT_MAP)


def archive_flink_columns() -> list[tuple[str, str]]:
    """(name, Flink SQL type) of the archive table, partition columns last."""
    cols = []
    for f in FIELDS:
        sql_type = "STRING" if f.kind in _ARCHIVE_JSON_KINDS else _FLINK_SQL_TYPES[f.kind]
        cols.append((f.name, sql_type))
    cols += [("dt", "STRING"), ("hour", "STRING")]
    return cols


def archive_arrow_schema() -> pa.Schema:
    """The schema of the archive's files as read back, partition columns included."""
    import pyarrow as pa

    base = arrow_schema()
    fields = []
    for f in FIELDS:
        if f.kind in _ARCHIVE_JSON_KINDS:
            fields.append(pa.field(f.name, pa.string(), nullable=True))
        elif f.kind is Kind.TIMESTAMP:
            # Flink writes int64 microseconds without a zone annotation; the values are UTC.
            fields.append(pa.field(f.name, pa.timestamp("us"), nullable=not f.required))
        else:
            fields.append(base.field(f.name))
    fields += [pa.field("dt", pa.string()), pa.field("hour", pa.string())]
    return pa.schema(fields)


def archive_partition(record: Record) -> tuple[str, str]:
    """(dt, hour) of a record's archive partition, by event time."""
    text = record.timestamp.isoformat(timespec="hours")  # 'YYYY-MM-DDTHH…', cheaper than strftime
    return text[:10], text[11:13]


def to_archive_row(record: Record) -> dict[str, Any]:
    """One archive row (maps as JSON text), with its partition values."""
    import orjson

    row = to_arrow_row(record)
    for f in FIELDS:
        if f.kind in _ARCHIVE_JSON_KINDS:
            row[f.name] = orjson.dumps(getattr(record, f.name)).decode()
    row["dt"], row["hour"] = archive_partition(record)
    return row


def from_archive_row(row: Mapping[str, Any]) -> Record:
    """A record from an archive row (JSON-text maps; timestamps as datetimes of any unit)."""
    import orjson

    kwargs: dict[str, Any] = {}
    for f in FIELDS:
        value = row.get(f.name)
        if f.kind in _ARCHIVE_JSON_KINDS:
            value = orjson.loads(value) if isinstance(value, str | bytes) else dict(value or {})
        elif f.kind is Kind.STRING_LIST:
            value = list(value or [])
        elif f.kind is Kind.TIMESTAMP:
            value = parse_ts(value)
        kwargs[f.name] = value
    kwargs["level"] = Level(kwargs["level"])
    return Record(**kwargs)


# -- Flink -------------------------------------------------------------------------------------

_FLINK_SQL_TYPES: dict[Kind, str] = {
    Kind.ID: "STRING",
    Kind.KEYWORD: "STRING",
    Kind.TEXT: "STRING",
    Kind.TIMESTAMP: "TIMESTAMP(6)",
    Kind.STRING_MAP: "MAP<STRING, STRING>",
    Kind.STRING_LIST: "ARRAY<STRING>",
    Kind.COUNT_MAP: "MAP<STRING, INT>",
}


def flink_row_fields() -> list[tuple[str, str]]:
    """(name, Flink SQL type) per field, the row type described without importing pyflink."""
    return [(f.name, _FLINK_SQL_TYPES[f.kind] + ("" if not f.required else " NOT NULL")) for f in FIELDS]


def flink_timestamp_text(ts: datetime) -> str:
    """'YYYY-MM-DD HH:MM:SS.ffffff' in UTC: how a timestamp crosses from Python into Flink. The
    SQL side casts it to TIMESTAMP(6); the legacy SQL_TIMESTAMP type would cut microseconds to
    milliseconds on the Table side."""
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    return ts.isoformat(sep=" ", timespec="microseconds")[:26]


def flink_row_type_info(extra: Sequence[tuple[str, str]] = ()) -> Any:
    """``Types.ROW_NAMED(...)`` of the record's fields (timestamps as :func:`flink_timestamp_text`),
    then ``extra`` columns given as (name, Flink SQL type). Imports pyflink here only, so that the
    rest of ``schemas`` stays importable (and testable) on a machine without it."""
    from pyflink.common import Types

    by_kind = {
        Kind.ID: Types.STRING(),
        Kind.KEYWORD: Types.STRING(),
        Kind.TEXT: Types.STRING(),
        Kind.TIMESTAMP: Types.STRING(),
        Kind.STRING_MAP: Types.MAP(Types.STRING(), Types.STRING()),
        Kind.STRING_LIST: Types.BASIC_ARRAY(Types.STRING()),
        Kind.COUNT_MAP: Types.MAP(Types.STRING(), Types.INT()),
    }
    by_sql = {
        "STRING": Types.STRING(),
        "BOOLEAN": Types.BOOLEAN(),
        "BIGINT": Types.LONG(),
        "INT": Types.INT(),
    }
    names = [f.name for f in FIELDS] + [name for name, _ in extra]
    types = [by_kind[f.kind] for f in FIELDS] + [by_sql[sql_type] for _, sql_type in extra]
    return Types.ROW_NAMED(names, types)


def to_flink_row_values(record: Record) -> list[Any]:
    """Values in field order for :func:`flink_row_type_info`'s row."""
    return field_values(record, flink_timestamp_text)


def from_flink_row_values(values: Sequence[Any]) -> Record:
    kwargs: dict[str, Any] = {}
    for f, value in zip(FIELDS, values, strict=True):
        if f.kind is Kind.TIMESTAMP:
            value = parse_ts(value)
        elif f.kind is Kind.STRING_MAP or f.kind is Kind.COUNT_MAP:
            value = dict(value or {})
        elif f.kind is Kind.STRING_LIST:
            value = list(value or [])
        kwargs[f.name] = value
    kwargs["level"] = Level(kwargs["level"])
    return Record(**kwargs)


def flink_sql_ddl(table: str, options: Mapping[str, str], *, primary_key: bool = True) -> str:
    """``CREATE TABLE`` for a Table API sink with the record's columns, keyed on log_id."""
    cols = [f"  `{name}` {sql_type}" for name, sql_type in flink_row_fields()]
    if primary_key:
        cols.append("  PRIMARY KEY (`log_id`) NOT ENFORCED")
    opts = ",\n".join(f"  '{k}' = '{v}'" for k, v in options.items())
    return f"CREATE TABLE `{table}` (\n" + ",\n".join(cols) + f"\n) WITH (\n{opts}\n)"


def to_json_dict(record: Record) -> dict[str, Any]:
    """Alias of :meth:`Record.to_dict`, for symmetry with the other projections."""
    return record.to_dict()


__all__ = [
    "ARCHIVE_PARTITIONS",
    "CQL_CLUSTERING",
    "CQL_DERIVED_COLUMNS",
    "CQL_PARTITION_KEY",
    "archive_arrow_schema",
    "archive_flink_columns",
    "archive_partition",
    "arrow_schema",
    "arrow_to_records",
    "cql_columns",
    "cql_create_sai_indexes",
    "cql_create_services_table",
    "cql_create_table",
    "cql_drop_sai_indexes",
    "cql_insert",
    "cql_insert_service",
    "cql_sai_index_name",
    "cql_sai_target",
    "field_values",
    "flink_row_fields",
    "flink_row_type_info",
    "flink_sql_ddl",
    "flink_timestamp_text",
    "format_ts",
    "from_archive_row",
    "from_cql_row",
    "from_flink_row_values",
    "from_opensearch_doc",
    "opensearch_index_name",
    "opensearch_index_template",
    "opensearch_mappings",
    "records_to_arrow",
    "to_archive_row",
    "to_arrow_row",
    "to_cql_row",
    "to_flink_row_values",
    "to_json_dict",
    "to_opensearch_doc",
]
