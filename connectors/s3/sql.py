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

from connectors.s3.ddl import ArchiveLocation, duckdb_script


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
        yield con
    finally:
        con.close()
