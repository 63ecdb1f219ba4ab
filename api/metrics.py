"""Prometheus metrics of the API (every route, by tenant), the collectors and the search tiers,
served at ``/metrics``.

With several uvicorn workers each process counts its own; set ``PROMETHEUS_MULTIPROC_DIR`` to a
writable folder to have ``/metrics`` add them up (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

ACCEPTED = Counter(
    "strata_ingest_records_accepted_total",
    "Records acknowledged by Kafka and answered as accepted",
    ["route"],
)
REJECTED = Counter(
    "strata_ingest_records_rejected_total", "Records refused by the collector", ["route", "reason"]
)
BYTES = Counter("strata_ingest_bytes_total", "Request body bytes received (as sent, compressed)", ["route"])
LATENCY = Histogram(
    "strata_ingest_request_seconds",
    "Ingest request latency, from the first byte read to the answer",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
KAFKA_ERRORS = Counter("strata_kafka_errors_total", "Kafka producer errors and failed batches", ["reason"])
REQUESTS_REFUSED = Counter(
    "strata_ingest_requests_refused_total", "Whole requests answered with an error", ["route", "status"]
)


HTTP_REQUESTS = Counter(
    "strata_http_requests_total",
    "HTTP requests answered, by route template, method, status code and the caller's tenant",
    ["route", "method", "status", "tenant"],
)
HTTP_SECONDS = Histogram(
    "strata_http_request_seconds",
    "HTTP request latency, from the request to the end of the answer, by route template",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SEARCH_TIER_SECONDS = Histogram(
    "strata_search_tier_seconds",
    "Time one tier took to answer its slice of a search, aggregation or lookup, by outcome",
    ["tier", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Requests before authentication (or refused by it) have no tenant.
NO_TENANT = "-"


class RequestMetrics:
    """ASGI middleware counting every HTTP answer by route template (``/v1/logs/{log_id}``, never
    the raw path, so the label set stays bounded), status and tenant. The tenant is what the
    authentication dependency put in ``request.state.tenant``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            tenant = (scope.get("state") or {}).get("tenant") or NO_TENANT
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(route, method, str(status), tenant).inc()
            HTTP_SECONDS.labels(route, method).observe(time.perf_counter() - started)


def render() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
