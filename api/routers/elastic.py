"""An Elasticsearch-compatible front door: ``/_bulk`` and the few endpoints clients probe on start.

The Elasticsearch outputs of Filebeat, Fluent Bit, Vector and syslog-ng can point at Strata
unchanged. ``index`` and ``create`` actions are accepted; ``update`` and ``delete`` are answered
per item with an error (logs are append-only here). The tenant comes from the key, never from the
index name. Elasticsearch clients send the key as Basic auth (password = key), ``ApiKey`` or Bearer.
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response, status

from api import metrics
from api.collector.batch import Outcome
from api.collector.encoder import EnvelopeEncoder, request_identity
from api.collector.publish import load_body, off_loop, publish
from api.deps import IngestKey, StateDep, check_rate
from api.responses import JSONBytes
from schemas.rejection import RejectReason

router = APIRouter(tags=["elasticsearch"])

ROUTE = "bulk"
# The version a client sees: 8.x makes Vector and Beats use typeless bulk requests.
ES_VERSION = "8.11.0"
# Elasticsearch 7.14+ clients refuse to talk to a server without this header.
ES_HEADERS = {"X-Elastic-Product": "Elasticsearch"}
_DATE_SUFFIX = re.compile(r"[-_.]?\d{4}[-_.]\d{2}[-_.]\d{2}$")


def _es_json(body: Any, status_code: int = 200) -> JSONBytes:
    return JSONBytes(body, status_code=status_code, headers=ES_HEADERS)


def service_of(doc: dict[str, Any], index: str) -> str:
    """The service a _bulk document belongs to: ECS ``service.name`` and common agent fields first,
    else the index name without its date suffix (``app-logs-2025.02.15`` → ``app-logs``)."""
    service = doc.get("service")
    if isinstance(service, dict):
        service = service.get("name")
    if not isinstance(service, str) or not service.strip():
        service = doc.get("service.name") or doc.get("app") or doc.get("program") or doc.get("PROGRAM")
        if not isinstance(service, str) or not service.strip():
            kubernetes = doc.get("kubernetes")
            if isinstance(kubernetes, dict) and isinstance(kubernetes.get("container"), dict):
                service = kubernetes["container"].get("name")
    if isinstance(service, str) and service.strip():
        return service.strip()
    return _DATE_SUFFIX.sub("", index) or index


def host_of(doc: dict[str, Any]) -> str | None:
    host = doc.get("host")
    if isinstance(host, dict):
        host = host.get("name") or host.get("hostname")
    if not isinstance(host, str):
        host = doc.get("hostname") or doc.get("HOST")
    return host.strip() if isinstance(host, str) and host.strip() else None


def decode_bulk(
    body: bytes, encoder: EnvelopeEncoder, *, default_index: str | None, max_record_bytes: int
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Parse a bulk body into messages and one result slot per action, in order.

    Slots of accepted items are completed after Kafka acknowledges them; refused ones already carry
    their error. An action line that is not JSON makes the rest unreadable, as in Elasticsearch.
    """
    out = Outcome(max_record_bytes=max_record_bytes)
    items: list[dict[str, Any]] = []
    lines = iter(body.split(b"\n"))
    for raw_action in lines:
        if not raw_action.strip():
            continue
        position = len(items)
        out.received += 1
        try:
            action_doc = orjson.loads(raw_action)
            (action, meta), *extra = action_doc.items()
            if extra or not isinstance(meta, dict):
                raise ValueError
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            raise BulkFormatError(f"malformed action/metadata line [{position + 1}]") from None
        index = str(meta.get("_index") or default_index or "")
        client_id = meta.get("_id")
        doc_id = str(client_id or uuid.uuid4().hex)
        item: dict[str, Any] = {"_index": index, "_id": doc_id}
        items.append({action: item})
        if action not in ("index", "create", "update", "delete"):
            raise BulkFormatError(f"unknown action [{action}] at line [{position + 1}]")
        if action in ("index", "create", "update"):
            source = next(lines, None)
            if source is None or not source.strip():
                raise BulkFormatError(f"the {action} action at item [{position}] has no document line")
        if action in ("update", "delete"):
            _item_error(
                out,
                item,
                position,
                "action_not_supported",
                f"{action} is not supported: logs are append-only",
            )
            continue
        if not index:
            _item_error(out, item, position, "action_request_validation_exception", "index is missing")
            continue
        assert source is not None
        if len(source) > max_record_bytes:
            _item_error(
                out,
                item,
                position,
                str(RejectReason.TOO_LARGE),
                f"the document is {len(source)} bytes; the limit is {max_record_bytes}",
            )
            continue
        try:
            doc = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            _item_error(
                out, item, position, str(RejectReason.MALFORMED_JSON), f"the document is not JSON: {exc}"
            )
            continue
        if not isinstance(doc, dict) or not doc:
            _item_error(out, item, position, "NOT_AN_OBJECT", "the document must be a non-empty JSON object")
            continue
        # The client's _id names the document across retries, as in Elasticsearch (per index).
        entry_id = f"_id:{index}/{client_id}" if client_id else encoder.entry_id(position)
        message = encoder.entry(
            doc,
            service=service_of(doc, index),
            host=host_of(doc),
            attributes={"index": index},
            entry_id=entry_id,
        )
        if not out.add(position, message):
            error = out.errors[-1] if out.errors and out.errors[-1]["index"] == position else None
            item.update(
                status=400,
                error={
                    "type": str(RejectReason.TOO_LARGE),
                    "reason": error["detail"] if error else "too large",
                },
            )
    return out, items


def _item_error(out: Outcome, item: dict[str, Any], position: int, reason: str, detail: str) -> None:
    out.reject(position, reason, detail)
    item.update(status=400, error={"type": reason, "reason": detail})


class BulkFormatError(ValueError):
    pass


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
            )
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


@router.post("/_bulk", openapi_extra=_BULK_DOC)
async def bulk(request: Request, principal: IngestKey, state: StateDep) -> Response:
    """Elasticsearch bulk API (index and create actions); per-item status as Elasticsearch gives it."""
    return await _bulk(request, principal, state, None)


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
