"""``strata archive``: query the Parquet archive on S3 with SQL, print its table definitions, compact it.

strata archive sql --tenant acme "SELECT level, count(*) AS n FROM logs GROUP BY ALL ORDER BY n DESC"
strata archive sql --tenant acme --format csv "SELECT * FROM logs WHERE dt = DATE '2026-11-01'"
strata archive ddl --engine athena                # paste into Athena (partition projection)
strata archive ddl --engine duckdb --tenant acme  # paste into a DuckDB with httpfs loaded
strata archive compact --tenant acme --dry-run    # which closed hours would be merged
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sql = sub.add_parser(
        "sql", help="run DuckDB SQL over the archive: the table `logs` (one tenant's with --tenant)"
    )
    sql.add_argument("query", help='e.g. "SELECT service, count(*) FROM logs GROUP BY ALL"')
    sql.add_argument("--tenant", help="only this tenant's logs (default: every tenant's)")
    sql.add_argument("--format", choices=FORMATS, default="table", help="output (default: table)")
    ddl = sub.add_parser("ddl", help="print the definitions an engine reads the archive with")
    ddl.add_argument("--engine", required=True, choices=["athena", "trino", "duckdb", "spark"])
    ddl.add_argument("--tenant", help="scope the definitions to this tenant")
    compact = sub.add_parser(
        "compact", help="merge each closed hour's small files into a few large sorted ones"
    )
    compact.add_argument("--tenant", help="only this tenant's hours (default: every tenant's)")
    compact.add_argument("--dry-run", action="store_true", help="say what would be merged; change nothing")


def run(args: argparse.Namespace) -> int:
    from connectors.s3.ddl import ArchiveLocation, DdlError, ddl
    from infra.settings import get_settings

    if args.action == "compact":
        return _compact(args.tenant, args.dry_run)
    loc = ArchiveLocation.from_settings(get_settings())
    try:
        if args.action == "ddl":
            sys.stdout.write(ddl(args.engine, loc, args.tenant))
            return 0
        return _sql(loc, args.tenant, args.query, args.format, sys.stdout)
    except DdlError as exc:
        print(f"strata archive: {exc}", file=sys.stderr)
        return 2


def _sql(loc: Any, tenant: str | None, query: str, fmt: str, out: TextIO) -> int:
    import duckdb

    from connectors.s3.sql import ArchiveSqlError, archive_connection

    try:
        with archive_connection(loc, tenant) as con:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
    except ArchiveSqlError as exc:
        print(f"strata archive: {exc}", file=sys.stderr)
        return 1
    except duckdb.IOException as exc:
        if "No files found" in str(exc):
            where = f"tenant {tenant!r}" if tenant else "any tenant"
            print(f"strata archive: the archive at {loc.url()} holds no files for {where}", file=sys.stderr)
            return 1
        print(f"strata archive: cannot read the archive at {loc.url()}: {exc}", file=sys.stderr)
        return 1
    except duckdb.Error as exc:
        print(f"strata archive: {exc}", file=sys.stderr)
        return 2
    write_rows(columns, rows, fmt, out)
    return 0


def _compact(tenant: str | None, dry_run: bool) -> int:
    from connectors.s3.compaction import CompactionBusy, compact
    from connectors.s3.ddl import DdlError, check_tenant
    from infra.settings import get_settings

    settings = get_settings()
    try:
        check_tenant(tenant)
        if not dry_run:
            print(
                f"strata archive: compacting; the files each merge replaces are deleted "
                f"{settings.archive_compact_delete_after_s:g} s later, so searches running now finish",
                file=sys.stderr,
            )
        report = compact(settings, tenant=tenant, dry_run=dry_run)
    except DdlError as exc:
        print(f"strata archive: {exc}", file=sys.stderr)
        return 2
    except CompactionBusy as exc:
        print(f"strata archive: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"strata archive: cannot compact the archive: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    verb = "would merge" if dry_run else "merged"
    for h in report.hours:
        if dry_run:
            print(
                f"{verb} tenant={h.tenant} dt={h.dt} hour={h.hour}: "
                f"{h.files_in} files ({h.bytes_in:,} B) into {h.files_out}"
            )
        else:
            print(f"{verb} {h.line()}")
    gone = "would delete" if dry_run else "deleted"
    print(f"{len(report.hours)} hours {verb}, {len(report.deleted)} replaced or left-over files {gone}")
    for error in report.errors:
        print(f"strata archive: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def write_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, out: TextIO) -> None:
    """Rows as an aligned table, CSV with a header, or one JSON object per line."""
    if fmt == "json":
        import orjson

        for row in rows:
            line = orjson.dumps(
                dict(zip(columns, row, strict=True)), default=str, option=orjson.OPT_NAIVE_UTC
            )
            out.write(line.decode() + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        return
    cells = [["NULL" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
    out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")
