"""One search over three tiers: route a time range by the tier windows, ask each tier its slice in
parallel, merge in order without duplicates, and say how each tier did.

Routing matches the ingest job's admission (``core.tiers.TierPolicy``): a record is hot while
younger than ``hot_days``, warm while younger than ``warm_days``, and always cold. At query time the
newest slice goes to OpenSearch, the next to Cassandra and the rest to the Parquet archive; every
record of a slice is in that slice's tier, because a record only ages out of a tier after it has
aged out of the tier's slice. A tenant's retention (``core.retention``) shortens its slices, so a
search never offers what is past its time, whether or not the sweep has deleted it yet.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from api import metrics
from core.query import Node, Position, TierCounts, TierPage, TierQuery, TierReader, order_key
from core.tiers import COLD, DAY_US, HOT, WARM, TierPolicy
from infra.settings import Settings
from schemas.record import Record, format_ts, from_micros, micros

log = logging.getLogger("strata.search")

T = TypeVar("T")
K = TypeVar("K")


class TierUnavailable(Exception):
    """A tier's service cannot be reached."""


@dataclass
class TierReport:
    tier: str
    start_us: int
    end_us: int
    status: str = "ok"  # ok | unavailable | timeout | error
    took_ms: float = 0.0
    hits: int = 0
    total: int | None = 0
    total_exact: bool = True
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tier": self.tier,
            "status": self.status,
            "took_ms": round(self.took_ms, 1),
            "hits": self.hits,
            "from": format_ts(from_micros(self.start_us)),
            "to": format_ts(from_micros(self.end_us)),
        }
        if self.notes:
            out["notes"] = self.notes
        if self.error:
            out["error"] = self.error
        return out


