"""``/v1/metrics/rules``: rules that turn a field of matching records into metrics
(docs/metrics.md, "Metrics from fields"), per tenant.

Reading needs the ``search`` scope (a dashboard lists the rules it can chart); writing needs the
``admin`` scope, as alert rules do; the admin token names the tenant with ``?tenant=``. Every
change is audited in the same transaction.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import ValidationError

from api.deps import AdminKey, Principal, StateDep, TenantQuery, acting_tenant, require
from api.responses import JSONBytes
from connectors.postgres import audit
from connectors.postgres import metric_rules as store
from core.fieldmetrics import FIELD_GROUP_BY, STATS, MetricRule, MetricRuleSpec

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])

ReadKey = Annotated[Principal, Depends(require("search", admin_token_too=True))]
_WHOSE = "its own tenant's metric rules"


class MetricRuleOut(MetricRule):
    created_at: datetime
    updated_at: datetime


def _out(stored: store.StoredRule) -> MetricRuleOut:
    return MetricRuleOut.model_validate(
        {**stored.rule.model_dump(), "created_at": stored.created_at, "updated_at": stored.updated_at}
    )


def _not_found(rule_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no metric rule {rule_id!r} in this tenant")


def _taken(name: str) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT, detail=f"this tenant already has a metric rule named {name!r}"
    )


async def _audit(conn: Any, principal: Principal, tenant_id: str, action: str, rule: MetricRule) -> None:
    await audit.record(
        conn,
        principal.actor,
        tenant_id,
        action,
        target=rule.id,
        details={"name": rule.name, "field": rule.field, "revision": rule.revision, "enabled": rule.enabled},
    )


@router.post("/rules", response_model=MetricRuleOut, status_code=status.HTTP_201_CREATED)
async def create_rule(
    body: MetricRuleSpec, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Create a metric rule; the evaluating job picks it up without a restart."""
    tenant_id = acting_tenant(principal, tenant, _WHOSE)
    cap = state.settings.metric_rules_max_per_tenant
    async with state.pool.connection() as conn, conn.transaction():
        if await store.count_rules(conn, tenant_id) >= cap:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"this tenant has {cap} metric rules, the most it may have; "
                "delete or reuse one (the cap is STRATA_METRIC_RULES_MAX_PER_TENANT)",
            )
        try:
            stored = await store.create_rule(conn, tenant_id, body)
        except store.DuplicateName as exc:
            raise _taken(body.name) from exc
        await _audit(conn, principal, tenant_id, "metric_rule.create", stored.rule)
    return _out(stored)


