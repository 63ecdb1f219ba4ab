"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from api import metrics
from api.deps import StateDep
from api.responses import JSONBytes
from connectors.kafka.producer import KafkaUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about Kafka or PostgreSQL)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Kafka or PostgreSQL is unreachable"}})
async def readyz(state: StateDep) -> JSONBytes:
    """Kafka (the raw topic) and PostgreSQL both answer: the collector can accept logs."""
    checks: dict[str, str] = {}
    try:
        await asyncio.to_thread(state.producer.check, state.settings.raw_topic, 3.0)
        checks["kafka"] = "ok"
    except KafkaUnavailable as exc:
        checks["kafka"] = f"unavailable: {exc}"
    try:
        async with state.pool.connection(timeout=3) as conn:
            await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means not ready; the message says which
        checks["postgres"] = f"unavailable: {exc}"
    ready = all(value == "ok" for value in checks.values())
    return JSONBytes(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