def _is_unreachable(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from cassandra import OperationTimedOut, Unavailable
    from cassandra.cluster import NoHostAvailable
    from opensearchpy.exceptions import ConnectionError as OSConnectionError

    unreachable = (TierUnavailable, NoHostAvailable, OperationTimedOut, Unavailable, OSConnectionError)
    if isinstance(exc, (*unreachable, BotoConnectionError)):
        return True
    # errors raised inside pyarrow's filesystem layer may come back as an OSError with the text
    text = str(exc).lower()
    return isinstance(exc, OSError) and any(
        w in text for w in ("could not connect", "connect timeout", "connection refused", "unreachable")
    )


class Backends:
    """The tier clients of one process, made on first use and remade after a failure."""

    RETRY_AFTER_S = 5.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._hot: Any = None
        self._warm: Any = None
        self._cold: Any = None
        self._warm_failed_at = 0.0

    def hot(self) -> Any:
        with self._lock:
            if self._hot is None:
                from connectors.opensearch.connection import connection_options
                from connectors.opensearch.search import HotSearch, client

                s = self.settings
                self._hot = HotSearch(
                    client(s.opensearch_endpoint, timeout_s=s.search_tier_timeout_s, **connection_options(s)),
                    s.opensearch_index_prefix,
                )
            return self._hot

    def warm(self) -> Any:
        with self._lock:
            if self._warm is None:
                if time.monotonic() - self._warm_failed_at < self.RETRY_AFTER_S:
                    raise TierUnavailable("Cassandra was unreachable moments ago")
                from connectors.cassandra.connection import cluster_options
                from connectors.cassandra.search import WarmSearch, connect

                s = self.settings
                try:
                    session = connect(
                        s.cassandra_contact_points, s.cassandra_port, timeout_s=3.0, **cluster_options(s)
                    )
                    self._warm = WarmSearch(
                        session,
                        s.cassandra_keyspace,
                        s.cassandra_table,
                        scan_rows=s.search_warm_scan_rows,
                        concurrency=s.search_warm_concurrency,
                    )
                except Exception as exc:
                    self._warm_failed_at = time.monotonic()
                    raise TierUnavailable(f"Cassandra: {exc}") from exc
            return self._warm

    def cold(self) -> Any:
        with self._lock:
            if self._cold is None:
                from connectors.s3.archive import ColdArchive, s3_filesystem

                s = self.settings
                fs = s3_filesystem(
                    s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region, s.ca_file(s.s3_ca_file)
                )
                self._cold = ColdArchive(fs, s.s3_bucket, s.archive_prefix)
            return self._cold

    def close(self) -> None:
        with self._lock:
            if self._warm is not None:
                self._warm.close()
                self._warm.session.cluster.shutdown()
                self._warm = None


@dataclass
class SearchResult:
    logs: list[Record]
    total: int
    total_is_exact: bool
    next_after: Position | None
    tiers: list[TierReport]
    took_ms: float


class SearchEngine:
    def __init__(
        self,
        settings: Settings,
        backends: Backends | None = None,
        retention: Callable[[str], Awaitable[TierPolicy]] | None = None,
    ) -> None:
        """``retention`` gives a tenant's tier policy (its retention per tier); without it every
        tenant has the tier windows of ``settings``."""
        self.settings = settings
        self.backends = backends or Backends(settings)
        self.retention = retention

    async def _policy(self, tenant: str) -> TierPolicy:
        if self.retention is not None:
            return await self.retention(tenant)
        return TierPolicy(self.settings.hot_days, self.settings.warm_days)

    async def slices(self, tenant: str, start_us: int, end_us: int) -> list[tuple[str, int, int]]:
        """The tier slices of ``[start_us, end_us)`` the tenant's retention still offers."""
        return (await self._policy(tenant)).route(start_us, end_us, micros_now())

    async def _run(self, report: TierReport, call: Callable[[], T]) -> T | None:
        """Runs one tier's blocking call in a thread, timing it and recording how it failed."""
        began = time.perf_counter()
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), self.settings.search_tier_timeout_s)
        except TimeoutError:
            report.status = "timeout"
            report.error = f"no answer within {self.settings.search_tier_timeout_s:g} s"
        except Exception as exc:
            report.status = "unavailable" if _is_unreachable(exc) else "error"
            report.error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("%s tier failed: %s", report.tier, report.error)
        finally:
            elapsed = time.perf_counter() - began
            report.took_ms = elapsed * 1000
            metrics.SEARCH_TIER_SECONDS.labels(report.tier, report.status).observe(elapsed)
        return None

    def _search(self, tier: str, q: TierQuery) -> TierPage:
        return self._tier(tier).search(q)

    def _tier(self, tier: str) -> TierReader:
        reader: TierReader = {HOT: self.backends.hot, WARM: self.backends.warm, COLD: self.backends.cold}[
            tier
        ]()
        return reader

    # -- search ----------------------------------------------------------------------------------

    async def search(
        self,
        tenant: str,
        ast: Node,
        start_us: int,
        end_us: int,
        *,
        order: str = "desc",
        limit: int = 100,
        after: Position | None = None,
    ) -> SearchResult:
        began = time.perf_counter()
        reports: list[TierReport] = []
        calls = []
        for tier, s, e in await self.slices(tenant, start_us, end_us):
            report = TierReport(tier, s, e)
            reports.append(report)
            tq = TierQuery(tenant, ast, s, e, order, limit, after)
            calls.append(self._run(report, partial(self._search, tier, tq)))
        pages: list[TierPage | None] = list(await asyncio.gather(*calls))
        merged: list[Record] = []
        more = False
        total, exact = 0, True
        for report, page in zip(reports, pages, strict=True):
            if page is None:
                exact = False
                report.total, report.total_exact = None, False
                continue
            report.hits = len(page.records)
            report.total, report.total_exact = page.total, page.total_exact
            report.notes = page.notes
            merged.extend(page.records)
            more = more or len(page.records) >= limit
            if page.total is None:
                exact = False
            else:
                total += page.total
            exact = exact and page.total_exact
        merged.sort(key=order_key, reverse=order == "desc")
        logs: list[Record] = []
        seen: set[str] = set()
        for record in merged:
            if record.log_id in seen:
                continue  # the same record from two tiers at a boundary
            seen.add(record.log_id)
            logs.append(record)
        more = more or len(logs) > limit
        logs = logs[:limit]
        next_after = Position(micros(logs[-1].timestamp), logs[-1].log_id) if more and logs else None
        if not exact:
            total = max(total, len(logs))
        return SearchResult(logs, total, exact, next_after, reports, (time.perf_counter() - began) * 1000)

    # -- aggregations ----------------------------------------------------------------------------

    async def histogram(
        self, tenant: str, ast: Node, start_us: int, end_us: int, interval_us: int
    ) -> tuple[Counter[tuple[int, str]], bool, list[TierReport]]:
        return await self._aggregate(
            tenant, ast, start_us, end_us, lambda tier, tq: self._tier(tier).histogram(tq, interval_us)
        )

    async def _aggregate(
        self,
        tenant: str,
        ast: Node,
        start_us: int,
        end_us: int,
        ask: Callable[[str, TierQuery], TierCounts[K]],
    ) -> tuple[Counter[K], bool, list[TierReport]]:
        """Counts summed over the tiers that hold ``[start_us, end_us)``, each asked in parallel;
        exact only when every tier answered completely."""
        reports, calls = [], []
        for tier, s, e in await self.slices(tenant, start_us, end_us):
            report = TierReport(tier, s, e)
            reports.append(report)
            calls.append(self._run(report, partial(ask, tier, TierQuery(tenant, ast, s, e))))
        counts: Counter[K] = Counter()
        exact = True
        for report, result in zip(reports, await asyncio.gather(*calls), strict=True):
            if result is None:
                exact = False
                continue
            counts.update(result.counts)
            report.hits = sum(result.counts.values())
            report.notes = result.notes
            exact = exact and result.complete
        return counts, exact, reports

    async def top(
        self, tenant: str, ast: Node, start_us: int, end_us: int, field_name: str, size: int
    ) -> tuple[list[tuple[str, int]], bool, list[TierReport]]:
        # Each tier is asked for more than the top `size`, so a key that is second in two tiers
        # is not lost to one that is first in only one.
        counts, exact, reports = await self._aggregate(
            tenant,
            ast,
            start_us,
            end_us,
            lambda tier, tq: self._tier(tier).top(tq, field_name, size * 3 + 10),
        )
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
        return ranked, exact, reports

    # -- one record --------------------------------------------------------------------------------

    async def get(
        self, tenant: str, log_id: str, at_us: int | None = None
    ) -> tuple[Record | None, list[TierReport]]:
        """The record with ``log_id``: hot, then warm, then the archive (warm and archive around
        ``at_us`` when given, else their whole retention)."""
        now = micros_now()
        policy = await self._policy(tenant)
        # A record past the tenant's retention in a tier is not offered, swept yet or not; a
        # timestamp a little ahead of this clock still is.
        hot = TierReport(HOT, now - policy.hot_days * DAY_US, now + DAY_US)
        warm = TierReport(WARM, now - policy.warm_days * DAY_US, now + DAY_US)
        if at_us is not None:
            # Without its log_id index the warm tier finds an id by scanning the range's
            # partitions: the two hours around a known time, not the whole window.
            warm.start_us = max(warm.start_us, at_us - 3600 * 10**6)
            warm.end_us = max(warm.start_us, min(warm.end_us, at_us + 3600 * 10**6))
        # Hot first, warm only when hot has no such record: without its log_id index the warm
        # tier finds an id by scanning, which a record hot answers in milliseconds need not cost.
        records = await self._run(hot, partial(self._get, hot, tenant, log_id))
        if records:
            return records[0], [hot]
        reports = [hot, warm]
        records = await self._run(warm, partial(self._get, warm, tenant, log_id))
        if records:
            return records[0], reports
        if at_us is not None:
            start, end = at_us - 3600 * 10**6, at_us + 3600 * 10**6
        else:
            start, end = now - self.settings.search_cold_lookup_days * DAY_US, now + DAY_US
        if policy.archive_days is not None:
            start = max(start, now - policy.archive_days * DAY_US)
        cold = TierReport(COLD, start, end)
        reports.append(cold)
        records = await self._run(cold, partial(self._get, cold, tenant, log_id)) if start < end else None
        return (records[0] if records else None), reports

    def _get(self, report: TierReport, tenant: str, log_id: str) -> list[Record]:
        return self._tier(report.tier).get(tenant, [log_id], report.start_us, report.end_us)


def micros_now() -> int:
    return time.time_ns() // 1000


__all__ = ["Backends", "SearchEngine", "SearchResult", "TierReport", "TierUnavailable"]