@router.get("/rules", response_model=list[MetricRuleOut])
async def list_rules(principal: ReadKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """The tenant's metric rules, by name."""
    tenant_id = acting_tenant(principal, tenant, _WHOSE)
    async with state.pool.connection() as conn:
        return [_out(r) for r in await store.list_rules(conn, tenant_id)]


@router.get("/rules/{rule_id}", response_model=MetricRuleOut)
async def get_rule(rule_id: str, principal: ReadKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """One metric rule, by id or name."""
    tenant_id = acting_tenant(principal, tenant, _WHOSE)
    async with state.pool.connection() as conn:
        stored = await store.get_rule(conn, tenant_id, rule_id)
    if stored is None:
        raise _not_found(rule_id)
    return _out(stored)


@router.put("/rules/{rule_id}", response_model=MetricRuleOut)
async def replace_rule(
    rule_id: str, body: MetricRuleSpec, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Replace a rule's definition (its revision goes up). What it stored so far stays."""
    tenant_id = acting_tenant(principal, tenant, _WHOSE)
    async with state.pool.connection() as conn, conn.transaction():
        try:
            stored = await store.update_rule(conn, tenant_id, rule_id, body)
        except store.DuplicateName as exc:
            raise _taken(body.name) from exc
        if stored is None:
            raise _not_found(rule_id)
        await _audit(conn, principal, tenant_id, "metric_rule.replace", stored.rule)
    return _out(stored)


@router.patch("/rules/{rule_id}", response_model=MetricRuleOut)
async def update_rule(
    rule_id: str, body: dict[str, Any], principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Change some fields of a rule (``{"enabled": false}``); the result is validated as a whole."""
    tenant_id = acting_tenant(principal, tenant, _WHOSE)
    async with state.pool.connection() as conn, conn.transaction():
        current = await store.get_rule(conn, tenant_id, rule_id)
        if current is None or current.rule.id != rule_id:
            raise _not_found(rule_id)
        merged = {**current.rule.model_dump(mode="json", exclude={"id", "tenant", "revision"}), **body}
        try:
            spec = MetricRuleSpec.model_validate(merged)
        except ValidationError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                detail=exc.errors(include_url=False, include_context=False, include_input=False),
            ) from exc
        try:
            stored = await store.update_rule(conn, tenant_id, rule_id, spec)
        except store.DuplicateName as exc:
            raise _taken(spec.name) from exc
        assert stored is not None
        await _audit(conn, principal, tenant_id, "metric_rule.update", stored.rule)
    return _out(stored)


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: str, principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> None:
    """Delete a rule; the metrics it stored stay until retention removes them."""
    tenant_id = acting_tenant(principal, tenant, _WHOSE)
    async with state.pool.connection() as conn, conn.transaction():
        if not await store.delete_rule(conn, tenant_id, rule_id):
            raise _not_found(rule_id)
        await audit.record(conn, principal.actor, tenant_id, "metric_rule.delete", target=rule_id)


# -- reading a rule's metrics (``/v1/metrics/logs?rule=…``, api/routers/log_metrics.py) ------------


def _field_reader(request: Request) -> Any:
    from connectors.opensearch.field_metrics import FieldMetricsReader

    reader = getattr(request.app.state, "field_metrics", None)
    if reader is None:
        from connectors.opensearch.connection import connection_options
        from connectors.opensearch.search import client

        settings = request.app.state.strata.settings
        reader = FieldMetricsReader(
            client(settings.opensearch_endpoint, **connection_options(settings)),
            settings.opensearch_index_prefix,
        )
        request.app.state.field_metrics = reader
    return reader


async def field_metrics(
    request: Request,
    tenant_id: str,
    rule: str,
    stat: str | None,
    group_by: str | None,
    services: tuple[str, ...],
    levels: tuple[str, ...],
    start_s: int,
    end_s: int,
    step_s: int,
) -> JSONBytes:
    """A stat of a rule's field per step, read from its sketch contributions."""
    from connectors.opensearch.field_metrics import FieldQuery, TooManyContributions
    from core.metrics import resolution_for_step

    stat = stat or "count"
    if stat not in STATS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail={"message": f"stat {stat!r} is not one of {', '.join(STATS)}"},
        )
    if group_by is not None and group_by not in FIELD_GROUP_BY:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail={"message": f"a rule's metrics group by {' or '.join(FIELD_GROUP_BY)}, not {group_by!r}"},
        )
    state = request.app.state.strata
    async with state.pool.connection() as conn:
        stored = await store.get_rule(conn, tenant_id, rule)
    if stored is None:
        raise _not_found(rule)
    query = FieldQuery(
        tenant=tenant_id,
        rule=stored.rule.id,
        resolution=resolution_for_step(step_s),
        start_s=start_s,
        end_s=end_s,
        step_s=step_s,
        stat=stat,
        group_by=group_by,
        services=services,
        levels=levels,
    )
    reader = _field_reader(request)
    try:
        series = await asyncio.to_thread(reader.read, query)
    except TooManyContributions as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail={"message": str(exc)}) from exc
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the metrics store did not answer: {exc}"
        ) from exc
    return JSONBytes(
        {
            "series": series,
            "step_s": step_s,
            "resolution": query.resolution,
            "rule": {"id": stored.rule.id, "name": stored.rule.name, "field": stored.rule.field},
            "stat": stat,
            "unit": _unit(stored.rule.unit),
            "from": start_s,
            "to": end_s,
            "truncated": False,
        }
    )


def _unit(hint: str) -> str:
    """The unit values are answered in: durations in ms, sizes in bytes, else as logged."""
    return {"ms": "ms", "s": "ms", "us": "ms", "ns": "ms", "bytes": "bytes"}.get(hint, "")
