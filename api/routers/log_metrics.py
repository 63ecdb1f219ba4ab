"""``/v1/metrics/logs``: log counts and bytes per time step, as the ingest job computed them on the
stream (docs/metrics.md), scoped to the caller's tenant."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from api.deps import Principal, StateDep, TenantQuery, acting_tenant, require
from api.responses import JSONBytes
from api.routers.metric_rules import field_metrics
from api.search.params import resolve_range
from connectors.opensearch.metrics import MetricsQuery, MetricsReader
from core.fieldmetrics import STATS
from core.metrics import GROUP_BY, METRICS, STEPS, MetricsError, parse_step, resolution_for_step
from core.query import QueryError
from schemas.record import Level

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])

MetricsKey = Annotated[Principal, Depends(require("search", admin_token_too=True))]
ListQuery = Annotated[list[str] | None, Query()]

# Per series: a 30-day range at 1m would be 43,200 points, more than any chart draws.
MAX_POINTS = 2000
MAX_SERIES = 100
# Series x points of one answer: OpenSearch refuses an aggregation of more than 65,535 buckets
# (search.max_buckets), so fine steps over long ranges return fewer series (``truncated``).
MAX_BUCKETS = 60_000


def _bad(message: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail={"message": message})


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for value in values or [] for v in value.split(",") if v.strip()))


def _levels(values: list[str] | None) -> tuple[str, ...]:
    levels = tuple(v.upper() for v in _split(values))
    known = {lv.value for lv in Level}
    unknown = [lv for lv in levels if lv not in known]
    if unknown:
        raise _bad(f"unknown level {unknown[0]!r}; use {', '.join(lv.value for lv in Level)}")
    return levels


def _reader(request: Request, state: StateDep) -> MetricsReader:
    reader: MetricsReader | None = getattr(request.app.state, "log_metrics", None)
    if reader is None:
        from connectors.opensearch.connection import connection_options
        from connectors.opensearch.search import client

        settings = state.settings
        reader = MetricsReader(
            client(settings.opensearch_endpoint, **connection_options(settings)),
            settings.opensearch_index_prefix,
        )
        request.app.state.log_metrics = reader
    return reader


ReaderDep = Annotated[MetricsReader, Depends(_reader)]


@router.get("/logs")
async def log_metrics(
    request: Request,
    principal: MetricsKey,
    reader: ReaderDep,
    service: ListQuery = None,
    level: ListQuery = None,
    host: ListQuery = None,
    pattern: Annotated[list[str] | None, Query(description="pattern ids")] = None,
    group_by: Annotated[str | None, Query(description=" | ".join(GROUP_BY))] = None,
    from_: Annotated[str | None, Query(alias="from", description="ISO 8601 or now-24h")] = None,
    to: Annotated[str | None, Query(description="ISO 8601 or now")] = None,
    step: Annotated[str, Query(description=" | ".join(STEPS))] = "1m",
    metric: Annotated[str, Query(description="count (records) or bytes (of their messages)")] = "count",
    tenant: TenantQuery = None,
    rule: Annotated[str | None, Query(description="a metric rule's id or name: its field's stat")] = None,
    stat: Annotated[str | None, Query(description="with rule: " + " | ".join(STATS))] = None,
) -> JSONBytes:
    """Records (or bytes) per step, one series per value of ``group_by``; with ``rule``, a stat of
    the rule's field."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's metrics")
    if rule is None and stat is not None:
        raise _bad("stat is a statistic of a metric rule's field: name the rule with rule=")
    if rule is None and group_by is not None and group_by not in GROUP_BY:
        raise _bad(f"cannot group by {group_by!r}; use one of {', '.join(GROUP_BY)}")
    if metric not in METRICS:
        raise _bad(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    try:
        step_s = parse_step(step)
        start_us, end_us = resolve_range(from_, to, datetime.now(UTC))
    except (MetricsError, QueryError) as exc:
        raise _bad(str(exc)) from exc
    start_s = start_us // 10**6
    start_s -= start_s % step_s
    end_s = -(-end_us // 10**6)
    points = -(-(end_s - start_s) // step_s)
    if points > MAX_POINTS:
        raise _bad(
            f"{points} points of {step} per series is more than {MAX_POINTS}; "
            "use a longer step or a shorter range"
        )
    if rule is not None:
        services, levels = tuple(s.lower() for s in _split(service)), _levels(level)
        return await field_metrics(
            request, tenant_id, rule, stat, group_by, services, levels, start_s, end_s, step_s
        )
    query = MetricsQuery(
        tenant=tenant_id,
        resolution=resolution_for_step(step_s),
        start_s=start_s,
        end_s=end_s,
        step_s=step_s,
        metric=metric,
        group_by=group_by,
        services=tuple(s.lower() for s in _split(service)),
        levels=_levels(level),
        hosts=_split(host),
        patterns=_split(pattern),
        max_series=min(MAX_SERIES, MAX_BUCKETS // (points + 1) - 1) if group_by else MAX_SERIES,
    )
    try:
        answer = await asyncio.to_thread(reader.read, query)
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the metrics store did not answer: {exc}"
        ) from exc
    body: dict[str, Any] = {
        "series": answer.series,
        "step_s": step_s,
        "resolution": query.resolution,
        "metric": metric,
        "from": start_s,
        "to": end_s,
        "truncated": answer.truncated,
    }
    return JSONBytes(body)
