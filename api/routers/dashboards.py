"""``/v1/dashboards``: the web app's saved dashboards, per tenant.

A key with the ``search`` scope reads its tenant's dashboards; saving, changing and deleting one needs
the ``admin`` scope, as rules and keys do. The admin token names the tenant with ``?tenant=``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import AdminKey, Principal, StateDep, TenantQuery, acting_tenant, require
from connectors.postgres import dashboards as store

router = APIRouter(prefix="/v1/dashboards", tags=["dashboards"])

ReadKey = Annotated[Principal, Depends(require("search", admin_token_too=True))]


class Panel(BaseModel):
    """One panel: what it plots and over which logs (the dashboard's time picker sets the range)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    kind: Literal["volume", "error_rate", "top", "new_patterns", "metric"] = Field(
        description="volume: a count series per group; error_rate: ERROR and FATAL share; "
        "top: the most frequent values; new_patterns: patterns first seen in the range; "
        "metric: a stat of a metric rule's field (rule, stat; grouped by service or level)"
    )
    group_by: Literal["level", "service", "pattern", "host"] = "level"
    service: str = Field("", max_length=200, description="only this service; empty for all")
    level: str = Field("", max_length=20, description="ERROR, or a minimum such as >=WARN; empty for all")
    q: str = Field("", max_length=2000, description="a query in Strata's query language")
    # Metric panels only (absent from the others, so their stored form is unchanged).
    rule: str | None = Field(None, max_length=200, description="metric panels: the metric rule's id")
    stat: Literal["count", "sum", "min", "max", "avg", "p50", "p95", "p99"] | None = Field(
        None, description="metric panels: the statistic charted (default p95)"
    )

    @model_validator(mode="after")
    def _metric_names_a_rule(self) -> Panel:
        if self.kind == "metric":
            if not self.rule:
                raise ValueError("a metric panel names the metric rule it charts (rule)")
            self.stat = self.stat or "p95"
        return self


class DashboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    panels: list[Panel] = Field(default_factory=list, max_length=50)


class DashboardOut(DashboardIn):
    id: str
    tenant: str
    created_at: datetime
    updated_at: datetime


def _out(row: dict[str, Any]) -> DashboardOut:
    fields = {k: v for k, v in row.items() if k != "tenant_id"}
    return DashboardOut.model_validate({**fields, "tenant": row["tenant_id"]})


def _not_found(dashboard_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dashboard {dashboard_id!r} in this tenant")


def _taken(name: str) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT, detail=f"a dashboard named {name!r} already exists; choose another name"
    )


def _panels(body: DashboardIn) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json", exclude_none=True) for p in body.panels]


@router.post(
    "", response_model=DashboardOut, status_code=status.HTTP_201_CREATED, response_model_exclude_none=True
)
async def create_dashboard(
    body: DashboardIn, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Save a new dashboard."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's dashboards")
    try:
        async with state.pool.connection() as conn:
            return _out(await store.create(conn, tenant_id, body.name, _panels(body)))
    except store.DashboardExists as exc:
        raise _taken(body.name) from exc


@router.get("", response_model=list[DashboardOut], response_model_exclude_none=True)
async def list_dashboards(principal: ReadKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """The tenant's dashboards, by name."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's dashboards")
    async with state.pool.connection() as conn:
        return [_out(row) for row in await store.list_all(conn, tenant_id)]


@router.get("/{dashboard_id}", response_model=DashboardOut, response_model_exclude_none=True)
async def get_dashboard(
    dashboard_id: str, principal: ReadKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """One dashboard."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's dashboards")
    async with state.pool.connection() as conn:
        row = await store.get(conn, tenant_id, dashboard_id)
    if row is None:
        raise _not_found(dashboard_id)
    return _out(row)


@router.put("/{dashboard_id}", response_model=DashboardOut, response_model_exclude_none=True)
async def replace_dashboard(
    dashboard_id: str, body: DashboardIn, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Replace a dashboard's name and panels."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's dashboards")
    try:
        async with state.pool.connection() as conn:
            row = await store.replace(conn, tenant_id, dashboard_id, body.name, _panels(body))
    except store.DashboardExists as exc:
        raise _taken(body.name) from exc
    if row is None:
        raise _not_found(dashboard_id)
    return _out(row)


@router.delete("/{dashboard_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_dashboard(
    dashboard_id: str, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> None:
    """Delete a dashboard."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's dashboards")
    async with state.pool.connection() as conn:
        if not await store.delete(conn, tenant_id, dashboard_id):
            raise _not_found(dashboard_id)
