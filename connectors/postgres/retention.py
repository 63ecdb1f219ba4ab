"""Retention overrides per tenant and the deletion log in PostgreSQL (migration 0003_retention)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from core.retention import Deletion, Override

# Override's fields, in order, are the table's columns (metrics_*: migration 0006).
_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Override))


async def overrides(conn: AsyncConnection[Any]) -> dict[str, Override]:
    """Every tenant's override (tenants without one are absent)."""
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT tenant_id, {', '.join(_COLUMNS)} FROM tenant_retention")
        return {row[0]: Override(*row[1:]) for row in await cur.fetchall()}


async def set_override(conn: AsyncConnection[Any], tenant_id: str, override: Override) -> None:
    """Replace the tenant's override; all three ``None`` removes it."""
    if override == Override():
        await conn.execute("DELETE FROM tenant_retention WHERE tenant_id = %s", (tenant_id,))
        return
    await conn.execute(
        f"INSERT INTO tenant_retention (tenant_id, {', '.join(_COLUMNS)})"
        f" VALUES (%s, {', '.join('%s' for _ in _COLUMNS)})"
        f" ON CONFLICT (tenant_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in _COLUMNS)},"
        " updated_at = now()",
        (tenant_id, *(getattr(override, c) for c in _COLUMNS)),
    )


async def log_deletion(conn: AsyncConnection[Any], deletion: Deletion, dry_run: bool) -> None:
    await conn.execute(
        "INSERT INTO retention_log (tier, tenant_id, target, reason, records, bytes, dry_run)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            deletion.tier,
            deletion.tenant,
            deletion.target,
            deletion.reason,
            deletion.records,
            deletion.bytes,
            dry_run,
        ),
    )


async def deletion_log(
    conn: AsyncConnection[Any], tenant_id: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest deletions, of one tenant's data (``tenant_id``) or of all (``None``)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        if tenant_id is None:
            await cur.execute("SELECT * FROM retention_log ORDER BY at DESC, id DESC LIMIT %s", (limit,))
        else:
            await cur.execute(
                "SELECT * FROM retention_log WHERE tenant_id = %s ORDER BY at DESC, id DESC LIMIT %s",
                (tenant_id, limit),
            )
        return list(await cur.fetchall())
