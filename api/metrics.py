"""Prometheus metrics of the collectors, served at ``/metrics``.

With several uvicorn workers each process counts its own; set ``PROMETHEUS_MULTIPROC_DIR`` to a
writable folder to have ``/metrics`` add them up (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os

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


def render() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
