"""OTLP/HTTP logs: ``POST /v1/logs`` in JSON or protobuf encoding.

Resource attributes ``service.name`` and ``host.name`` become the record's service and host; the
other resource attributes travel as envelope attributes; severity and trace context map onto the
entry, the log record's attributes become its metadata. The answer follows the OTLP spec: 200 with
``partialSuccess`` when some records were refused; 429/503 with Retry-After are retryable for exporters.
"""

from __future__ import annotations

import base64
import functools
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response, status

from api import metrics
from api.collector.batch import NOT_AN_OBJECT, TOO_DEEP, Outcome, TooManyEntries, check_json_work
from api.collector.encoder import EnvelopeEncoder, request_identity
from api.collector.publish import load_body, off_loop, publish, too_many_entries
from api.deps import IngestKey, StateDep, check_rate
from schemas.record import format_ts
from schemas.rejection import RejectReason

router = APIRouter(tags=["otlp"])

ROUTE = "otlp"
PROTOBUF = "application/x-protobuf"

# OTLP severity numbers come in bands of four per level.
_SEVERITY_BANDS = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"), (24, "FATAL"))


def severity_level(number: int | None, text: str | None) -> str | None:
    if text:
        return text
    if not number:
        return None
    for upper, level in _SEVERITY_BANDS:
        if number <= upper:
            return level
    return "FATAL"


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as a plain JSON value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes_of(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes_of(pairs: Any) -> dict[str, Any]:
    if not isinstance(pairs, list):
        return {}
    return {str(p.get("key")): any_value(p.get("value")) for p in pairs if isinstance(p, dict)}


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _nanos_to_ts(value: Any) -> str | None:
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        return None
    if nanos <= 0:
        return None
    return format_ts(datetime.fromtimestamp(nanos // 1000 / 1_000_000, UTC))


def decode_otlp(
    doc: Any, tenant: str, max_record_bytes: int, request_id: str | None = None, max_entries: int = 0
) -> Outcome:
    """Messages for every log record of an ExportLogsServiceRequest in its JSON form.
    ``request_id`` names the request across retries (see :func:`request_identity`)."""
    out = Outcome(max_record_bytes=max_record_bytes, max_entries=max_entries)
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceLogs", []), list):
        raise ValueError('expected an ExportLogsServiceRequest: {"resourceLogs": [...]}')
    position = 0
    for resource_logs in doc.get("resourceLogs", []):
        resource = attributes_of((resource_logs.get("resource") or {}).get("attributes"))
        service = resource.pop("service.name", None)
        host = resource.pop("host.name", None)
        encoder = EnvelopeEncoder(
            tenant,
            source="otlp",
            attributes={k: _as_text(v) for k, v in resource.items()},
            request_id=request_id,
        )
        scopes = resource_logs.get("scopeLogs") or resource_logs.get("instrumentationLibraryLogs") or []
        for scope_logs in scopes:
            scope = scope_logs.get("scope") or scope_logs.get("instrumentationLibrary") or {}
            for record in scope_logs.get("logRecords", []):
                out.received += 1
                index, position = position, position + 1
                if not isinstance(record, dict):
                    out.reject(index, NOT_AN_OBJECT, "a log record must be an object")
                    continue
                try:
                    body = any_value(record.get("body"))
                    text = None if body is None or body == "" else _as_text(body)
                except (orjson.JSONEncodeError, RecursionError):
                    out.reject(index, TOO_DEEP, "the log record's body nests too deep to encode")
                    continue
                if text is None:
                    out.reject(index, str(RejectReason.EMPTY), "the log record has no body")
                    continue
                entry: dict[str, Any] = {"message": text}
                timestamp = _nanos_to_ts(record.get("timeUnixNano")) or _nanos_to_ts(
                    record.get("observedTimeUnixNano")
                )
                if timestamp:
                    entry["timestamp"] = timestamp
                level = severity_level(record.get("severityNumber"), record.get("severityText"))
                if level:
                    entry["level"] = level
                if record.get("traceId"):
                    entry["traceId"] = record["traceId"]
                if record.get("spanId"):
                    entry["spanId"] = record["spanId"]
                metadata = attributes_of(record.get("attributes"))
                if scope.get("name"):
                    metadata.setdefault("otel.scope.name", scope["name"])
                if metadata:
                    entry["metadata"] = metadata
                if service:
                    entry["service"] = _as_text(service)
                if host:
                    entry["host"] = _as_text(host)
                out.encode(
                    index,
                    functools.partial(
                        encoder.entry,
                        entry,
                        service=_as_text(service) if service else None,
                        host=_as_text(host) if host else None,
                        entry_id=encoder.entry_id(index),
                    ),
                )
    return out


def protobuf_to_json(body: bytes) -> dict[str, Any]:
    """An ExportLogsServiceRequest in protobuf as its OTLP/JSON dict (ids as hex, as OTLP/JSON has them)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    request = logs_service_pb2.ExportLogsServiceRequest()
    request.ParseFromString(body)
    doc: dict[str, Any] = MessageToDict(request, use_integers_for_enums=True)
    # MessageToDict writes bytes fields as base64; OTLP/JSON writes trace and span ids as hex.
    for resource_logs in doc.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for field in ("traceId", "spanId"):
                    if field in record:
                        record[field] = base64.b64decode(record[field]).hex()
    return doc


def _response(protobuf: bool, outcome: Outcome) -> Response:
    partial: dict[str, Any] = {}
    if outcome.rejected:
        first = outcome.errors[0] if outcome.errors else {"detail": ""}
        partial = {
            "rejectedLogRecords": outcome.rejected,
            "errorMessage": f"{outcome.rejected} log record(s) refused; first: {first['detail']}",
        }
    if protobuf:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        answer = logs_service_pb2.ExportLogsServiceResponse()
        if partial:
            answer.partial_success.rejected_log_records = partial["rejectedLogRecords"]
            answer.partial_success.error_message = partial["errorMessage"]
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(
        orjson.dumps({"partialSuccess": partial} if partial else {}), media_type="application/json"
    )


@router.post(
    "/v1/logs",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"resourceLogs": {"type": "array"}}}
                },
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def otlp_logs(request: Request, principal: IngestKey, state: StateDep) -> Response:
    """OTLP/HTTP logs export (JSON or protobuf); 200 once Kafka has every accepted record."""
    started = time.perf_counter()
    body = await load_body(request, state, ROUTE, principal)
    protobuf = request.headers.get("content-type", "").split(";")[0].strip().lower() == PROTOBUF

    def decode() -> Outcome:
        if not protobuf:
            check_json_work(body, state.settings.ingest_max_entries)
        doc = protobuf_to_json(body) if protobuf else orjson.loads(body)
        return decode_otlp(
            doc,
            principal.tenant_id,
            state.settings.ingest_max_record_bytes,
            request_identity(body),
            max_entries=state.settings.ingest_max_entries,
        )

    try:
        outcome = await off_loop(decode)
    except TooManyEntries as exc:
        raise too_many_entries(ROUTE, exc, state, principal) from exc
    except (ValueError, AttributeError, TypeError) as exc:  # DecodeError is a ValueError too
        metrics.REQUESTS_REFUSED.labels(ROUTE, "400").inc()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"not an OTLP logs request: {exc}") from exc
    check_rate(state, principal, outcome.received, ROUTE)
    await publish(state, ROUTE, outcome)
    metrics.LATENCY.labels(ROUTE).observe(time.perf_counter() - started)
    return _response(protobuf, outcome)
