"""Definitions other engines read the archive with, derived from the archive's own schema.

The archive is Parquet under ``s3://<bucket>/<prefix>/tenant=…/dt=YYYY-MM-DD/hour=HH/``: tenant, dt
and hour live in the path (Hive partitions), every other field of the record in the files, map
fields as JSON text. Each function returns text a user pastes into that engine:

    print(duckdb_script(ArchiveLocation.from_settings(get_settings()), tenant="acme"))

Nothing here talks to a service; :mod:`connectors.s3.sql` runs the DuckDB script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa

from connectors.postgres.tenants import TENANT_ID_RE
from schemas.projections import ARCHIVE_PARTITIONS, archive_arrow_schema

if TYPE_CHECKING:
    from infra.settings import Settings

ENGINES = ("athena", "trino", "duckdb", "spark")
# The first day Athena's partition projection enumerates; a query's dt filter narrows it.
ATHENA_FIRST_DAY = "2020-01-01"
# The ingest job names its part files part-<uuid>-<subtask>-<n>.parquet (archives written by
# earlier versions: no suffix, with _SUCCESS markers beside them). In-progress files (.part-…)
# and markers are not Parquet: Hive, Athena, Trino and Spark skip names starting with '_' or '.';
# DuckDB reads what its glob matches, so it gets one that matches both namings and nothing else.
PART_GLOB = "part-*"


class DdlError(ValueError):
    """A request for definitions that cannot be honoured, with the reason."""


@dataclass(frozen=True)
class ArchiveLocation:
    """Where the archive lies and how to reach it."""

    bucket: str
    prefix: str
    endpoint_url: str = ""  # empty: AWS's own endpoint
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    ca_file: str = ""  # the CA of a private HTTPS endpoint; empty: the system's CAs

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLocation:
        return cls(
            bucket=settings.s3_bucket,
            prefix=settings.archive_prefix.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
            ca_file=settings.ca_file(settings.s3_ca_file),
        )

    def url(self, scheme: str = "s3") -> str:
        """The archive's root, ending in a slash: ``s3://bucket/logs/``."""
        return f"{scheme}://{self.bucket}/{self.prefix}/"


def check_tenant(tenant: str | None) -> str | None:
    """``tenant`` when it is a valid tenant id (so safe inside a path and a SQL string)."""
    if tenant is not None and not TENANT_ID_RE.match(tenant):
        raise DdlError(f"not a tenant id: {tenant!r} (lower-case letters, digits, '-' and '_')")
    return tenant


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# -- column types ----------------------------------------------------------------------------------


def _data_fields() -> list[pa.Field]:
    """The fields stored in the files: the archive schema less its path partitions."""
    return [f for f in archive_arrow_schema() if f.name not in ARCHIVE_PARTITIONS]


# Digits of a second per Arrow unit, and Trino's name for that precision of its Hive connector.
_TRINO_PRECISION = {"ms": 3, "us": 6, "ns": 9}
_TRINO_PRECISION_NAME = {3: "MILLISECONDS", 6: "MICROSECONDS", 9: "NANOSECONDS"}


def _trino_precision() -> int:
    """The precision of the archive's timestamps (every timestamp field has the same unit)."""
    units = {f.type.unit for f in _data_fields() if pa.types.is_timestamp(f.type)}
    if len(units) != 1:
        raise DdlError(f"the archive's timestamps must share one unit for Trino, not {sorted(units)}")
    return _TRINO_PRECISION[units.pop()]


def _hive_type(t: pa.DataType, *, trino: bool = False) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "varchar" if trino else "string"
    if pa.types.is_timestamp(t):
        if trino:
            # Trino's Hive connector accepts only the precision its session is set to (the script
            # sets it to the files'); the metastore keeps a plain `timestamp` either way.
            return f"timestamp({_TRINO_PRECISION[t.unit]})"
        return "timestamp"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "integer" if trino else "int"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_list(t):
        inner = _hive_type(t.value_type, trino=trino)
        return f"array({inner})" if trino else f"array<{inner}>"
    raise DdlError(f"no engine type for the archive's Arrow type {t}")


def _columns(*, trino: bool = False, indent: str = "  ") -> str:
    quote = '"' if trino else "`"
    return ",\n".join(
        f"{indent}{quote}{f.name}{quote} {_hive_type(f.type, trino=trino)}" for f in _data_fields()
    )


