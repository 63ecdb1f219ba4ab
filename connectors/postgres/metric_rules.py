"""Metric rules in PostgreSQL (migration 0008_metric_rules.sql).

The API uses the async functions; a job uses :func:`load_rules` on its own connection. Every
query names the tenant, so one tenant never reads another's rules.
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

from core.fieldmetrics import MetricRule, MetricRuleSpec

_COLUMNS = "id, tenant_id, name, spec, enabled, revision, created_at, updated_at"


@dataclass(frozen=True)
class StoredRule:
    rule: MetricRule
    created_at: datetime
    updated_at: datetime


class DuplicateName(ValueError):
    """The tenant already has a metric rule of that name."""


def _stored(row: dict[str, Any]) -> StoredRule:
    rule = MetricRule.from_stored(row["id"], row["tenant_id"], row["revision"], row["enabled"], row["spec"])
    return StoredRule(rule, row["created_at"], row["updated_at"])


def new_rule_id() -> str:
    return "m" + secrets.token_hex(8)


def _spec_json(spec: MetricRuleSpec) -> Jsonb:
    return Jsonb(spec.model_dump(mode="json", include=set(MetricRuleSpec.model_fields) - {"enabled"}))


async def _one(conn: AsyncConnection[Any], sql: str, params: tuple[Any, ...]) -> StoredRule | None:
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise DuplicateName(str(exc)) from exc
    return _stored(row) if row else None


async def count_rules(conn: AsyncConnection[Any], tenant: str) -> int:
    """How many rules the tenant has; inside a transaction, it also holds the tenant's rule lock
    until the commit, so two concurrent creates cannot both pass the cap."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('metric_rules:' || %s))", (tenant,))
    cur = await conn.execute("SELECT count(*) FROM metric_rules WHERE tenant_id = %s", (tenant,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def create_rule(conn: AsyncConnection[Any], tenant: str, spec: MetricRuleSpec) -> StoredRule:
    stored = await _one(
        conn,
        f"INSERT INTO metric_rules (id, tenant_id, name, spec, enabled) VALUES (%s, %s, %s, %s, %s) "
        f"RETURNING {_COLUMNS}",
        (new_rule_id(), tenant, spec.name, _spec_json(spec), spec.enabled),
    )
    assert stored is not None
    return stored


async def list_rules(conn: AsyncConnection[Any], tenant: str) -> list[StoredRule]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM metric_rules WHERE tenant_id = %s ORDER BY name, id", (tenant,)
        )
        return [_stored(r) for r in await cur.fetchall()]


async def get_rule(conn: AsyncConnection[Any], tenant: str, id_or_name: str) -> StoredRule | None:
    """The rule with this id, else the one with this name."""
    return await _one(
        conn,
        f"SELECT {_COLUMNS} FROM metric_rules WHERE tenant_id = %s AND (id = %s OR name = %s) "
        "ORDER BY (id = %s) DESC LIMIT 1",
        (tenant, id_or_name, id_or_name, id_or_name),
    )


async def update_rule(
    conn: AsyncConnection[Any], tenant: str, rule_id: str, spec: MetricRuleSpec
) -> StoredRule | None:
    return await _one(
        conn,
        "UPDATE metric_rules SET name = %s, spec = %s, enabled = %s, revision = revision + 1, "
        f"updated_at = now() WHERE tenant_id = %s AND id = %s RETURNING {_COLUMNS}",
        (spec.name, _spec_json(spec), spec.enabled, tenant, rule_id),
    )


async def delete_rule(conn: AsyncConnection[Any], tenant: str, rule_id: str) -> bool:
    cur = await conn.execute("DELETE FROM metric_rules WHERE tenant_id = %s AND id = %s", (tenant, rule_id))
    return cur.rowcount > 0


def load_rules(dsn: str) -> list[MetricRule]:
    """Every enabled rule of every tenant. A rule that no longer validates (written by an older or
    newer Strata) is skipped rather than stopping every other rule."""
    rules = []
    with psycopg.connect(dsn, connect_timeout=5) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM metric_rules WHERE enabled")
        for row in cur.fetchall():
            try:
                rules.append(_stored(row).rule)
            except ValueError:
                continue
    return rules
