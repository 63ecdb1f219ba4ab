"""``strata tenant``: create tenants and manage their API keys and client certificates.

This is how the first key comes to exist: ``strata tenant create acme`` prints a key once. After
that, a key with the ``admin`` scope manages the tenant's keys over HTTP (``/v1/keys``), and the
``STRATA_ADMIN_TOKEN`` setting, when set, lets an operator create tenants over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg

from connectors.postgres import audit, certs, tenants
from connectors.postgres.migrate import migrate
from infra.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a tenant and print its first key (ingest + admin)")
    create.add_argument("tenant", help="tenant id: lower-case letters, digits, - and _")
    create.add_argument("--name", default="", help="display name (defaults to the id)")
    create.add_argument(
        "--rate", type=float, default=None, help="records/s per worker (default: the setting)"
    )
    create.add_argument(
        "--scopes", default="ingest,register,admin", help="comma-separated scopes of the first key"
    )
    sub.add_parser("list", help="list tenants")
    key_create = sub.add_parser("key-create", help="create another key for a tenant and print it")
    key_create.add_argument("tenant")
    key_create.add_argument("--name", default="")
    key_create.add_argument(
        "--scopes", default="ingest", help="comma-separated: ingest, register, search, admin"
    )
    keys = sub.add_parser("keys", help="list a tenant's keys (never their secrets)")
    keys.add_argument("tenant")
    rotate = sub.add_parser("key-rotate", help="replace a key; the old one works for --grace seconds more")
    rotate.add_argument("tenant")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=float, default=0.0)
    revoke = sub.add_parser("key-revoke", help="revoke a key at once")
    revoke.add_argument("tenant")
    revoke.add_argument("key_id")
    cert_add = sub.add_parser(
        "cert-add", help="register a client certificate (PEM file or SHA-256 fingerprint) to a tenant"
    )
    cert_add.add_argument("tenant")
    cert_add.add_argument("cert", help="the certificate's PEM file, or its SHA-256 fingerprint")
    cert_add.add_argument("--name", default="")
    cert_add.add_argument(
        "--scopes", default="ingest", help="comma-separated: ingest, register, search, admin"
    )
    certs_list = sub.add_parser("certs", help="list a tenant's client certificates")
    certs_list.add_argument("tenant")
    cert_revoke = sub.add_parser("cert-revoke", help="stop accepting a client certificate at once")
    cert_revoke.add_argument("tenant")
    cert_revoke.add_argument("fingerprint")
    rate = sub.add_parser("set-rate", help="set a tenant's rate limit (records/s per worker; 0 = none)")
    rate.add_argument("tenant")
    rate.add_argument("rate", help="a number, or 'default' for the server-wide setting")


def _print(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


async def _with_conn(action: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]]) -> Any:
    dsn = get_settings().postgres_dsn
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await action(conn)


async def _audited(
    change: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]],
    tenant: str,
    action: str,
    target: Callable[[Any], str] | str = "",
    details: Callable[[Any], dict[str, Any]] | None = None,
) -> Any:
    """Run ``change`` and write its audit entry (actor ``cli:<os user>``) in one transaction."""

    async def both(conn: psycopg.AsyncConnection[Any]) -> Any:
        async with conn.transaction():
            result = await change(conn)
            await audit.record(
                conn,
                audit.Actor.cli(),
                tenant,
                action,
                target=target(result) if callable(target) else target,
                details=details(result) if details else None,
            )
            return result

    return await _with_conn(both)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        migrate(settings.postgres_dsn)
        return asyncio.run(_run(args))
    except tenants.TenantError as exc:
        print(f"strata tenant: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"strata tenant: cannot reach PostgreSQL ({exc}); is the stack up?", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "create":

        async def create(conn: psycopg.AsyncConnection[Any]) -> tuple[str, str]:
            await tenants.create_tenant(conn, args.tenant, args.name, args.rate)
            return await tenants.create_key(conn, args.tenant, name="first key", scopes=_scopes(args.scopes))

        key_id, key = await _audited(
            create,
            args.tenant,
            "tenant.create",
            args.tenant,
            lambda r: {"name": args.name or args.tenant, "rate_per_s": args.rate, "first_key_id": r[0]},
        )
        _print({"tenant": args.tenant, "key_id": key_id, "key": key})
        print("Keep the key: it is shown only once.", file=sys.stderr)
    elif action == "list":
        _print(await _with_conn(tenants.list_tenants))
    elif action == "key-create":
        key_id, key = await _audited(
            lambda conn: tenants.create_key(conn, args.tenant, name=args.name, scopes=_scopes(args.scopes)),
            args.tenant,
            "key.create",
            lambda r: str(r[0]),
            lambda r: {"name": args.name, "scopes": sorted(set(_scopes(args.scopes)))},
        )
        _print({"tenant": args.tenant, "key_id": key_id, "key": key})
    elif action == "keys":
        _print(await _with_conn(lambda conn: tenants.list_keys(conn, args.tenant)))
    elif action == "key-rotate":
        key_id, key = await _audited(
            lambda conn: tenants.rotate_key(conn, args.tenant, args.key_id, grace_s=args.grace),
            args.tenant,
            "key.rotate",
            args.key_id,
            lambda r: {"new_key_id": r[0], "grace_s": args.grace},
        )
        _print({"tenant": args.tenant, "key_id": key_id, "key": key, "replaces": args.key_id})
    elif action == "key-revoke":
        await _audited(
            lambda conn: tenants.revoke_key(conn, args.tenant, args.key_id),
            args.tenant,
            "key.revoke",
            args.key_id,
        )
        _print({"tenant": args.tenant, "key_id": args.key_id, "revoked": True})
    elif action == "cert-add":
        fp = _fingerprint(args.cert)
        await _with_conn(
            lambda conn: certs.add_cert(conn, args.tenant, fp, name=args.name, scopes=_scopes(args.scopes))
        )
        _print({"tenant": args.tenant, "fingerprint": fp, "scopes": sorted(_scopes(args.scopes))})
    elif action == "certs":
        _print(await _with_conn(lambda conn: certs.list_certs(conn, args.tenant)))
    elif action == "cert-revoke":
        fp = certs.normalize_fingerprint(args.fingerprint)
        await _with_conn(lambda conn: certs.revoke_cert(conn, args.tenant, fp))
        _print({"tenant": args.tenant, "fingerprint": fp, "revoked": True})
    elif action == "set-rate":
        rate = None if args.rate == "default" else float(args.rate)
        await _audited(
            lambda conn: tenants.set_tenant_rate(conn, args.tenant, rate),
            args.tenant,
            "tenant.set_rate",
            args.tenant,
            lambda _: {"rate_per_s": rate},
        )
        _print({"tenant": args.tenant, "rate_per_s": rate})
    return 0


def _fingerprint(cert: str) -> str:
    """The fingerprint of a PEM file, or the fingerprint given as it is."""
    from pathlib import Path

    path = Path(cert)
    if path.is_file():
        return certs.fingerprint_of_pem(path.read_text())
    return certs.normalize_fingerprint(cert)


def _scopes(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]
