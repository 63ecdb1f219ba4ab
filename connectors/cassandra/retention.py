"""Retention in the warm tier. Every row carries a TTL of what was left of the warm window when it
was written, so the window needs no sweep; a tenant whose warm retention is shorter has its
partitions of older days deleted, found through the ``(tenant, day) → service`` table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date
from typing import Any

from core.retention import Deletion, Retention, partitions_past
from core.tiers import WARM
from schemas.projections import CQL_SERVICES_SUFFIX


class WarmStore:
    tier = WARM

    def __init__(self, session: Any, keyspace: str, table: str, window_days: int) -> None:
        self.session = session
        self.keyspace = keyspace
        self.table = table
        self.window_days = window_days

    def _services(self) -> dict[tuple[str, str], list[str]]:
        rows = self.session.execute(
            f'SELECT "tenant", "day", "service" FROM {self.keyspace}.{self.table}{CQL_SERVICES_SUFFIX}'
        )
        out: dict[tuple[str, str], list[str]] = defaultdict(list)
        for row in rows:  # the session reads rows as dicts (connectors.cassandra.search.connect)
            out[(row["tenant"], row["day"])].append(row["service"])
        return out

    def plan(self, today: date, defaults: Retention, tenants: Mapping[str, Retention]) -> list[Deletion]:
        shorter = {t: r.warm_days for t, r in tenants.items() if r.warm_days < self.window_days}
        if not shorter:
            return []
        services = self._services()
        candidates = [key for key in services if key[0] in shorter]
        return [
            Deletion(d.tier, d.target, d.reason, d.tenant, records=None)
            for d in partitions_past(candidates, today, shorter.__getitem__, WARM)
        ]

    def delete(self, deletion: Deletion) -> Deletion:
        tenant, day = deletion.target.split("/", 1)
        services = self._services().get((tenant, day), [])
        for service in services:
            self.session.execute(
                f"DELETE FROM {self.keyspace}.{self.table}"
                ' WHERE "tenant" = %s AND "service" = %s AND "day" = %s',
                (tenant, service, day),
            )
        self.session.execute(
            f"DELETE FROM {self.keyspace}.{self.table}{CQL_SERVICES_SUFFIX}"
            ' WHERE "tenant" = %s AND "day" = %s',
            (tenant, day),
        )
        return Deletion(
            deletion.tier, f"{deletion.target} ({len(services)} services)", deletion.reason, tenant
        )
