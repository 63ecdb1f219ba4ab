"""``POST /v1/logs/ingest``: batches of JSON entries, NDJSON or raw lines."""

from __future__ import annotations

import functools
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status

from api import metrics
from api.collector.batch import PayloadError, TooManyEntries, decode_json_batch
from api.collector.encoder import MAX_IDEMPOTENCY_KEY_CHARS, EnvelopeEncoder, request_identity
from api.collector.publish import load_body, off_loop, publish, too_many_entries
from api.deps import IngestKey, StateDep, check_rate
from api.responses import JSONBytes

router = APIRouter(prefix="/v1/logs", tags=["ingest"])

ROUTE = "ingest"

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["logs"],
                            "properties": {
                                "service": {"type": "string"},
                                "host": {"type": "string"},
                                "logs": {
                                    "type": "array",
                                    "items": {
                                        "oneOf": [
                                            {
                                                "type": "object",
                                                "properties": {
                                                    "timestamp": {"type": "string"},
                                                    "level": {"type": "string"},
                                                    "message": {"type": "string"},
                                                    "traceId": {"type": "string"},
                                                    "metadata": {"type": "object"},
                                                },
                                            },
                                            {"type": "string", "description": "a raw line to parse"},
                                        ]
                                    },
                                },
                            },
                        },
                        {"type": "array", "items": {"type": "object"}},
                    ]
                },
                "example": {
                    "service": "payment-service",
                    "logs": [
                        {
                            "timestamp": "2025-02-15T12:00:00.123Z",
                            "level": "ERROR",
                            "message": "Payment failed",
                            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "metadata": {"orderId": "A-1"},
                        }
                    ],
                },
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/ingest",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=_BODY_DOC,
    responses={
        401: {"description": "no or unknown API key"},
        403: {"description": "revoked key or key without the ingest scope"},
        413: {"description": "body over the size limit"},
        429: {"description": "tenant over its rate; see Retry-After"},
        503: {"description": "Kafka did not acknowledge in time; nothing was accepted; see Retry-After"},
    },
)
async def ingest(
    request: Request,
    principal: IngestKey,
    state: StateDep,
    service: Annotated[str | None, Query(description="service of entries that name none")] = None,
    format: Annotated[
        str | None, Query(description="parser hint for raw lines: auto, json, syslog, …")
    ] = None,
    x_strata_service: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=MAX_IDEMPOTENCY_KEY_CHARS,
            description="names the batch across retries: entries without a timestamp keep their "
            "log_id when the batch is resent with the same key (default: a hash of the body)",
        ),
    ] = None,
) -> JSONBytes:
    """Accept a batch; answers 202 only once Kafka has acknowledged every accepted entry."""
    started = time.perf_counter()
    body = await load_body(request, state, ROUTE, principal)
    encoder = EnvelopeEncoder(
        principal.tenant_id,
        source="http",
        format=format,
        request_id=request_identity(body, idempotency_key),
    )
    try:
        outcome = await off_loop(
            functools.partial(
                decode_json_batch,
                body,
                encoder,
                max_record_bytes=state.settings.ingest_max_record_bytes,
                default_service=service or x_strata_service,
                content_type=request.headers.get("content-type", "application/json"),
                max_entries=state.settings.ingest_max_entries,
            )
        )
    except TooManyEntries as exc:
        raise too_many_entries(ROUTE, exc, state, principal) from exc
    except PayloadError as exc:
        metrics.REQUESTS_REFUSED.labels(ROUTE, "400").inc()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    check_rate(state, principal, outcome.received, ROUTE)
    await publish(state, ROUTE, outcome)
    metrics.LATENCY.labels(ROUTE).observe(time.perf_counter() - started)
    return JSONBytes(outcome.response(uuid.uuid4().hex), status_code=status.HTTP_202_ACCEPTED)
