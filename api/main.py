"""The Strata API: collectors (ingest, _bulk, OTLP, uploads), search, alerts, tenants and keys, the
web app (/ui), health.

Run it with ``strata serve``; uvicorn imports :func:`create_app` as a factory, so each worker
process reads the settings and opens its own Kafka producer and PostgreSQL pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.collector.ratelimit import RateLimiter
from api.deps import AppState, close_search
from api.routers import (
    alerts,
    audit,
    dashboards,
    elastic,
    health,
    ingest,
    otlp,
    retention,
    search,
    tail,
    tenants,
    upload,
    web,
)
from connectors.kafka.producer import Producer, producer_config
from connectors.postgres.migrate import migrate
from connectors.postgres.pool import async_pool, postgres_retriable
from connectors.retry import retry_until
from infra.settings import Settings, get_settings

log = logging.getLogger("strata.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application, configured by ``settings`` (the environment's when omitted)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            # PostgreSQL may have started moments ago (a first run): wait for it, bounded.
            applied = await asyncio.to_thread(
                retry_until,
                lambda: migrate(settings.postgres_dsn),
                what="PostgreSQL",
                retriable=postgres_retriable,
                wait_s=settings.service_wait_s,
            )
        except Exception as exc:
            where = settings.postgres_dsn.split(" password=")[0]
            raise RuntimeError(f"cannot prepare the PostgreSQL schema at {where}: {exc}") from exc
        if applied:
            log.info("applied PostgreSQL migrations %s", ", ".join(applied))
        pool = async_pool(settings.postgres_dsn)
        await pool.open()
        from api import metrics  # imported here so a metrics-less tool importing api.main stays light

        producer = Producer(
            producer_config(settings),
            on_error=lambda reason: metrics.KAFKA_ERRORS.labels(reason).inc(),
        ).start()
        state = AppState(
            settings=settings,
            pool=pool,
            producer=producer,
            limiter=RateLimiter(settings.ingest_rate_burst_s),
            auth_cache={},
            background=set(),
        )
        app.state.strata = state
        stop_sweeps = asyncio.Event()
        if settings.retention_interval_s > 0:
            from connectors.retention import scheduled

            sweeps = asyncio.create_task(scheduled(settings, stop_sweeps), name="retention-sweeps")
            state.background.add(sweeps)
            sweeps.add_done_callback(state.background.discard)
        if settings.archive_compact_interval_s > 0:
            from connectors.s3.compaction import scheduled as compactions

            compacting = asyncio.create_task(compactions(settings, stop_sweeps), name="archive-compaction")
            state.background.add(compacting)
            compacting.add_done_callback(state.background.discard)
        try:
            yield
        finally:
            stop_sweeps.set()
            for task in list(state.background):
                task.cancel()
            if state.background:
                await asyncio.gather(*state.background, return_exceptions=True)
            left = await asyncio.to_thread(producer.close, settings.kafka_ack_timeout_s)
            if left:
                log.error("%d messages were still unacknowledged by Kafka at shutdown", left)
            await pool.close()
            await asyncio.to_thread(close_search, app)

    app = FastAPI(
        title="Strata",
        version="0.1.0",
        summary="Collect, parse, tier, alert on and search logs",
        lifespan=lifespan,
    )
    from api.metrics import RequestMetrics

    app.add_middleware(RequestMetrics)
    app.include_router(health.router)
    app.include_router(ingest.router)
    app.include_router(upload.router)
    app.include_router(otlp.router)
    app.include_router(tenants.router)
    app.include_router(elastic.router)
    app.include_router(alerts.router)
    app.include_router(retention.router)
    from api.routers import log_metrics, metric_rules

    app.include_router(log_metrics.router)
    app.include_router(metric_rules.router)
    app.include_router(audit.router)
    app.include_router(tail.router)  # before search: /v1/logs/tail is not a log id
    app.include_router(search.router)
    app.include_router(dashboards.router)
    app.mount("/ui/static", web.static, name="ui-static")
    app.include_router(web.router)
    return app
