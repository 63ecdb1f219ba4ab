"""Records and rules for the alert unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from core.alerts.rules import Rule
from schemas.record import Level, Record

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # a whole hour: windows start on it
_ids = itertools.count()


def record(
    at_s: float,
    *,
    tenant: str = "acme",
    service: str = "payment-service",
    level: str = "ERROR",
    host: str = "web-1",
    message: str = "payment failed: card declined",
    attributes: dict[str, str] | None = None,
    pattern_id: str | None = None,
) -> Record:
    ts = T0 + timedelta(seconds=at_s)
    return Record(
        log_id=f"{next(_ids):032x}",
        tenant=tenant,
        timestamp=ts,
        ingested_at=ts,
        level=Level(level),
        service=service,
        host=host,
        environment="prod",
        region=None,
        message=message,
        trace_id=None,
        span_id=None,
        attributes=attributes or {},
        pattern_id=pattern_id,
        pattern=None if pattern_id is None else f"template {pattern_id}",
    )


# The seeds' example: more than 100 ERRORs from payment-service in 5 minutes.
PAYMENT_ERRORS: dict[str, Any] = {
    "name": "payment errors",
    "filter": {"services": ["payment-service"], "levels": ["ERROR"]},
    "window": "5m",
    "slide": "1m",
    "comparison": ">",
    "threshold": 100,
}


def rule(**spec: Any) -> Rule:
    base: dict[str, Any] = {"id": "r1", "tenant": "acme", **PAYMENT_ERRORS, "cooldown": 0}
    base.update(spec)
    return Rule.model_validate(base)


def ms(at_s: float) -> int:
    return int((T0 + timedelta(seconds=at_s)).timestamp() * 1000)
