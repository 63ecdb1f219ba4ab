"""Retention across the three tiers: each tier's store built from settings, the tenants' policies
and the deletion log in PostgreSQL, and :func:`core.retention.sweep` between them.

Used by ``strata retention apply``, ``POST /v1/retention/apply`` and the API's daily sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from connectors.postgres import retention as store
from core.retention import Deletion, Override, Retention, SweepReport, TierStore, resolve, sweep
from infra.settings import Settings

# Any constant works; it only has to be the same for every process that sweeps this database.
_SWEEP_LOCK_ID = 0x5752A7B


def defaults(settings: Settings) -> Retention:
    return Retention(
        settings.hot_days,
        settings.warm_days,
        settings.archive_days,
        settings.metrics_1m_days,
        settings.metrics_1h_days,
        settings.metrics_1d_days,
    )


async def policies(conn: psycopg.AsyncConnection[Any], settings: Settings) -> dict[str, Retention]:
    """The retention of every tenant that overrides the defaults."""
    base = defaults(settings)
    return {tenant: resolve(base, o) for tenant, o in (await store.overrides(conn)).items()}


async def tenant_retention(conn: psycopg.AsyncConnection[Any], settings: Settings, tenant: str) -> Retention:
    override: Override | None = (await store.overrides(conn)).get(tenant)
    return resolve(defaults(settings), override)


def _hot(settings: Settings) -> TierStore:
    from connectors.opensearch.connection import connection_options
    from connectors.opensearch.retention import HotStore
    from connectors.opensearch.search import client

    return HotStore(
        client(settings.opensearch_endpoint, timeout_s=60.0, **connection_options(settings)),
        settings.opensearch_index_prefix,
        settings.hot_days,
    )


def _warm(settings: Settings) -> TierStore:
    from connectors.cassandra.connection import cluster_options
    from connectors.cassandra.retention import WarmStore
    from connectors.cassandra.search import connect

    session = connect(settings.cassandra_contact_points, settings.cassandra_port, **cluster_options(settings))
    return WarmStore(session, settings.cassandra_keyspace, settings.cassandra_table, settings.warm_days)


def _cold(settings: Settings) -> TierStore:
    from connectors.s3.client import s3_client
    from connectors.s3.retention import ArchiveStore

    return ArchiveStore(s3_client(settings), settings.s3_bucket, settings.archive_prefix)


def _metrics(settings: Settings) -> TierStore:
    from connectors.opensearch.connection import connection_options
    from connectors.opensearch.metrics import MetricsStore
    from connectors.opensearch.search import client

    return MetricsStore(
        client(settings.opensearch_endpoint, timeout_s=60.0, **connection_options(settings)),
        settings.opensearch_index_prefix,
    )


def _field_metrics(settings: Settings) -> TierStore:
    from connectors.opensearch.connection import connection_options
    from connectors.opensearch.field_metrics import FieldMetricsStore
    from connectors.opensearch.search import client

    return FieldMetricsStore(
        client(settings.opensearch_endpoint, timeout_s=60.0, **connection_options(settings)),
        settings.opensearch_index_prefix,
    )


STORES: tuple[Callable[[Settings], TierStore], ...] = (_hot, _warm, _cold, _metrics, _field_metrics)


async def apply(
    settings: Settings,
    *,
    dry_run: bool,
    tenant: str | None = None,
    today: date | None = None,
    stores: tuple[Callable[[Settings], TierStore], ...] = STORES,
) -> SweepReport:
    """Sweep every tier (``tenant``: only that tenant's data), logging each deletion in PostgreSQL
    as it happens; a tier whose store cannot be reached is reported and the others still run."""
    loop = asyncio.get_running_loop()
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
        tenants = await policies(conn, settings)

        def record(deletion: Deletion, dry: bool) -> None:
            asyncio.run_coroutine_threadsafe(store.log_deletion(conn, deletion, dry), loop).result()

        def run() -> SweepReport:
            built: list[TierStore] = []
            errors = []
            for make in stores:
                try:
                    built.append(make(settings))
                except Exception as exc:
                    errors.append(f"{make.__name__.strip('_')}: cannot connect ({type(exc).__name__}: {exc})")
            try:
                report = sweep(
                    built,
                    today or datetime.now(UTC).date(),
                    defaults(settings),
                    tenants,
                    dry_run=dry_run,
                    record=record,
                    only_tenant=tenant,
                )
            finally:
                for s in built:
                    session = getattr(s, "session", None)
                    if session is not None:
                        session.cluster.shutdown()
            report.errors[:0] = errors
            return report

        return await asyncio.to_thread(run)


async def scheduled(settings: Settings, stop: asyncio.Event) -> None:
    """Sweep every ``retention_interval_s``, one process at a time (an advisory lock: several API
    workers or replicas share the schedule)."""
    import logging

    log = logging.getLogger("strata.retention")
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), settings.retention_interval_s)
            return
        except TimeoutError:
            pass
        try:
            async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as lock:
                row = await (
                    await lock.execute("SELECT pg_try_advisory_lock(%s)", (_SWEEP_LOCK_ID,))
                ).fetchone()
                if not row or not row[0]:
                    continue
                report = await apply(settings, dry_run=False)
            for d in report.deletions:
                log.info("retention deleted %s %s (%s)", d.tier, d.target, d.reason)
            for error in report.errors:
                log.error("retention sweep: %s", error)
        except Exception:
            log.exception("retention sweep failed; it runs again in %s s", settings.retention_interval_s)
