"""Retention: how long each tier keeps a tenant's logs, and what a sweep deletes when time is up.

Three numbers per tenant, in days: ``hot`` (OpenSearch), ``warm`` (Cassandra) and ``archive``
(Parquet on S3). The defaults come from settings; a tenant may override any of them. A tier's
window (``hot_days``, ``warm_days``) is the most it ever holds, because records older than that are
never admitted to it, so a tenant's hot and warm retention can only be shorter. The archive keeps
everything until its retention.

Everything here is planning: given what exists (index names, partitions, days) and the policies,
which things are past their time and why. The sweep (:func:`sweep`) asks each tier through a
:class:`TierStore` and records every deletion; the stores that touch OpenSearch, Cassandra and S3
live with their connectors, so this module is tested without any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Protocol

from core.tiers import HOT, TierPolicy


class RetentionError(ValueError):
    """An override that cannot be honoured; the message says which bound it crosses."""


@dataclass(frozen=True, slots=True)
class Retention:
    """Days each tier keeps a tenant's records (by event time)."""

    hot_days: int
    warm_days: int
    archive_days: int
    # Log metrics per resolution (core/metrics.py); shortening only, like the hot and warm windows.
    metrics_1m_days: int = 90
    metrics_1h_days: int = 365
    metrics_1d_days: int = 1095

    def policy(self) -> TierPolicy:
        """The tier policy a search of this tenant routes by: nothing past its retention is offered."""
        return TierPolicy(self.hot_days, self.warm_days, self.archive_days)

    def as_dict(self) -> dict[str, int]:
        return {
            "hot_days": self.hot_days,
            "warm_days": self.warm_days,
            "archive_days": self.archive_days,
            **self.metrics_days(),
        }

    def metrics_days(self) -> dict[str, int]:
        return {
            "metrics_1m_days": self.metrics_1m_days,
            "metrics_1h_days": self.metrics_1h_days,
            "metrics_1d_days": self.metrics_1d_days,
        }


@dataclass(frozen=True, slots=True)
class Override:
    """A tenant's own numbers; ``None`` keeps the default."""

    hot_days: int | None = None
    warm_days: int | None = None
    archive_days: int | None = None
    metrics_1m_days: int | None = None
    metrics_1h_days: int | None = None
    metrics_1d_days: int | None = None


def resolve(defaults: Retention, override: Override | None) -> Retention:
    """The tenant's retention: its override where it has one, else the default."""
    if override is None:
        return defaults

    def pick(name: str) -> int:
        value: int | None = getattr(override, name)
        return int(getattr(defaults, name)) if value is None else value

    return Retention(*(pick(f.name) for f in fields(Retention)))


def check_override(windows: Retention, override: Override) -> Override:
    """``override`` if each number fits its tier (``windows`` holds the tiers' windows), else
    :class:`RetentionError`. Zero days empties a tier for the tenant."""
    for name, value, most in (
        ("hot_days", override.hot_days, windows.hot_days),
        ("warm_days", override.warm_days, windows.warm_days),
    ):
        if value is not None and not 0 <= value <= most:
            raise RetentionError(
                f"{name} must be between 0 and {most} (the tier's window: it never holds older records)"
            )
    if override.archive_days is not None and override.archive_days < 1:
        raise RetentionError("archive_days must be at least 1")
    for name, most in windows.metrics_days().items():
        value = getattr(override, name)
        if value is not None and not 1 <= value <= most:
            raise RetentionError(
                f"{name} must be between 1 and {most} (the default: whole indices go after it)"
            )
    return override


@dataclass(frozen=True, slots=True)
class Deletion:
    """One thing a sweep deletes (or, in a dry run, would delete)."""

    tier: str
    target: str  # an index, a (tenant, day, service) partition, an archive day's prefix
    reason: str
    tenant: str | None = None  # None: shared by every tenant (a whole daily index)
    records: int | None = None  # how much, where the store can tell
    bytes: int | None = None


def day_cutoff(today: date, days: int) -> date:
    """The oldest day still kept under a retention of ``days``. Deletion goes by whole days, so a
    record lives at least ``days`` days and less than one day more; a search stops offering it at
    exactly ``days`` (:meth:`core.tiers.TierPolicy.route`)."""
    return today - timedelta(days=max(days, 0))


def parse_day(text: str, fmt_sep: str = "-") -> date | None:
    """``YYYY-MM-DD`` (or with another separator, ``YYYY.MM.DD``) as a date, else None."""
    parts = text.split(fmt_sep)
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def hot_plan(
    index_names: Iterable[str],
    prefix: str,
    today: date,
    window_days: int,
    tenants: Mapping[str, Retention],
) -> tuple[list[Deletion], list[tuple[str, date]]]:
    """Daily indices past the hot window, dropped whole; and per tenant whose hot retention is
    shorter, the day before which its documents are deleted from the indices still kept.

    Indices are shared by tenants (one per day), so only the window drops whole indices.
    """
    keep_from = day_cutoff(today, window_days)
    drops = []
    for name in sorted(index_names):
        if not name.startswith(prefix + "-"):
            continue
        day = parse_day(name[len(prefix) + 1 :], ".")
        if day is not None and day < keep_from:
            drops.append(Deletion(HOT, name, f"older than the hot window of {window_days} days"))
    shorter = [
        (tenant, day_cutoff(today, r.hot_days))
        for tenant, r in sorted(tenants.items())
        if r.hot_days < window_days
    ]
    return drops, shorter


def partitions_past(
    partitions: Iterable[tuple[str, str]],
    today: date,
    retention_of: Callable[[str], int],
    tier: str,
) -> list[Deletion]:
    """(tenant, day) partitions whose day is past the tenant's retention for ``tier``."""
    out = []
    for tenant, day_text in sorted(set(partitions)):
        day = parse_day(day_text)
        days = retention_of(tenant)
        if day is not None and day < day_cutoff(today, days):
            out.append(Deletion(tier, f"{tenant}/{day_text}", f"older than {days} days", tenant=tenant))
    return out


class TierStore(Protocol):
    """What a sweep needs of one tier's store; each connector folder has one."""

    tier: str

    def plan(self, today: date, defaults: Retention, tenants: Mapping[str, Retention]) -> list[Deletion]:
        """What is past its time in this tier."""
        ...

    def delete(self, deletion: Deletion) -> Deletion:
        """Delete it; return it with the records and bytes it held, where known."""
        ...


@dataclass
class SweepReport:
    dry_run: bool
    deletions: list[Deletion] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def sweep(
    stores: Sequence[TierStore],
    today: date,
    defaults: Retention,
    tenants: Mapping[str, Retention],
    *,
    dry_run: bool,
    record: Callable[[Deletion, bool], None],
    only_tenant: str | None = None,
) -> SweepReport:
    """Plan every tier, then (unless ``dry_run``) delete, calling ``record`` for each deletion.

    A tier that fails is reported and the others still run: an archive outage must not keep
    expired hot indices on disk. ``only_tenant`` limits the sweep to that tenant's own data
    (whole shared indices are then left alone).
    """
    report = SweepReport(dry_run)
    for store in stores:
        try:
            planned = store.plan(today, defaults, tenants)
        except Exception as exc:
            report.errors.append(f"{store.tier}: {type(exc).__name__}: {exc}")
            continue
        for deletion in planned:
            if only_tenant is not None and deletion.tenant != only_tenant:
                continue
            try:
                done = deletion if dry_run else store.delete(deletion)
            except Exception as exc:
                report.errors.append(f"{store.tier} {deletion.target}: {type(exc).__name__}: {exc}")
                continue
            record(done, dry_run)
            report.deletions.append(done)
    return report
