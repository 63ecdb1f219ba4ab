"""Rules filed by tenant and by the services they name, so that a record no rule could match
costs two dictionary lookups: shared by alert rules (:mod:`core.alerts.matching`) and metric
rules (:mod:`core.fieldmetrics`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class TenantServiceIndex(Generic[T]):
    def __init__(self) -> None:
        # tenant -> service -> values naming that service; tenant -> values for every service
        self._by_service: dict[str, dict[str, list[T]]] = {}
        self._any_service: dict[str, list[T]] = {}

    def add(self, tenant: str, services: Sequence[str], value: T) -> None:
        """File ``value`` under each of ``services``, or under every service when there are none."""
        if services:
            per_service = self._by_service.setdefault(tenant, {})
            for service in services:
                per_service.setdefault(service, []).append(value)
        else:
            self._any_service.setdefault(tenant, []).append(value)

    def wants(self, tenant: str, service: str) -> bool:
        """Whether anything is filed for a record of this tenant and service."""
        if tenant in self._any_service:
            return True
        per_service = self._by_service.get(tenant)
        return per_service is not None and service in per_service

    def candidates(self, tenant: str, service: str) -> Sequence[T]:
        """What is filed for every service of ``tenant`` and for ``service``; usually nothing."""
        candidates: Sequence[T] = self._any_service.get(tenant, ())
        per_service = self._by_service.get(tenant)
        if per_service:
            named = per_service.get(service)
            if named:
                candidates = [*candidates, *named]
        return candidates
