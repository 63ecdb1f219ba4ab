"""Log metrics computed on the stream: record count and bytes per tenant, service, level, pattern
and host, per minute, rolled up to hours and days.

Pure logic, shared by the store (:mod:`connectors.opensearch.metrics`) and the API
(``/v1/metrics/logs``). :class:`ServiceAccumulator` is the reference of the ingest job's counting,
which runs in the JVM (``dev.strata.flink.LogMetricsAggregate``, :mod:`jobs.ingest.metrics`) with
the same state, ids and documents; ``tests/job/test_log_metrics_jvm.py`` holds the two equal.

How a stored value stays exact
------------------------------
The job counts the deduplicated records that are *first read* by the consumer group (the ones the
archive and the ``logs`` topic take, :mod:`jobs.ingest.marks`), so a replay never counts a message
twice. A bucket's value is stored as one or more *contributions*, each a document whose id is the
series, the bucket and the Kafka position (partition, offset) of the record that opened it in the
job's state; a reader sums the contributions of a bucket.

- A restart from a checkpoint restores the state: each open contribution keeps its id, and the
  records read again after the checkpoint recount into it, so the rewrite overwrites.
- A replay starts with empty state: records below the group's mark are not counted at all, and the
  first record past it opens a new contribution (a new id), which adds to what earlier runs wrote
  instead of overwriting it with a partial count.
- A contribution left idle for ``idle_s`` is closed and leaves the state; a late record for the
  same bucket opens another one, with its own id, so nothing the state forgot is overwritten.

The store is written only when a checkpoint completes its flush, so what a crashed run wrote is
what its last checkpoint holds, which is what a restart restores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

# Resolution name -> seconds, finest first.
RESOLUTIONS: dict[str, int] = {"1m": 60, "1h": 3600, "1d": 86400}

# How long each resolution is kept by default (days); a tenant's retention policy may override it.
RETENTION_DAYS: dict[str, int] = {"1m": 90, "1h": 365, "1d": 3 * 365}

STEPS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "1d": 86400}
GROUP_BY = ("level", "service", "pattern", "host")
METRICS = ("count", "bytes")

# A service's distinct hosts, past which further hosts are counted as OTHER_HOST: a fleet that
# autoscales through thousands of short-lived hosts keeps a bounded number of series.
MAX_HOSTS_PER_SERVICE = 200
OTHER_HOST = "_other"
NO_PATTERN = "_none"


class MetricsError(ValueError):
    """A parameter of a metrics query that cannot be served, said so a user can fix it."""


def bucket_start(ts_s: int, resolution: str) -> int:
    """The start (epoch seconds) of the ``resolution`` bucket holding ``ts_s``."""
    size = RESOLUTIONS[resolution]
    return ts_s - ts_s % size


def resolution_for_step(step_s: int) -> str:
    """The coarsest stored resolution whose buckets tile ``step_s`` exactly."""
    best = "1m"
    for name, size in RESOLUTIONS.items():
        if size <= step_s and step_s % size == 0:
            best = name
    return best


def parse_step(step: str) -> int:
    if step not in STEPS:
        raise MetricsError(f"step {step!r} is not one of {', '.join(STEPS)}")
    return STEPS[step]


@dataclass(frozen=True)
class Series:
    """One series' labels: what a dashboard filters and groups on."""

    tenant: str
    service: str
    level: str
    pattern: str  # pattern_id, or NO_PATTERN
    host: str


def contribution_id(series: Series, resolution: str, bucket: int, partition: int, offset: int) -> str:
    """The document id of one contribution (see the module docstring): stable across restarts."""
    key = "\x1f".join(
        (series.tenant, series.service, series.level, series.pattern, series.host, resolution, str(bucket))
    )
    return hashlib.blake2b(f"{key}\x1f{partition}\x1f{offset}".encode(), digest_size=16).hexdigest()


def index_suffix(resolution: str, bucket: int) -> str:
    """Minutes in monthly indices, hours and days in yearly ones: retention drops whole indices."""
    day = datetime.fromtimestamp(bucket, UTC)
    return f"{resolution}-{day:%Y.%m}" if resolution == "1m" else f"{resolution}-{day:%Y}"


class Store(Protocol):
    """The slice of a map the accumulator needs (a dict; the job's Java port uses ``MapState``)."""

    def get(self, key: str) -> Any: ...
    def put(self, key: str, value: Any) -> None: ...
    def remove(self, key: str) -> None: ...
    def items(self) -> Iterable[tuple[str, Any]]: ...


class DictStore(dict[str, Any]):
    def put(self, key: str, value: Any) -> None:
        self[key] = value

    def remove(self, key: str) -> None:
        del self[key]


