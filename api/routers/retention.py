"""``/v1/retention``: how long each tier keeps a tenant's logs, and the log of what was deleted.

A tenant's admin key reads and sets its own retention; the admin token names the tenant with
``?tenant=`` and may run a sweep now (``POST /v1/retention/apply``; the API also sweeps every
``STRATA_RETENTION_INTERVAL_S``).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminKey, StateDep, TenantQuery, acting_tenant
from connectors import retention as sweeps
from connectors.postgres import retention as store
from core.retention import Override, RetentionError, check_override, resolve

router = APIRouter(prefix="/v1/retention", tags=["retention"])


class Days(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hot_days: int | None = Field(None, description="OpenSearch; at most the hot window")
    warm_days: int | None = Field(None, description="Cassandra; at most the warm window")
    archive_days: int | None = Field(None, description="the Parquet archive on S3")
    metrics_1m_days: int | None = Field(None, description="log metrics per minute; at most the default")
    metrics_1h_days: int | None = Field(None, description="log metrics per hour; at most the default")
    metrics_1d_days: int | None = Field(None, description="log metrics per day; at most the default")


class RetentionOut(BaseModel):
    tenant: str
    retention: Days = Field(description="what applies to the tenant")
    override: Days = Field(description="the tenant's own numbers; null keeps the default")
    defaults: Days


class DeletionOut(BaseModel):
    at: datetime
    tier: str
    tenant: str | None
    target: str
    reason: str
    records: int | None
    bytes: int | None
    dry_run: bool


class SweepOut(BaseModel):
    dry_run: bool
    deletions: list[dict[str, Any]]
    errors: list[str]


async def _answer(state: Any, tenant_id: str) -> RetentionOut:
    async with state.pool.connection() as conn:
        override = (await store.overrides(conn)).get(tenant_id) or Override()
    defaults = sweeps.defaults(state.settings)
    return RetentionOut(
        tenant=tenant_id,
        retention=Days(**resolve(defaults, override).as_dict()),
        override=Days(**{f.name: getattr(override, f.name) for f in fields(Override)}),
        defaults=Days(**defaults.as_dict()),
    )


@router.get("", response_model=RetentionOut)
async def get_retention(principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """The tenant's retention per tier, its override and the defaults."""
    return await _answer(state, acting_tenant(principal, tenant))


@router.put("", response_model=RetentionOut)
async def set_retention(body: Days, principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """Set the tenant's own days per tier (null: the default); searches honour it within seconds,
    the next sweep deletes what it puts past its time."""
    tenant_id = acting_tenant(principal, tenant)
    try:
        override = check_override(sweeps.defaults(state.settings), Override(**body.model_dump()))
    except RetentionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    async with state.pool.connection() as conn:
        await store.set_override(conn, tenant_id, override)
    return await _answer(state, tenant_id)


@router.get("/log", response_model=list[DeletionOut])
async def deletion_log(
    principal: AdminKey, state: StateDep, tenant: TenantQuery = None, limit: int = 100
) -> Any:
    """What sweeps deleted of the tenant's data (newest first)."""
    tenant_id = acting_tenant(principal, tenant)
    async with state.pool.connection() as conn:
        rows = await store.deletion_log(conn, tenant_id, min(max(limit, 1), 1000))
    return [{**row, "tenant": row["tenant_id"]} for row in rows]


@router.post("/apply", response_model=SweepOut)
async def apply(principal: AdminKey, state: StateDep, dry_run: bool = True, tenant: str | None = None) -> Any:
    """Sweep every tier now (admin token only); ``dry_run`` (the default) lists what would go."""
    if not principal.is_admin_token:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="a sweep covers every tenant: use the admin token"
        )
    report = await sweeps.apply(state.settings, dry_run=dry_run, tenant=tenant)
    return SweepOut(
        dry_run=report.dry_run,
        deletions=[
            {
                "tier": d.tier,
                "tenant": d.tenant,
                "target": d.target,
                "reason": d.reason,
                "records": d.records,
                "bytes": d.bytes,
            }
            for d in report.deletions
        ],
        errors=report.errors,
    )