# -- engines ---------------------------------------------------------------------------------------


def athena_ddl(loc: ArchiveLocation, tenant: str | None = None, table: str = "logs") -> str:
    """An Athena table over the archive with partition projection: no crawler, no MSCK REPAIR.

    Without ``tenant`` the tenant is *injected*: every query must name it (``WHERE tenant = 'acme'``),
    so one query never scans every tenant by accident. With it the table holds that tenant only.
    """
    tenant = check_tenant(tenant)
    root = loc.url("s3")
    if tenant is None:
        tenant_props = ["'projection.tenant.type' = 'injected'"]
    else:
        tenant_props = ["'projection.tenant.type' = 'enum'", f"'projection.tenant.values' = {_quote(tenant)}"]
    props = [
        "'projection.enabled' = 'true'",
        *tenant_props,
        "'projection.dt.type' = 'date'",
        "'projection.dt.format' = 'yyyy-MM-dd'",
        f"'projection.dt.range' = '{ATHENA_FIRST_DAY},NOW'",
        "'projection.dt.interval' = '1'",
        "'projection.dt.interval.unit' = 'DAYS'",
        "'projection.hour.type' = 'integer'",
        "'projection.hour.range' = '0,23'",
        "'projection.hour.digits' = '2'",
        f"'storage.location.template' = {_quote(root + 'tenant=${tenant}/dt=${dt}/hour=${hour}/')}",
        "'parquet.compression' = 'ZSTD'",
    ]
    partitions = ", ".join(f"`{p}` string" for p in ARCHIVE_PARTITIONS)
    return (
        f"-- Athena: the Strata archive at {root}; dt is 'YYYY-MM-DD', hour is '00'..'23'.\n"
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{_columns()}\n)\n"
        f"PARTITIONED BY ({partitions})\n"
        "STORED AS PARQUET\n"
        f"LOCATION {_quote(root)}\n"
        "TBLPROPERTIES (\n  " + ",\n  ".join(props) + "\n);\n"
    )


def trino_ddl(
    loc: ArchiveLocation, tenant: str | None = None, catalog: str = "hive", schema: str = "strata"
) -> str:
    """Trino's Hive connector: an external table, its partitions found, and a tenant's view."""
    tenant = check_tenant(tenant)
    partitions = ",\n".join(f'  "{p}" varchar' for p in ARCHIVE_PARTITIONS)
    names = ", ".join(_quote(p) for p in ARCHIVE_PARTITIONS)
    table = f"{catalog}.{schema}.logs"
    out = (
        f"-- Trino (Hive connector, catalog {catalog}): the Strata archive at {loc.url('s3')}\n"
        "-- Timestamps at the files' precision (the catalog's hive.timestamp-precision is the\n"
        "-- default for later sessions; a session may set it as here).\n"
        f"SET SESSION {catalog}.timestamp_precision = "
        f"{_quote(_TRINO_PRECISION_NAME[_trino_precision()])};\n"
        f"CREATE SCHEMA IF NOT EXISTS {catalog}.{schema};\n"
        f"CREATE TABLE IF NOT EXISTS {table} (\n{_columns(trino=True)},\n{partitions}\n)\n"
        "WITH (\n"
        f"  external_location = {_quote(loc.url('s3'))},\n"
        "  format = 'PARQUET',\n"
        f"  partitioned_by = ARRAY[{names}]\n"
        ");\n"
        "-- New hours appear as partitions after this call (run it on a schedule, or query with\n"
        "-- hive.partition_projection_enabled on a recent Trino).\n"
        f"CALL {catalog}.system.sync_partition_metadata({_quote(schema)}, 'logs', 'ADD');\n"
    )
    if tenant is not None:
        out += (
            f'CREATE OR REPLACE VIEW {catalog}.{schema}."logs_{tenant}" AS\n'
            f"  SELECT * FROM {table} WHERE tenant = {_quote(tenant)};\n"
        )
    return out