_SEP = "\x1f"


class ServiceAccumulator:
    """One (tenant, service)'s open contributions, as the job keeps them in keyed state.

    ``open`` maps ``res|level|pattern|host|bucket`` to ``[partition, offset, count, bytes,
    last_ms]``; ``dirty`` holds the keys changed since the last flush; ``hosts`` the host labels
    in use (at most :data:`MAX_HOSTS_PER_SERVICE`).
    """

    def __init__(self, open_: Store, dirty: Store, hosts: Store) -> None:
        self.open = open_
        self.dirty = dirty
        self.hosts = hosts

    def host_label(self, host: str) -> str:
        if self.hosts.get(host) is not None:
            return host
        if sum(1 for _ in self.hosts.items()) >= MAX_HOSTS_PER_SERVICE:
            return OTHER_HOST
        self.hosts.put(host, True)
        return host

    def add(
        self,
        level: str,
        pattern: str | None,
        host: str,
        ts_s: int,
        size: int,
        partition: int,
        offset: int,
        now_ms: int,
    ) -> None:
        """Count one record (``ts_s`` its event time, ``size`` its message's bytes)."""
        label = self.host_label(host)
        prefix = _SEP.join((level, pattern or NO_PATTERN, label))
        for res in RESOLUTIONS:
            key = f"{res}{_SEP}{prefix}{_SEP}{bucket_start(ts_s, res)}"
            c = self.open.get(key)
            if c is None:
                c = [partition, offset, 0, 0, 0]
            c[2] += 1
            c[3] += size
            c[4] = now_ms
            self.open.put(key, c)
            self.dirty.put(key, True)

    def flush(self, tenant: str, service: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, index suffix, document) of every contribution changed since the last flush."""
        out = []
        keys = [k for k, _ in self.dirty.items()]
        for key in keys:
            c = self.open.get(key)
            self.dirty.remove(key)
            if c is None:
                continue
            res, level, pattern, host, bucket_text = key.split(_SEP)
            bucket = int(bucket_text)
            series = Series(tenant, service, level, pattern, host)
            doc = {
                "tenant": tenant,
                "service": service,
                "level": level,
                "pattern": pattern,
                "host": host,
                "bucket": bucket,
                "count": c[2],
                "bytes": c[3],
            }
            out.append((contribution_id(series, res, bucket, c[0], c[1]), index_suffix(res, bucket), doc))
        return out

    def close_idle(self, now_ms: int, idle_s: int) -> int:
        """Close contributions idle for ``idle_s`` (call after :meth:`flush`), forget hosts no
        open contribution uses; returns how many contributions stay open."""
        limit = now_ms - idle_s * 1000
        left = 0
        in_use: set[str] = set()
        for key, c in list(self.open.items()):
            if c[4] < limit:
                self.open.remove(key)
            else:
                left += 1
                in_use.add(key.split(_SEP)[3])
        for host in [h for h, _ in self.hosts.items() if h not in in_use]:
            self.hosts.remove(host)
        return left


# -- retention --------------------------------------------------------------------------------

METRICS_TIER = "metrics"


def index_period_end(suffix: str) -> date | None:
    """The first day after the period a metrics index suffix (``1m-2025.11``, ``1h-2025``) covers."""
    res, _, period = suffix.partition("-")
    parts = period.split(".")
    if res not in RESOLUTIONS or not all(p.isdigit() for p in parts):
        return None
    if len(parts) == 2:
        year, month = int(parts[0]), int(parts[1])
        if not 1 <= month <= 12:
            return None
        return date(year + month // 12, month % 12 + 1, 1)
    if len(parts) == 1:
        return date(int(parts[0]) + 1, 1, 1)
    return None


def retention_plan(
    suffixes: Iterable[str],
    today: date,
    defaults: Mapping[str, int],
    tenants: Mapping[str, Mapping[str, int]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str, date]]]:
    """What a sweep deletes of the metric indices, by resolution.

    ``defaults`` and each of ``tenants`` map a resolution to its days. Returns the index suffixes
    whose whole period is past the default, with the reason; and per tenant whose days are fewer,
    (tenant, resolution, first day kept): its documents of earlier buckets go from the indices that
    stay.
    """
    drops = []
    for suffix in sorted(suffixes):
        end = index_period_end(suffix)
        res = suffix.partition("-")[0]
        if end is not None and end <= today - timedelta(days=defaults[res]):
            drops.append((suffix, f"older than the {res} metrics retention of {defaults[res]} days"))
    shorter = [
        (tenant, res, today - timedelta(days=days[res]))
        for tenant, days in sorted(tenants.items())
        for res in RESOLUTIONS
        if days[res] < defaults[res]
    ]
    return drops, shorter
