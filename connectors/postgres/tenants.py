"""Tenants, API keys and agents in PostgreSQL.

A key is handed out once as ``strata_<key_id>_<secret>``. Only the SHA-256 of the secret is stored:
the secret is 256 random bits, so unlike a password it needs no slow hash to resist guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

KEY_PREFIX = "strata"
SCOPES = frozenset({"ingest", "register", "search", "admin"})
TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_KEY_RE = re.compile(r"^strata_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")


class TenantError(ValueError):
    """A request the store refuses, with a message a user can act on."""


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    revoked: bool
    expired: bool
    tenant_disabled: bool
    rate_per_s: float | None
    agent_id: str | None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_key() -> tuple[str, str, str]:
    """(key_id, secret, the full key to show once)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"{KEY_PREFIX}_{key_id}_{secret}"


def split_key(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None."""
    match = _KEY_RE.match(key.strip())
    return (match.group(1), match.group(2)) if match else None


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    unknown = set(scopes) - SCOPES
    if unknown:
        raise TenantError(f"unknown scope(s) {sorted(unknown)}; known: {sorted(SCOPES)}")
    if not scopes:
        raise TenantError("a key needs at least one scope")
    return sorted(set(scopes))


async def create_tenant(
    conn: AsyncConnection[Any], tenant_id: str, name: str = "", rate_per_s: float | None = None
) -> None:
    if not TENANT_ID_RE.match(tenant_id):
        raise TenantError(
            "a tenant id is 1-63 characters: lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    cur = await conn.execute(
        "INSERT INTO tenants (id, name, rate_per_s) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (tenant_id, name or tenant_id, rate_per_s),
    )
    if cur.rowcount == 0:
        raise TenantError(f"tenant {tenant_id!r} already exists")


async def get_tenant(conn: AsyncConnection[Any], tenant_id: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM tenants WHERE id = %s", (tenant_id,))
        return await cur.fetchone()


async def find_tenant(conn: AsyncConnection[Any], id_or_name: str) -> str | None:
    """The id of the tenant with this id, or else with this display name."""
    cur = await conn.execute(
        "SELECT id FROM tenants WHERE id = %s OR name = %s ORDER BY (id = %s) DESC LIMIT 1",
        (id_or_name, id_or_name, id_or_name),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def list_tenants(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM tenants ORDER BY id")
        return await cur.fetchall()


async def set_tenant_rate(conn: AsyncConnection[Any], tenant_id: str, rate_per_s: float | None) -> None:
    cur = await conn.execute("UPDATE tenants SET rate_per_s = %s WHERE id = %s", (rate_per_s, tenant_id))
    if cur.rowcount == 0:
        raise TenantError(f"no tenant {tenant_id!r}")


async def create_key(
    conn: AsyncConnection[Any],
    tenant_id: str,
    *,
    name: str = "",
    scopes: list[str] | tuple[str, ...] = ("ingest",),
    agent_id: str | None = None,
) -> tuple[str, str]:
    """Make a key for the tenant; returns ``(key_id, key)``. The key is not stored and not shown again."""
    checked = check_scopes(scopes)
    key_id, secret, key = new_key()
    try:
        await conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, name, secret_sha256, scopes, agent_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (key_id, tenant_id, name, hash_secret(secret), checked, agent_id),
        )
    except Exception as exc:  # the foreign key names the missing tenant better than psycopg does
        if "foreign key" in str(exc).lower():
            raise TenantError(f"no tenant {tenant_id!r}") from exc
        raise
    return key_id, key


async def verify_key(conn: AsyncConnection[Any], key: str) -> KeyInfo | None:
    """The key's tenant and rights, or None when no such key exists (or its secret is wrong)."""
    parts = split_key(key)
    if parts is None:
        return None
    key_id, secret = parts
    cur = await conn.execute(
        "SELECT k.secret_sha256, k.tenant_id, k.scopes, k.revoked_at IS NOT NULL,"
        " coalesce(k.expires_at <= now(), false), t.disabled_at IS NOT NULL, t.rate_per_s, k.agent_id"
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_id = %s",
        (key_id,),
    )
    row = await cur.fetchone()
    if row is None or not hmac.compare_digest(bytes(row[0]), hash_secret(secret)):
        return None
    return KeyInfo(
        key_id=key_id,
        tenant_id=row[1],
        scopes=frozenset(row[2]),
        revoked=row[3],
        expired=row[4],
        tenant_disabled=row[5],
        rate_per_s=row[6],
        agent_id=row[7],
    )


async def list_keys(conn: AsyncConnection[Any], tenant_id: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT key_id, tenant_id, name, scopes, agent_id, created_at, expires_at, revoked_at,"
            " rotated_to, last_used_at FROM api_keys WHERE tenant_id = %s ORDER BY created_at",
            (tenant_id,),
        )
        return await cur.fetchall()


async def revoke_key(conn: AsyncConnection[Any], tenant_id: str, key_id: str) -> None:
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %s AND tenant_id = %s",
        (key_id, tenant_id),
    )
    if cur.rowcount == 0:
        raise TenantError(f"no key {key_id!r} in tenant {tenant_id!r}")


async def rotate_key(
    conn: AsyncConnection[Any], tenant_id: str, key_id: str, *, grace_s: float = 0.0
) -> tuple[str, str]:
    """A new key with the old one's scopes; the old one stops working after ``grace_s`` seconds."""
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT name, scopes, agent_id, revoked_at FROM api_keys"
                " WHERE key_id = %s AND tenant_id = %s FOR UPDATE",
                (key_id, tenant_id),
            )
            old = await cur.fetchone()
        if old is None:
            raise TenantError(f"no key {key_id!r} in tenant {tenant_id!r}")
        if old["revoked_at"] is not None:
            raise TenantError(f"key {key_id!r} is revoked; create a new key instead")
        new_id, key = await create_key(
            conn, tenant_id, name=old["name"], scopes=old["scopes"], agent_id=old["agent_id"]
        )
        await conn.execute(
            "UPDATE api_keys SET rotated_to = %s,"
            " expires_at = least(coalesce(expires_at, 'infinity'), now() + %s) WHERE key_id = %s",
            (new_id, timedelta(seconds=max(grace_s, 0.0)), key_id),
        )
    return new_id, key


async def register_agent(
    conn: AsyncConnection[Any],
    tenant_id: str,
    *,
    organization: str,
    environment: str,
    agent_version: str,
    hostname: str = "",
) -> tuple[str, str, str]:
    """Record an agent and give it its own ingest key: ``(client_id, key_id, key)``."""
    client_id = f"agent-{secrets.token_hex(8)}"
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO agents (client_id, tenant_id, organization, environment, agent_version, hostname)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (client_id, tenant_id, organization, environment, agent_version, hostname),
        )
        key_id, key = await create_key(
            conn, tenant_id, name=f"agent {client_id}", scopes=("ingest",), agent_id=client_id
        )
    return client_id, key_id, key


async def touch_key(conn: AsyncConnection[Any], key_id: str, when: datetime) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = %s WHERE key_id = %s", (when, key_id))
