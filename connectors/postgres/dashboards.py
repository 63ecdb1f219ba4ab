"""Saved dashboards in PostgreSQL (table from migration 0005_dashboards.sql).

Every query names the tenant, so one tenant never reads or changes another's dashboards.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

_COLUMNS = "id, tenant_id, name, panels, created_at, updated_at"


class DashboardExists(ValueError):
    """Another dashboard of the tenant has that name."""


def new_dashboard_id() -> str:
    return "d" + secrets.token_hex(8)


async def create(
    conn: AsyncConnection[Any], tenant: str, name: str, panels: list[dict[str, Any]]
) -> dict[str, Any]:
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "INSERT INTO dashboards (id, tenant_id, name, panels) VALUES (%s, %s, %s, %s)"
                f" RETURNING {_COLUMNS}",
                (new_dashboard_id(), tenant, name, Jsonb(panels)),
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise DashboardExists(name) from exc
    assert row is not None
    return row


async def list_all(conn: AsyncConnection[Any], tenant: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM dashboards WHERE tenant_id = %s ORDER BY name", (tenant,))
        return await cur.fetchall()


async def get(conn: AsyncConnection[Any], tenant: str, dashboard_id: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM dashboards WHERE tenant_id = %s AND id = %s", (tenant, dashboard_id)
        )
        return await cur.fetchone()


async def replace(
    conn: AsyncConnection[Any], tenant: str, dashboard_id: str, name: str, panels: list[dict[str, Any]]
) -> dict[str, Any] | None:
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "UPDATE dashboards SET name = %s, panels = %s, updated_at = now()"
                f" WHERE tenant_id = %s AND id = %s RETURNING {_COLUMNS}",
                (name, Jsonb(panels), tenant, dashboard_id),
            )
            return await cur.fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise DashboardExists(name) from exc


async def delete(conn: AsyncConnection[Any], tenant: str, dashboard_id: str) -> bool:
    cur = await conn.execute(
        "DELETE FROM dashboards WHERE tenant_id = %s AND id = %s", (tenant, dashboard_id)
    )
    return cur.rowcount > 0
