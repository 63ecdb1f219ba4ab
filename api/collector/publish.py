"""The step every ingest route ends with: hand the messages to Kafka and wait for its acks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastapi import HTTPException, Request, status

from api import metrics
from api.collector.batch import Outcome, TooManyEntries
from api.collector.body import BadBody, BodyTooLarge, UnsupportedEncoding, decompress, read_body
from api.deps import AppState, Principal, check_rate
from connectors.kafka.producer import KafkaUnavailable

log = logging.getLogger(__name__)

# Long enough for a broker restart or a leader election, short enough for agents to keep retrying.
RETRY_AFTER_KAFKA_S = 5

T = TypeVar("T")

# Decompressing and decoding a body is CPU work (16 MiB of small JSON objects takes seconds): done
# on the event loop it would freeze every other request of the worker. A small pool bounds how
# many bodies are expanded at once, so a burst of them also bounds the memory they take.
_DECODE_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-decode")


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` on the decode pool, leaving the event loop free for other requests."""
    return await asyncio.get_running_loop().run_in_executor(_DECODE_POOL, fn, *args)


def too_many_entries(route: str, exc: TooManyEntries, state: AppState, principal: Principal) -> HTTPException:
    """The 413 for a request over the entry cap. The entries counted are spent from the tenant's
    rate all the same: decoding them cost the server as much as accepting them, so a tenant
    sending such requests in a loop is soon answered 429 before its bodies are even read."""
    rate = state.settings.ingest_rate_per_s if principal.rate_per_s is None else principal.rate_per_s
    state.limiter.take(principal.tenant_id, rate, exc.count)
    metrics.REQUESTS_REFUSED.labels(route, "413").inc()
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(exc))


async def load_body(
    request: Request, state: AppState, route: str, principal: Principal | None = None
) -> bytes:
    """The decompressed body, or the 400/413/415 a client can act on. With ``principal``, a
    tenant already over its rate gets its 429 before anything is read or decompressed."""
    limit = state.settings.ingest_max_body_bytes
    if principal is not None:
        check_rate(state, principal, None, route)
    try:
        raw = await read_body(request, limit)
        metrics.BYTES.labels(route).inc(len(raw))
        encoding = request.headers.get("content-encoding")
        if encoding is None or encoding.strip().lower() in ("", "identity"):
            return raw
        return await off_loop(decompress, raw, encoding, limit)
    except BodyTooLarge as exc:
        metrics.REQUESTS_REFUSED.labels(route, "413").inc()
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(exc)) from exc
    except UnsupportedEncoding as exc:
        metrics.REQUESTS_REFUSED.labels(route, "415").inc()
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail=str(exc)) from exc
    except BadBody as exc:
        metrics.REQUESTS_REFUSED.labels(route, "400").inc()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc


async def publish(state: AppState, route: str, outcome: Outcome) -> None:
    """Return once Kafka has every message of ``outcome``; otherwise raise 503 with Retry-After.

    Records are counted as accepted only here, after the acks, so the metrics and the answer agree.
    """
    for reason, count in outcome.rejected_by_reason.items():
        metrics.REJECTED.labels(route, reason).inc(count)
    if not outcome.messages:
        return
    try:
        await state.producer.send(
            state.settings.raw_topic, outcome.messages, timeout=state.settings.kafka_ack_timeout_s
        )
    except KafkaUnavailable as exc:
        metrics.KAFKA_ERRORS.labels("batch_not_acknowledged").inc()
        metrics.REQUESTS_REFUSED.labels(route, "503").inc()
        log.warning("Kafka did not acknowledge a batch of %d: %s", len(outcome.messages), exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=(
                "Kafka did not acknowledge the batch in time, so none of it is reported as accepted; "
                f"retry the whole batch later ({exc})"
            ),
            headers={"Retry-After": str(RETRY_AFTER_KAFKA_S)},
        ) from exc
    metrics.ACCEPTED.labels(route).inc(len(outcome.messages))
