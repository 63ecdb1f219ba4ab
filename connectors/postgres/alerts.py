"""Alert rules and history in PostgreSQL (tables from migration 0002_alerts.sql).

The API uses the async functions; the job and the notifier use the sync ones, each on its own
connection. Every query names the tenant, so one tenant never reads another's rules or history.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.alerts.rules import Rule, RuleSpec

_RULE_COLUMNS = "id, tenant_id, name, spec, enabled, revision, created_at, updated_at"


@dataclass(frozen=True)
class StoredRule:
    rule: Rule
    created_at: datetime
    updated_at: datetime


def _stored(row: dict[str, Any]) -> StoredRule:
    rule = Rule.from_stored(row["id"], row["tenant_id"], row["revision"], row["enabled"], row["spec"])
    return StoredRule(rule, row["created_at"], row["updated_at"])


def new_rule_id() -> str:
    return "r" + secrets.token_hex(8)


def _spec_json(spec: RuleSpec) -> Jsonb:
    return Jsonb(spec.model_dump(mode="json", exclude={"id", "tenant", "revision", "enabled"}))


# -- API (async) --------------------------------------------------------------------------------


async def create_rule(conn: AsyncConnection[Any], tenant: str, spec: RuleSpec) -> StoredRule:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"INSERT INTO alert_rules (id, tenant_id, name, spec, enabled) VALUES (%s, %s, %s, %s, %s) "
            f"RETURNING {_RULE_COLUMNS}",
            (new_rule_id(), tenant, spec.name, _spec_json(spec), spec.enabled),
        )
        row = await cur.fetchone()
    assert row is not None
    return _stored(row)


async def list_rules(conn: AsyncConnection[Any], tenant: str) -> list[StoredRule]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = %s ORDER BY name, id", (tenant,)
        )
        return [_stored(r) for r in await cur.fetchall()]


async def get_rule(conn: AsyncConnection[Any], tenant: str, rule_id: str) -> StoredRule | None:
    return await _one_rule(
        conn, f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = %s AND id = %s", (tenant, rule_id)
    )


async def _one_rule(conn: AsyncConnection[Any], sql: str, params: tuple[Any, ...]) -> StoredRule | None:
    """The rule a statement returns (a SELECT or an UPDATE … RETURNING), if any."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
    return _stored(row) if row else None


async def update_rule(
    conn: AsyncConnection[Any], tenant: str, rule_id: str, spec: RuleSpec
) -> StoredRule | None:
    return await _one_rule(
        conn,
        "UPDATE alert_rules SET name = %s, spec = %s, enabled = %s, revision = revision + 1, "
        f"updated_at = now() WHERE tenant_id = %s AND id = %s RETURNING {_RULE_COLUMNS}",
        (spec.name, _spec_json(spec), spec.enabled, tenant, rule_id),
    )


async def set_enabled(
    conn: AsyncConnection[Any], tenant: str, rule_id: str, enabled: bool
) -> StoredRule | None:
    return await _one_rule(
        conn,
        "UPDATE alert_rules SET enabled = %s, revision = revision + 1, updated_at = now() "
        f"WHERE tenant_id = %s AND id = %s RETURNING {_RULE_COLUMNS}",
        (enabled, tenant, rule_id),
    )


async def delete_rule(conn: AsyncConnection[Any], tenant: str, rule_id: str) -> bool:
    cur = await conn.execute("DELETE FROM alert_rules WHERE tenant_id = %s AND id = %s", (tenant, rule_id))
    return cur.rowcount > 0


async def list_history(
    conn: AsyncConnection[Any],
    tenant: str,
    *,
    rule_id: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first, each with the deliveries of its notification."""
    where = ["h.tenant_id = %s"]
    args: list[Any] = [tenant]
    for column, op, value in (
        ("h.rule_id", "=", rule_id),
        ("h.state", "=", state),
        ("h.window_end", ">=", since),
        ("h.window_end", "<", until),
    ):
        if value is not None:
            where.append(f"{column} {op} %s")
            args.append(value)
    args.append(limit)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT h.*, COALESCE((SELECT jsonb_agg(jsonb_build_object("
            "  'channel', n.channel->>'type', 'status', n.status, 'attempts', n.attempts,"
            "  'sent_at', n.sent_at, 'last_error', n.last_error) ORDER BY n.id)"
            "  FROM alert_notifications n WHERE n.event_id = h.event_id), '[]') AS deliveries "
            f"FROM alert_history h WHERE {' AND '.join(where)} "
            "ORDER BY h.window_end DESC, h.recorded_at DESC LIMIT %s",
            args,
        )
        return list(await cur.fetchall())


# -- the job and the notifier (sync) ------------------------------------------------------------


def load_rules(dsn: str) -> list[Rule]:
    """Every enabled rule of every tenant. A rule that no longer validates (written by an older or
    newer Strata) is skipped rather than stopping all alerting."""
    rules = []
    with psycopg.connect(dsn, connect_timeout=5) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE enabled")
        for row in cur.fetchall():
            try:
                rules.append(_stored(row).rule)
            except ValueError:
                continue
    return rules
