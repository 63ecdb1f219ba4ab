"""``/v1/logs/search``, ``/histogram``, ``/top``, ``/{log_id}`` and ``/{log_id}/context``: one query
over the hot, warm and cold tiers, always scoped to the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from api.deps import EngineDep, Principal, require
from api.responses import JSONBytes
from api.search.engine import SearchEngine, SearchResult, TierReport
from api.search.params import Cursor, Filters, duration_s, resolve_range
from core.query import Node, Position, QueryError, Term, and_all
from core.records.mining import pattern_id_of
from schemas.record import Record, format_ts, from_micros, micros, parse_ts

router = APIRouter(prefix="/v1/logs", tags=["search"])

SearchKey = Annotated[Principal, Depends(require("search"))]

_HISTOGRAM_STEPS_S = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
_MAX_BUCKETS = 2000
_TOP_FIELDS = {
    "service": "service",
    "host": "host",
    "level": "level",
    "pattern": "pattern",
    "patterns": "pattern",
    "pattern_id": "pattern_id",
    "message": "message",
    "messages": "message",
    "environment": "environment",
    "region": "region",
    "source_format": "source_format",
    "trace_id": "trace_id",
}
_CONTEXT_SPAN = timedelta(days=1)


def _bad(exc: QueryError) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail={"message": str(exc), "position": exc.position})


class SearchBody(BaseModel):
    """The JSON form of a search; the same fields as the query string."""

    q: str = ""
    service: str | list[str] | None = None
    level: str | list[str] | None = Field(None, description="ERROR, [WARN, ERROR], or a minimum: >=WARN")
    host: str | list[str] | None = None
    trace_id: str | list[str] | None = None
    from_: str | None = Field(
        None, alias="from", description="ISO 8601 or relative (now-15m); default 24 h ago"
    )
    to: str | None = Field(None, description="ISO 8601 or relative; default now")
    limit: int = Field(100, ge=1)
    cursor: str | None = None
    order: Literal["desc", "asc"] = "desc"

    model_config = {"populate_by_name": True}


def _listify(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _levels_from_request(request: Request, level: list[str] | None) -> tuple[str, ...]:
    # `?level>=WARN` arrives as the parameter "level>" with the value "WARN"
    out = list(level or [])
    for key, prefix in (("level>", ">="), ("level<", "<="), ("level>=", ">="), ("level<=", "<=")):
        for value in request.query_params.getlist(key):
            out.append(prefix + value.lstrip("="))
    return tuple(out)


def record_json(record: Record) -> dict[str, Any]:
    return record.to_dict()


def _tiers_json(reports: list[TierReport]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in reports]


async def run_search(
    engine: SearchEngine, tenant: str, body: SearchBody, levels: tuple[str, ...]
) -> dict[str, Any]:
    settings = engine.settings
    filters = Filters(
        q=body.q or "",
        service=_listify(body.service),
        level=levels,
        host=_listify(body.host),
        trace_id=_listify(body.trace_id),
    )
    limit = min(body.limit, settings.search_max_limit)
    try:
        ast = filters.ast()
        after: Position | None = None
        order: str = body.order
        if body.cursor:
            cursor = Cursor.decode(body.cursor)
            if cursor.fingerprint != filters.fingerprint():
                raise QueryError("the cursor belongs to a different query; start again without it")
            start_us, end_us, after, order = cursor.start_us, cursor.end_us, cursor.after, cursor.order
        else:
            start_us, end_us = resolve_range(body.from_, body.to, datetime.now(UTC))
    except QueryError as exc:
        raise _bad(exc) from exc
    result = await engine.search(tenant, ast, start_us, end_us, order=order, limit=limit, after=after)
    return search_json(result, order, start_us, end_us, filters)


def search_json(
    result: SearchResult, order: str, start_us: int, end_us: int, filters: Filters
) -> dict[str, Any]:
    cursor = None
    if result.next_after is not None:
        cursor = Cursor(result.next_after, order, start_us, end_us, filters.fingerprint()).encode()
    notes = [n for r in result.tiers for n in r.notes]
    out: dict[str, Any] = {
        "total": result.total,
        "total_is_exact": result.total_is_exact,
        "logs": [record_json(r) for r in result.logs],
        "cursor": cursor,
        "tiers": _tiers_json(result.tiers),
        "took_ms": round(result.took_ms, 1),
        "from": format_ts(from_micros(start_us)),
        "to": format_ts(from_micros(end_us - 1)),
        "order": order,
    }
    if notes:
        out["notes"] = notes
    return out


_SEARCH_DOC = (
    "Search the caller's logs across the hot (OpenSearch), warm (Cassandra) and cold (Parquet) "
    "tiers. `q` is Strata's query language (see docs/search.md); the other parameters are filters "
    "joined with AND. Page with the returned `cursor`."
)


@router.get("/search", summary="Search logs", description=_SEARCH_DOC)
async def search_get(
    request: Request,
    principal: SearchKey,
    engine: EngineDep,
    q: Annotated[str, Query(description='e.g. payment AND (timeout OR "connection reset")')] = "",
    service: Annotated[list[str] | None, Query()] = None,
    level: Annotated[list[str] | None, Query(description="ERROR, WARN,ERROR or >=WARN")] = None,
    host: Annotated[list[str] | None, Query()] = None,
    trace_id: Annotated[list[str] | None, Query()] = None,
    from_: Annotated[str | None, Query(alias="from", description="ISO 8601 or now-15m")] = None,
    to: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
    order: Literal["desc", "asc"] = "desc",
) -> JSONBytes:
    """Search logs (query string form)."""
    body = SearchBody.model_validate(
        {
            "q": q,
            "service": service,
            "level": level,
            "host": host,
            "trace_id": trace_id,
            "from": from_,
            "to": to,
            "limit": limit,
            "cursor": cursor,
            "order": order,
        }
    )
    return JSONBytes(
        await run_search(engine, principal.tenant_id, body, _levels_from_request(request, level))
    )


@router.post("/search", summary="Search logs (JSON body)", description=_SEARCH_DOC)
async def search_post(principal: SearchKey, engine: EngineDep, body: SearchBody) -> JSONBytes:
    """Search logs (JSON body form)."""
    return JSONBytes(await run_search(engine, principal.tenant_id, body, _listify(body.level)))


ListQuery = Annotated[list[str] | None, Query()]


@dataclass
class RangeFilters:
    """The filters and time range the aggregations take from the query string."""

    request: Request
    q: str = ""
    service: ListQuery = None
    level: ListQuery = None
    host: ListQuery = None
    trace_id: ListQuery = None
    from_: Annotated[str | None, Query(alias="from")] = None
    to: str | None = None

    def resolve(self) -> tuple[Node, int, int]:
        """(query AST, start µs, end µs), or 400 with what is wrong."""
        filters = Filters(
            q=self.q,
            service=tuple(self.service or ()),
            level=_levels_from_request(self.request, self.level),
            host=tuple(self.host or ()),
            trace_id=tuple(self.trace_id or ()),
        )
        try:
            ast = filters.ast()
            start_us, end_us = resolve_range(self.from_, self.to, datetime.now(UTC))
        except QueryError as exc:
            raise _bad(exc) from exc
        return ast, start_us, end_us


RangeFiltersDep = Annotated[RangeFilters, Depends()]


def _interval_us(interval: str, start_us: int, end_us: int) -> int:
    span_s = max((end_us - start_us) / 1e6, 1)
    if interval == "auto":
        for step in _HISTOGRAM_STEPS_S:
            if span_s / step <= 120:
                return step * 10**6
        return _HISTOGRAM_STEPS_S[-1] * 10**6
    try:
        seconds = duration_s(interval)
    except QueryError as exc:
        raise _bad(exc) from exc
    if seconds < 1 or span_s / seconds > _MAX_BUCKETS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail={
                "message": f"interval {interval!r} makes more than {_MAX_BUCKETS} buckets; use a longer one"
            },
        )
    return seconds * 10**6


@router.get("/histogram")
async def histogram(
    principal: SearchKey,
    engine: EngineDep,
    filters: RangeFiltersDep,
    interval: Annotated[str, Query(description="auto, or a duration: 30s, 5m, 1h, 1d")] = "auto",
) -> JSONBytes:
    """Counts of matching logs per time interval, split by level (every bucket of the range)."""
    ast, start_us, end_us = filters.resolve()
    step = _interval_us(interval, start_us, end_us)
    counts, exact, reports = await engine.histogram(principal.tenant_id, ast, start_us, end_us, step)
    by_bucket: dict[int, dict[str, int]] = {}
    for (bucket, lvl), n in counts.items():
        by_bucket.setdefault(bucket, {})[lvl] = by_bucket.get(bucket, {}).get(lvl, 0) + n
    buckets = []
    b = start_us - start_us % step
    while b < end_us:
        levels = by_bucket.get(b, {})
        buckets.append({"start": format_ts(from_micros(b)), "total": sum(levels.values()), "levels": levels})
        b += step
    return JSONBytes(
        {
            "interval_s": step // 10**6,
            "buckets": buckets,
            "total": sum(counts.values()),
            "total_is_exact": exact,
            "tiers": _tiers_json(reports),
        }
    )


@router.get("/top")
async def top(
    principal: SearchKey,
    engine: EngineDep,
    filters: RangeFiltersDep,
    by: Annotated[str, Query(description="service, host, level, pattern, message, ...")] = "service",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> JSONBytes:
    """The most frequent services, hosts, levels, patterns (each with its ``pattern_id``) or messages
    among matching logs."""
    field_name = _TOP_FIELDS.get(by)
    if field_name is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail={"message": f"cannot rank by {by!r}; use one of {sorted(_TOP_FIELDS)}"},
        )
    ast, start_us, end_us = filters.resolve()
    ranked, exact, reports = await engine.top(principal.tenant_id, ast, start_us, end_us, field_name, limit)
    items: list[dict[str, Any]] = [{"value": v, "count": n} for v, n in ranked]
    if field_name == "pattern":
        # A pattern's id is the hash of its text (core.records.mining): the id metrics and alerts
        # name it by, given beside the text people read.
        for item in items:
            item["pattern_id"] = pattern_id_of(item["value"])
    return JSONBytes(
        {
            "by": field_name,
            "items": items,
            "counts_are_exact": exact,
            "tiers": _tiers_json(reports),
        }
    )


async def _find(
    engine: SearchEngine, tenant: str, log_id: str, timestamp: str | None
) -> tuple[Record, list[TierReport]]:
    at_us = None
    if timestamp:
        try:
            at_us = micros(parse_ts(timestamp))
        except ValueError:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, detail={"message": "timestamp is not ISO 8601"}
            ) from None
    record, reports = await engine.get(tenant, log_id, at_us)
    if record is None:
        failed = [r.tier for r in reports if r.status != "ok"]
        detail = f"no log {log_id!r}"
        if failed:
            detail += f" in the tiers that answered ({', '.join(failed)} did not)"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail={"message": detail, "tiers": _tiers_json(reports)}
        )
    return record, reports


@router.get("/{log_id}")
async def get_log(
    principal: SearchKey,
    engine: EngineDep,
    log_id: str,
    timestamp: Annotated[
        str | None, Query(description="the record's time, if known: finds warm and archived logs fast")
    ] = None,
) -> JSONBytes:
    """One log by its id."""
    record, reports = await _find(engine, principal.tenant_id, log_id, timestamp)
    return JSONBytes({"log": record_json(record), "tiers": _tiers_json(reports)})


@router.get("/{log_id}/context")
async def context(
    principal: SearchKey,
    engine: EngineDep,
    log_id: str,
    before: Annotated[int, Query(ge=0, le=1000)] = 10,
    after: Annotated[int, Query(ge=0, le=1000)] = 10,
    timestamp: str | None = None,
) -> JSONBytes:
    """The lines logged just before and after one log by the same service on the same host."""
    tenant = principal.tenant_id
    record, reports = await _find(engine, tenant, log_id, timestamp)
    scope: Node = and_all(Term("service", record.service), Term("host", record.host))
    at = Position(micros(record.timestamp), record.log_id)
    span = int(_CONTEXT_SPAN.total_seconds()) * 10**6
    older, newer = [], []
    tiers: list[TierReport] = list(reports)
    if before:
        res = await engine.search(
            tenant, scope, at.ts_us - span, at.ts_us + 1, order="desc", limit=before, after=at
        )
        older = res.logs
        tiers += res.tiers
    if after:
        res = await engine.search(
            tenant, scope, at.ts_us, at.ts_us + span, order="asc", limit=after, after=at
        )
        newer = res.logs
        tiers += res.tiers
    return JSONBytes(
        {
            "log": record_json(record),
            "before": [record_json(r) for r in reversed(older)],  # oldest first, as a file reads
            "after": [record_json(r) for r in newer],
            "tiers": _tiers_json(tiers),
        }
    )
