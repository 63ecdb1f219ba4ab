"""``GET /v1/audit``: who changed the tenant's keys, alert rules, retention and settings, and every
use of the admin token on it, newest first.

A tenant key with the ``admin`` scope reads its own tenant's log; the admin token names the tenant
with ``?tenant=``. Entries name the acting key by its id (or ``admin-token``), never a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import AdminKey, StateDep, TenantQuery, acting_tenant
from connectors.postgres import audit

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    tenant: str | None
    actor: str = Field(description="key:<key id>, admin-token, or cli:<user> for the strata command")
    action: str = Field(description="e.g. key.create, key.rotate, alert_rule.update, retention.set")
    target: str = Field(description="what the action was on: a key id, a rule id, a path")
    details: dict[str, Any]
    client_addr: str | None = Field(description="the address the request came from")


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next: str | None = Field(description="pass as ?before= for the next (older) page; null at the end")


@router.get("", response_model=AuditPage)
async def read_audit(
    principal: AdminKey,
    state: StateDep,
    tenant: TenantQuery = None,
    action: Annotated[
        str | None, Query(description="one action, or a family ending in '.' or '*' (key.*)")
    ] = None,
    since: Annotated[datetime | None, Query(alias="from", description="at or after")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="before")] = None,
    before: Annotated[int | None, Query(ge=1, description="the `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The tenant's audit log, newest first, a page at a time."""
    tenant_id = acting_tenant(principal, tenant)
    async with state.pool.connection() as conn:
        rows = await audit.entries(
            conn, tenant_id, action=action, since=since, until=until, before_id=before, limit=limit
        )
    entries = [AuditEntry.model_validate({**row, "tenant": row["tenant_id"]}) for row in rows]
    more = len(entries) == limit
    return AuditPage(entries=entries, next=str(entries[-1].id) if more and entries else None)
