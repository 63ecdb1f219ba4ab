"""Tenants, API keys and agent registration.

The first tenant and key come from ``strata tenant create`` (or ``POST /v1/tenants`` with the admin
token). A key with the ``admin`` scope manages its own tenant's keys; the admin token may manage any
tenant's by naming it with ``?tenant=``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from fastapi import APIRouter, HTTPException, status
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminKey, AppState, RegisterKey, StateDep, TenantQuery, acting_tenant
from connectors.postgres import audit, tenants

router = APIRouter(prefix="/v1", tags=["tenants"])


class AgentRegistration(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    organization: str = Field(min_length=1, max_length=200, description="the tenant's id or name")
    environment: str = Field(default="", max_length=100)
    agent_version: str = Field(default="", max_length=100, alias="agentVersion")
    hostname: str = Field(default="", max_length=255)


class AgentCredentials(BaseModel):
    client_id: str
    token: str = Field(description="an ingest key for this agent; shown only once")
    key_id: str
    tenant: str


class KeyRequest(BaseModel):
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(default_factory=lambda: ["ingest"])


class NewKey(BaseModel):
    tenant: str
    key_id: str
    key: str = Field(description="shown only once")
    replaces: str | None = None


class KeyInfo(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    agent_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None
    last_used_at: datetime | None


class RotateRequest(BaseModel):
    grace_s: float = Field(default=0.0, ge=0, le=30 * 86400, description="how long the old key keeps working")


class TenantRequest(BaseModel):
    id: str = Field(description="lower-case letters, digits, - and _; stamped on every record")
    name: str = ""
    rate_per_s: float | None = Field(default=None, ge=0)


def _refused(exc: tenants.TenantError) -> HTTPException:
    text = str(exc)
    code = status.HTTP_404_NOT_FOUND if text.startswith("no ") else status.HTTP_400_BAD_REQUEST
    if "already exists" in text:
        code = status.HTTP_409_CONFLICT
    return HTTPException(code, detail=text)


@asynccontextmanager
async def _connection(state: AppState) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection in a transaction (the change and its audit entry commit together), whose
    TenantError (unknown tenant, bad scope…) answers as the request's own error."""
    try:
        async with state.pool.connection() as conn, conn.transaction():
            yield conn
    except tenants.TenantError as exc:
        raise _refused(exc) from exc


def _forget_keys(state: AppState) -> None:
    # This worker stops trusting cached keys at once; others within auth_cache_s.
    state.auth_cache.clear()


@router.post("/agents/register", response_model=AgentCredentials, status_code=status.HTTP_201_CREATED)
async def register_agent(body: AgentRegistration, principal: RegisterKey, state: StateDep) -> Any:
    """Register an agent: returns its client id and its own ingest token."""
    async with state.pool.connection() as conn, conn.transaction():
        tenant_id = await tenants.find_tenant(conn, body.organization)
        if principal.is_admin_token:
            if tenant_id is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, detail=f"no organization {body.organization!r}"
                )
        elif tenant_id != principal.tenant_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=(
                    f"this key registers agents for {principal.tenant_id!r} only, not {body.organization!r}"
                ),
            )
        assert tenant_id is not None
        client_id, key_id, key = await tenants.register_agent(
            conn,
            tenant_id,
            organization=body.organization,
            environment=body.environment,
            agent_version=body.agent_version,
            hostname=body.hostname,
        )
        await audit.record(
            conn,
            principal.actor,
            tenant_id,
            "agent.register",
            target=client_id,
            details={"key_id": key_id, "hostname": body.hostname, "environment": body.environment},
        )
    return AgentCredentials(client_id=client_id, token=key, key_id=key_id, tenant=tenant_id)


@router.post("/keys", response_model=NewKey, status_code=status.HTTP_201_CREATED)
async def create_key(
    body: KeyRequest, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Create a key for the tenant."""
    tenant_id = acting_tenant(principal, tenant)
    async with _connection(state) as conn:
        key_id, key = await tenants.create_key(conn, tenant_id, name=body.name, scopes=body.scopes)
        await audit.record(
            conn,
            principal.actor,
            tenant_id,
            "key.create",
            target=key_id,
            details={"name": body.name, "scopes": sorted(set(body.scopes))},
        )
    return NewKey(tenant=tenant_id, key_id=key_id, key=key)


@router.get("/keys", response_model=list[KeyInfo])
async def list_keys(principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """The tenant's keys (never their secrets)."""
    tenant_id = acting_tenant(principal, tenant)
    async with state.pool.connection() as conn:
        return await tenants.list_keys(conn, tenant_id)


@router.post("/keys/{key_id}/rotate", response_model=NewKey, status_code=status.HTTP_201_CREATED)
async def rotate_key(
    key_id: str,
    principal: AdminKey,
    state: StateDep,
    body: RotateRequest | None = None,
    tenant: TenantQuery = None,
) -> Any:
    """Replace a key by a new one with the same scopes; the old one expires after ``grace_s``."""
    tenant_id = acting_tenant(principal, tenant)
    async with _connection(state) as conn:
        grace_s = (body or RotateRequest()).grace_s
        new_id, key = await tenants.rotate_key(conn, tenant_id, key_id, grace_s=grace_s)
        await audit.record(
            conn,
            principal.actor,
            tenant_id,
            "key.rotate",
            target=key_id,
            details={"new_key_id": new_id, "grace_s": grace_s},
        )
    _forget_keys(state)
    return NewKey(tenant=tenant_id, key_id=new_id, key=key, replaces=key_id)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: str, principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> None:
    """Revoke a key at once."""
    tenant_id = acting_tenant(principal, tenant)
    async with _connection(state) as conn:
        await tenants.revoke_key(conn, tenant_id, key_id)
        await audit.record(conn, principal.actor, tenant_id, "key.revoke", target=key_id)
    _forget_keys(state)


@router.post("/tenants", response_model=NewKey, status_code=status.HTTP_201_CREATED)
async def create_tenant(body: TenantRequest, principal: AdminKey, state: StateDep) -> Any:
    """Create a tenant with a first key (scopes ingest, register, admin). Admin token only."""
    if not principal.is_admin_token:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="creating tenants needs the admin token")
    try:
        async with state.pool.connection() as conn, conn.transaction():
            await tenants.create_tenant(conn, body.id, body.name, body.rate_per_s)
            key_id, key = await tenants.create_key(
                conn, body.id, name="first key", scopes=["ingest", "register", "admin"]
            )
            await audit.record(
                conn,
                principal.actor,
                body.id,
                "tenant.create",
                target=body.id,
                details={"name": body.name or body.id, "rate_per_s": body.rate_per_s, "first_key_id": key_id},
            )
    except tenants.TenantError as exc:
        raise _refused(exc) from exc
    except psycopg.Error as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    return NewKey(tenant=body.id, key_id=key_id, key=key)
