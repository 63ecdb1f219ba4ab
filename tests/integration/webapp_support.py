"""The web app's world: a tenant with a key, recent records in every tier as the ingest job lays them
out, the real API, and Debian's chromium driven by Playwright (its own browser download needs a
site these machines cannot reach, so the system's headless shell is launched by path)."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.records.mining import pattern_id_of
from infra.settings import Settings
from schemas.record import Level, Record
from tests.integration.collector_support import ApiServer, kafka_topic, require_stack, tenant_with_key
from tests.integration.search_support import loaded_tiers, make_id, now_utc

SERVICES = ("checkout", "payment-service", "auth")
HOSTS = ("web-1", "web-2")
# (level, message template, mined pattern): the pattern is what the ingest job's miner stores.
LINES = [
    (Level.INFO, "order A-{n} accepted", "order <*> accepted"),
    (Level.INFO, "user {n} logged in", "user <*> logged in"),
    (Level.WARN, "slow response {n} ms from inventory", "slow response <*> ms from inventory"),
    (Level.ERROR, "payment failed: timeout after {n} ms", "payment failed: timeout after <*> ms"),
]
# One line a search finds by a word no other line has, with neighbours for its context.
NEEDLE = "zanzibarquux"


def browser_path() -> str | None:
    """The chromium to drive: ``STRATA_CHROMIUM`` or the first Debian build on the PATH."""
    return os.environ.get("STRATA_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium-headless-shell", "chromium")) if p), None
    )


def make_world_records(tenant: str, now: datetime, count: int = 240) -> list[Record]:
    """``count`` records over the last 50 minutes, every service and level, one of them the needle."""
    rng = random.Random(11)
    out = []
    for i in range(count):
        level, template, pattern = LINES[i % len(LINES)]
        service = SERVICES[i % len(SERVICES)]
        ts = now - timedelta(seconds=50 * 60 * (count - i) / count)
        message = template.format(n=rng.randrange(1000, 9999))
        if i == count // 2:
            service, level, message, pattern = "checkout", Level.ERROR, f"card {NEEDLE} declined", None
        out.append(
            Record(
                log_id=make_id(rng),
                tenant=tenant,
                timestamp=ts,
                ingested_at=ts + timedelta(seconds=1),
                level=level,
                service=service,
                host=HOSTS[0] if service == "checkout" else rng.choice(HOSTS),
                environment="prod",
                region=None,
                message=message,
                trace_id=None,
                span_id=None,
                attributes={"req_id": f"r-{i}"},
                source_format="json",
                pattern_id=None if pattern is None else pattern_id_of(pattern),
                pattern=pattern,
            )
        )
    return out


@contextmanager
def metrics_written(settings: Settings, records: list[Record]) -> Iterator[None]:
    """The log metrics of ``records`` in the index prefix of ``settings``, laid out as the ingest job
    writes them (one contribution per series and bucket, every resolution); removed afterwards."""
    from collections import Counter

    from opensearchpy import OpenSearch, helpers

    from connectors.opensearch.metrics import drop_metrics, ensure_template, metrics_index
    from core.metrics import NO_PATTERN, RESOLUTIONS, Series, bucket_start, contribution_id, index_suffix

    client = OpenSearch(settings.opensearch_endpoint, timeout=60)
    prefix = settings.opensearch_index_prefix
    ensure_template(client, prefix)
    counts: Counter[tuple[Series, str, int]] = Counter()
    sizes: Counter[tuple[Series, str, int]] = Counter()
    for r in records:
        series = Series(r.tenant, r.service, r.level.value, r.pattern_id or NO_PATTERN, r.host)
        for resolution in RESOLUTIONS:
            key = (series, resolution, bucket_start(int(r.timestamp.timestamp()), resolution))
            counts[key] += 1
            sizes[key] += len(r.message.encode())
    actions = [
        {
            "_index": metrics_index(prefix, index_suffix(resolution, bucket)),
            "_id": contribution_id(series, resolution, bucket, 0, 0),
            "_source": {
                "tenant": series.tenant,
                "service": series.service,
                "level": series.level,
                "pattern": series.pattern,
                "host": series.host,
                "bucket": bucket,
                "count": n,
                "bytes": sizes[(series, resolution, bucket)],
            },
        }
        for (series, resolution, bucket), n in counts.items()
    ]
    helpers.bulk(client, actions, refresh="wait_for")
    try:
        yield
    finally:
        drop_metrics(client, prefix)


@dataclass
class World:
    url: str
    tenant: str
    key: str  # search, ingest and admin scopes
    records: list[Record]
    settings: Settings  # its logs_topic (live tail) is the world's own


@contextmanager
def webapp_world() -> Iterator[World]:
    """A tenant, its records loaded into a hot index, keyspace and archive prefix of its own with
    their log metrics, a ``logs`` topic of its own for live tail, and the API over them; all removed
    afterwards."""
    base = require_stack()
    with ExitStack() as stack:
        base = base.model_copy(update={"logs_topic": stack.enter_context(kafka_topic(base))})
        tenant, key = stack.enter_context(tenant_with_key(base, scopes=("search", "ingest", "admin")))
        records = make_world_records(tenant, now_utc())
        loaded = stack.enter_context(loaded_tiers(base, records, now_utc()))
        stack.enter_context(metrics_written(loaded.settings, records))
        server = stack.enter_context(ApiServer(loaded.settings))
        yield World(server.url, tenant, key, records, loaded.settings)


@contextmanager
def browser() -> Iterator[Any]:
    """A headless chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright

    path = browser_path()
    if path is None:
        raise RuntimeError(
            "no chromium: run `infra/system-deps.sh --test` (Debian's chromium-headless-shell)"
        )
    with sync_playwright() as p:
        # --no-sandbox: the tests run as root, where chromium refuses its sandbox.
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def sign_in(page: Any, key: str) -> None:
    """Types the key into the page's sign-in field, as a user does."""
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
    page.get_by_label("API key").wait_for(state="hidden")
