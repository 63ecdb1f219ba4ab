"""The audit log in PostgreSQL (migration 0004_audit): who changed what, when and from where.

Anything that changes a tenant's configuration calls :func:`record` on the connection that makes
the change, inside the change's transaction, so both commit or neither does::

    async with pool.connection() as conn, conn.transaction():
        await alerts.create_rule(conn, tenant, spec)
        await audit.record(conn, actor, tenant, "alert_rule.create", target=rule_id)

:func:`record` refuses to run outside a transaction, so a caller cannot get that wrong silently.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

ADMIN_TOKEN = "admin-token"


@dataclass(frozen=True)
class Actor:
    """Who acts: ``key:<key_id>``, ``admin-token`` or ``cli:<os user>`` (never a secret), and the
    client address the request came from (None for the CLI)."""

    name: str
    client_addr: str | None = None

    @classmethod
    def key(cls, key_id: str, client_addr: str | None) -> Actor:
        return cls(f"key:{key_id}", client_addr)

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a bare container)
            user = "unknown"
        return cls(f"cli:{user}")


class AuditError(RuntimeError):
    """The audit entry cannot be written the way it must be (outside the change's transaction)."""


async def record(
    conn: AsyncConnection[Any],
    actor: Actor,
    tenant_id: str | None,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Write one audit entry on ``conn``, which must be inside the transaction of the change."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise AuditError(f"audit entry {action!r} written outside the transaction of its change")
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, target, details, client_addr)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (tenant_id, actor.name, action, target, Jsonb(details or {}), actor.client_addr),
    )


async def entries(
    conn: AsyncConnection[Any],
    tenant_id: str,
    *,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The tenant's entries, newest first. ``action`` matches exactly, or a family when it ends with
    ``.`` or ``*`` (``key.`` is every key action); ``before_id`` pages on from an earlier answer."""
    where = ["tenant_id = %s"]
    args: list[Any] = [tenant_id]
    if action:
        if action.endswith(("*", ".")):
            prefix = action.rstrip("*")
            where.append("starts_with(action, %s)")
            args.append(prefix)
        else:
            where.append("action = %s")
            args.append(action)
    for clause, value in (("at >= %s", since), ("at < %s", until), ("id < %s", before_id)):
        if value is not None:
            where.append(clause)
            args.append(value)
    args.append(limit)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, at, tenant_id, actor, action, target, details, client_addr FROM audit_log"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
            args,
        )
        return list(await cur.fetchall())
