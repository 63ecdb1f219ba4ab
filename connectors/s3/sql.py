"""SQL over the archive with DuckDB reading S3 itself, on a machine with no internet.

DuckDB fetches its S3 extension (httpfs) from the internet on first use. The PyPI package
``duckdb-extension-httpfs`` carries DuckDB's signed build of it for one DuckDB version, so it is
installed from that file instead, and DuckDB is told never to fetch extensions itself.

    with archive_connection(ArchiveLocation.from_settings(settings), tenant="acme") as con:
        con.execute("SELECT level, count(*) FROM logs GROUP BY ALL").fetchall()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from connectors.s3.ddl import PART_GLOB, ArchiveLocation, check_tenant, duckdb_script


class ArchiveSqlError(RuntimeError):
    """DuckDB cannot run over the archive here; the message says what to do."""


def httpfs_extension_path() -> Path:
    """The httpfs extension file ``duckdb-extension-httpfs`` carries for the installed DuckDB."""
    try:
        import duckdb_extension_httpfs
    except ImportError as exc:
        version = duckdb.__version__
        raise ArchiveSqlError(
            f"DuckDB's S3 extension is not installed: pip install duckdb-extension-httpfs=={version}"
        ) from exc
    root = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    path = root / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.is_file():
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        raise ArchiveSqlError(
            f"duckdb-extension-httpfs has no extension for DuckDB {duckdb.__version__} "
            f"(it has {', '.join(found) or 'none'}); install the same version of both"
        )
    return path


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """Load httpfs into ``con`` from the packaged file; DuckDB never reaches for the internet."""
    con.execute("SET autoinstall_known_extensions = false")
    path = str(httpfs_extension_path()).replace("'", "''")
    con.execute(f"INSTALL '{path}'")
    con.execute("LOAD httpfs")


@contextmanager
def archive_connection(
    loc: ArchiveLocation, tenant: str | None = None, *, threads: int = 2
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the view ``logs`` over the archive (one tenant's, with ``tenant``):
    the same script ``strata archive ddl --engine duckdb`` prints."""
    con = duckdb.connect(config={"threads": threads})
    try:
        load_httpfs(con)
        con.execute(duckdb_script(loc, tenant))
        files = visible_files(loc, tenant)
        if files:  # none: the glob's view says "No files found", which the caller reports
            con.execute(_view_over(files))
        yield con
    finally:
        con.close()


def visible_files(loc: ArchiveLocation, tenant: str | None = None) -> list[str]:
    """The archive's files (``s3://`` URLs) as a reader should read them: while an hour is being
    compacted its records lie both in the small files and in the merged ones, and a glob would
    read both; this list holds each record once (see :mod:`core.compaction`)."""
    import fnmatch

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from pyarrow import fs as pafs

    from connectors.s3.archive import Boto3Handler
    from connectors.s3.compaction import visible_paths

    tenant = check_tenant(tenant)
    client = boto3.client(
        "s3",
        endpoint_url=loc.endpoint_url or None,
        aws_access_key_id=loc.access_key or None,
        aws_secret_access_key=loc.secret_key or None,
        region_name=loc.region,
        config=Config(connect_timeout=3, retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        verify=loc.ca_file or None,
    )
    root = f"{loc.prefix}/" + ("" if tenant is None else f"tenant={tenant}/")
    paths = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=root):
            for obj in page.get("Contents", []):
                parts = obj["Key"][len(loc.prefix) + 1 :].split("/")
                if len(parts) == 4 and fnmatch.fnmatchcase(parts[3], PART_GLOB):
                    paths.append(f"{loc.bucket}/{obj['Key']}")
        visible = visible_paths(pafs.PyFileSystem(Boto3Handler(client)), paths)
    except (BotoCoreError, ClientError) as exc:
        raise duckdb.IOException(f"cannot list the archive: {exc}") from exc
    return [f"s3://{p}" for p in visible]


def _view_over(files: list[str], name: str = "logs") -> str:
    """The view ``strata archive ddl --engine duckdb`` defines, over an explicit list of files."""
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return (
        f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{listed}], "
        "hive_partitioning = true, hive_types = {'tenant': VARCHAR, 'dt': DATE, 'hour': INTEGER}, "
        "union_by_name = true)"
    )
