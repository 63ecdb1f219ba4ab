"""An Elasticsearch-compatible front door: ``/_bulk`` and the few endpoints clients probe on start.

The Elasticsearch outputs of Filebeat, Fluent Bit, Vector and syslog-ng can point at Strata
unchanged. ``index`` and ``create`` actions are accepted; ``update`` and ``delete`` are answered
per item with an error (logs are append-only here). The tenant comes from the key, never from the
index name. Elasticsearch clients send the key as Basic auth (password = key), ``ApiKey`` or Bearer.
"""

from __future__ import annotations

import functools
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status

from api import metrics
from api.collector.batch import TooManyEntries
from api.collector.bulk import BulkFormatError, decode_bulk
from api.collector.encoder import EnvelopeEncoder, request_identity
from api.collector.publish import load_body, off_loop, publish, too_many_entries
from api.deps import IngestKey, StateDep, check_rate
from api.responses import JSONBytes

router = APIRouter(tags=["elasticsearch"])

ROUTE = "bulk"
# The version a client sees: 8.x makes Vector and Beats use typeless bulk requests.
ES_VERSION = "8.11.0"
# Elasticsearch 7.14+ clients refuse to talk to a server without this header.
ES_HEADERS = {"X-Elastic-Product": "Elasticsearch"}


def _es_json(body: Any, status_code: int = 200) -> JSONBytes:
    return JSONBytes(body, status_code=status_code, headers=ES_HEADERS)


async def _bulk(request: Request, principal: IngestKey, state: StateDep, index: str | None) -> Response:
    started = time.perf_counter()
    body = await load_body(request, state, ROUTE, principal)
    encoder = EnvelopeEncoder(principal.tenant_id, source="bulk", request_id=request_identity(body))
    try:
        outcome, items = await off_loop(
            functools.partial(
                decode_bulk,
                body,
                encoder,
                default_index=index,
                max_record_bytes=state.settings.ingest_max_record_bytes,
                max_entries=state.settings.ingest_max_entries,
            )
        )
    except TooManyEntries as exc:
        too_many_entries(ROUTE, exc, state, principal)  # spends the tenant's rate, counts the refusal
        return _es_json(
            {"error": {"type": "illegal_argument_exception", "reason": str(exc)}, "status": 413},
            status.HTTP_413_CONTENT_TOO_LARGE,
        )
    except BulkFormatError as exc:
        metrics.REQUESTS_REFUSED.labels(ROUTE, "400").inc()
        return _es_json(
            {
                "error": {"type": "illegal_argument_exception", "reason": str(exc)},
                "status": 400,
            },
            status.HTTP_400_BAD_REQUEST,
        )
    check_rate(state, principal, outcome.received, ROUTE)
    await publish(state, ROUTE, outcome)
    for position in outcome.indexes:
        action_result = next(iter(items[position].values()))
        action_result.update(
            _version=1,
            result="created",
            status=201,
            _shards={"total": 1, "successful": 1, "failed": 0},
            _seq_no=0,
            _primary_term=1,
        )
    metrics.LATENCY.labels(ROUTE).observe(time.perf_counter() - started)
    return _es_json(
        {
            "took": int((time.perf_counter() - started) * 1000),
            "errors": outcome.rejected > 0,
            "items": items,
        }
    )


_BULK_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": (
                    '{"create":{"_index":"app-logs"}}\n{"@timestamp":"2025-02-15T12:00:00Z","message":"hi"}\n'
                ),
            }
        },
    }
}


# Elasticsearch takes both; elasticsearch-py's helpers.bulk sends PUT.
@router.put("/_bulk", openapi_extra=_BULK_DOC)
@router.post("/_bulk", openapi_extra=_BULK_DOC)
async def bulk(request: Request, principal: IngestKey, state: StateDep) -> Response:
    """Elasticsearch bulk API (index and create actions); per-item status as Elasticsearch gives it."""
    return await _bulk(request, principal, state, None)


@router.put("/{index}/_bulk", openapi_extra=_BULK_DOC)
@router.post("/{index}/_bulk", openapi_extra=_BULK_DOC)
async def bulk_index(
    request: Request, principal: IngestKey, state: StateDep, index: Annotated[str, Path()]
) -> Response:
    """Bulk API with a default index for actions that name none."""
    return await _bulk(request, principal, state, index)


# What clients probe before sending: version, license, templates, health. All answered statically.


def _info() -> dict[str, Any]:
    return {
        "name": "strata",
        "cluster_name": "strata",
        "cluster_uuid": "strata-collector",
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "tar",
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


@router.get("/", include_in_schema=True)
async def info() -> Response:
    """Elasticsearch-style cluster info, for clients that check the version on start."""
    return _es_json(_info())


@router.head("/", include_in_schema=False)
async def info_head() -> Response:
    return Response(status_code=200, headers=ES_HEADERS)


@router.get("/_cluster/health", include_in_schema=False)
async def cluster_health() -> Response:
    return _es_json({"cluster_name": "strata", "status": "green", "number_of_nodes": 1, "timed_out": False})


@router.get("/_license", include_in_schema=False)
async def license_info() -> Response:
    return _es_json({"license": {"status": "active", "type": "basic", "uid": "strata"}})


@router.get("/_xpack", include_in_schema=False)
async def xpack() -> Response:
    return _es_json({"build": {}, "license": {"status": "active", "type": "basic"}, "features": {}})


@router.api_route("/_refresh", methods=["GET", "POST"], include_in_schema=False)
@router.api_route("/{index}/_refresh", methods=["GET", "POST"], include_in_schema=False)
async def refresh() -> Response:
    """Answered as Elasticsearch does (pino-elasticsearch refreshes when its stream ends): a record
    Strata acknowledged is already durable, and searchable as soon as the ingest job indexes it."""
    return _es_json({"_shards": {"total": 1, "successful": 1, "failed": 0}})


@router.api_route("/_index_template/{name}", methods=["GET", "HEAD", "PUT"], include_in_schema=False)
@router.api_route("/_template/{name}", methods=["GET", "HEAD", "PUT"], include_in_schema=False)
@router.api_route("/_ilm/policy/{name}", methods=["GET", "HEAD", "PUT"], include_in_schema=False)
async def accept_setup(request: Request, name: str) -> Response:
    """Template and lifecycle setup: acknowledged and ignored (Strata owns its storage layout)."""
    if request.method == "HEAD":
        return Response(status_code=200, headers=ES_HEADERS)
    if request.method == "GET":
        return _es_json({name: {}})
    return _es_json({"acknowledged": True})