def spark_ddl(loc: ArchiveLocation, tenant: str | None = None, table: str = "logs") -> str:
    """Spark SQL: a Parquet table over ``s3a://`` with its partitions recovered, and a tenant's view."""
    tenant = check_tenant(tenant)
    partitions = ",\n".join(f"  `{p}` string" for p in ARCHIVE_PARTITIONS)
    names = ", ".join(f"`{p}`" for p in ARCHIVE_PARTITIONS)
    out = (
        f"-- Spark SQL: the Strata archive at {loc.url('s3a')}\n"
        f"CREATE TABLE IF NOT EXISTS `{table}` (\n{_columns()},\n{partitions}\n)\n"
        "USING PARQUET\n"
        f"PARTITIONED BY ({names})\n"
        f"LOCATION {_quote(loc.url('s3a'))};\n"
        f"MSCK REPAIR TABLE `{table}`;  -- again whenever new hours should become visible\n"
    )
    if tenant is not None:
        out += (
            f"CREATE OR REPLACE TEMPORARY VIEW `{table}_{tenant}` AS\n"
            f"  SELECT * FROM `{table}` WHERE tenant = {_quote(tenant)};\n"
        )
    return out


def duckdb_secret(loc: ArchiveLocation, name: str = "strata_archive") -> str:
    """``CREATE SECRET`` for the archive's S3 endpoint, scoped to its bucket."""
    parts = ["TYPE s3"]
    if loc.access_key:
        parts += [f"KEY_ID {_quote(loc.access_key)}", f"SECRET {_quote(loc.secret_key)}"]
    else:
        parts.append("PROVIDER credential_chain")
    parts.append(f"REGION {_quote(loc.region)}")
    if loc.endpoint_url:
        url = urlsplit(loc.endpoint_url)
        if not url.hostname:
            raise DdlError(f"not an endpoint URL: {loc.endpoint_url!r}")
        parts += [
            f"ENDPOINT {_quote(url.netloc)}",
            "URL_STYLE 'path'",  # a local server has no per-bucket host names
            f"USE_SSL {'true' if url.scheme == 'https' else 'false'}",
        ]
    parts.append(f"SCOPE {_quote(f's3://{loc.bucket}')}")
    # httpfs verifies HTTPS against its own bundle unless told of the private CA.
    ca = f"SET ca_cert_file = {_quote(loc.ca_file)};\n" if loc.ca_file else ""
    return ca + f"CREATE OR REPLACE SECRET {name} (\n  " + ",\n  ".join(parts) + "\n);\n"


def duckdb_view(loc: ArchiveLocation, tenant: str | None = None, name: str = "logs") -> str:
    """``CREATE VIEW logs``: the archive's files (a tenant's only, with ``tenant``) with their
    partition values as columns; dt is a DATE, hour an INTEGER, timestamps UTC (without a zone)."""
    tenant = check_tenant(tenant)
    tenant_dir = "*" if tenant is None else f"tenant={tenant}"
    glob = f"{loc.url('s3')}{tenant_dir}/*/*/{PART_GLOB}"
    return (
        f"CREATE OR REPLACE VIEW {name} AS\n"
        f"SELECT * FROM read_parquet(\n"
        f"  {_quote(glob)},\n"
        "  hive_partitioning = true,\n"
        "  hive_types = {'tenant': VARCHAR, 'dt': DATE, 'hour': INTEGER},\n"
        "  union_by_name = true\n"
        ");\n"
    )


def duckdb_script(loc: ArchiveLocation, tenant: str | None = None) -> str:
    """What a DuckDB with its S3 extension loaded runs as printed: a secret, then the view."""
    return (
        "-- DuckDB: the Strata archive as the view `logs`. Needs the httpfs extension loaded\n"
        "-- (offline: INSTALL '<site-packages>/duckdb_extension_httpfs/extensions/v<version>/"
        "httpfs.duckdb_extension'; LOAD httpfs;).\n" + duckdb_secret(loc) + duckdb_view(loc, tenant)
    )


def ddl(engine: str, loc: ArchiveLocation, tenant: str | None = None) -> str:
    """The definitions for ``engine`` (one of :data:`ENGINES`)."""
    if engine == "athena":
        return athena_ddl(loc, tenant)
    if engine == "trino":
        return trino_ddl(loc, tenant)
    if engine == "spark":
        return spark_ddl(loc, tenant)
    if engine == "duckdb":
        return duckdb_script(loc, tenant)
    raise DdlError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
