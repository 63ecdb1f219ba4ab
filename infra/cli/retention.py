"""``strata retention``: show, set and apply how long each tier keeps each tenant's logs.

strata retention show [--tenant T]
strata retention set --tenant T [--hot-days N] [--warm-days N] [--archive-days N] [--reset]
strata retention apply [--dry-run] [--tenant T]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from infra.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="the defaults and each tenant's own retention")
    show.add_argument("--tenant", help="one tenant only")
    put = sub.add_parser("set", help="set a tenant's days per tier (the others keep the default)")
    put.add_argument("--tenant", required=True)
    put.add_argument("--hot-days", type=int)
    put.add_argument("--warm-days", type=int)
    put.add_argument("--archive-days", type=int)
    for res in ("1m", "1h", "1d"):
        put.add_argument(
            f"--metrics-{res}-days", type=int, help=f"log metrics per {res} (at most the default)"
        )
    put.add_argument("--reset", action="store_true", help="back to the defaults for every tier")
    apply = sub.add_parser("apply", help="delete what is past its retention in every tier, logging each")
    apply.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    apply.add_argument("--tenant", help="only this tenant's data")


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


async def _show(tenant: str | None) -> int:
    import psycopg

    from connectors import retention as sweeps
    from connectors.postgres import retention as store
    from core.retention import Override, resolve

    settings = get_settings()
    defaults = sweeps.defaults(settings)
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
        overrides = await store.overrides(conn)
    print(f"{'tenant':<24} {'hot_days':>9} {'warm_days':>10} {'archive_days':>13}")
    print(f"{'(default)':<24} {defaults.hot_days:>9} {defaults.warm_days:>10} {defaults.archive_days:>13}")
    names = [tenant] if tenant else sorted(overrides)
    for name in names:
        r = resolve(defaults, overrides.get(name) or Override())
        print(f"{name:<24} {r.hot_days:>9} {r.warm_days:>10} {r.archive_days:>13}")
    return 0


async def _set(args: argparse.Namespace) -> int:
    import psycopg

    from connectors import retention as sweeps
    from connectors.postgres import retention as store
    from core.retention import Override, RetentionError, check_override

    settings = get_settings()
    override = (
        Override()
        if args.reset
        else Override(
            args.hot_days,
            args.warm_days,
            args.archive_days,
            args.metrics_1m_days,
            args.metrics_1h_days,
            args.metrics_1d_days,
        )
    )
    try:
        check_override(sweeps.defaults(settings), override)
    except RetentionError as exc:
        print(f"strata retention set: {exc}", file=sys.stderr)
        return 2
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
        try:
            await store.set_override(conn, args.tenant, override)
        except psycopg.errors.ForeignKeyViolation:
            print(f"strata retention set: no tenant {args.tenant!r}", file=sys.stderr)
            return 2
    return await _show(args.tenant)


async def _apply(args: argparse.Namespace) -> int:
    from connectors import retention as sweeps

    report = await sweeps.apply(get_settings(), dry_run=args.dry_run, tenant=args.tenant)
    verb = "would delete" if report.dry_run else "deleted"
    for d in report.deletions:
        amount = ", ".join(
            x for x in (f"{d.records} records" if d.records is not None else "", _fmt_bytes(d.bytes)) if x
        )
        print(f"{verb} {d.tier:<4} {d.target}  ({d.reason}{'; ' + amount if amount else ''})")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"{len(report.deletions)} {'to delete' if report.dry_run else 'deleted'}", file=sys.stderr)
    return 1 if report.errors else 0


def run(args: argparse.Namespace) -> int:
    if args.action == "show":
        return asyncio.run(_show(args.tenant))
    if args.action == "set":
        return asyncio.run(_set(args))
    return asyncio.run(_apply(args))
