"""The local stack's services, in start order."""

from __future__ import annotations

from infra.settings import Settings
from infra.stack.services.base import Service
from infra.stack.services.cassandra import Cassandra
from infra.stack.services.kafka import Kafka
from infra.stack.services.opensearch import OpenSearch
from infra.stack.services.postgres import Postgres
from infra.stack.services.s3 import S3Proxy

SERVICE_TYPES: tuple[type[Service], ...] = (Postgres, Kafka, S3Proxy, OpenSearch, Cassandra)


def all_services(settings: Settings) -> list[Service]:
    return [cls(settings) for cls in SERVICE_TYPES]


__all__ = ["SERVICE_TYPES", "Service", "all_services"]
