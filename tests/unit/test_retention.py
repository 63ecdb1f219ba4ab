"""Retention planning and the sweep, without any store: what is past its time, and why."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import pytest

from core.retention import (
    Deletion,
    Override,
    Retention,
    RetentionError,
    check_override,
    day_cutoff,
    hot_plan,
    partitions_past,
    resolve,
    sweep,
)
from core.tiers import COLD, DAY_US, HOT, WARM

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 10)
DEFAULTS = Retention(14, 45, 365)


def test_a_tenant_overrides_only_what_it_names() -> None:
    assert resolve(DEFAULTS, None) == DEFAULTS
    assert resolve(DEFAULTS, Override(archive_days=30)) == Retention(14, 45, 30)
    assert resolve(DEFAULTS, Override(hot_days=3, warm_days=0)) == Retention(3, 0, 365)


def test_overrides_stay_within_the_tier_windows() -> None:
    assert check_override(DEFAULTS, Override(hot_days=14, warm_days=1, archive_days=1))
    with pytest.raises(RetentionError, match="hot_days must be between 0 and 14"):
        check_override(DEFAULTS, Override(hot_days=15))
    with pytest.raises(RetentionError, match="warm_days"):
        check_override(DEFAULTS, Override(warm_days=-1))
    with pytest.raises(RetentionError, match="archive_days must be at least 1"):
        check_override(DEFAULTS, Override(archive_days=0))


def test_a_retention_keeps_whole_days() -> None:
    assert day_cutoff(TODAY, 1) == TODAY - timedelta(days=1)
    assert day_cutoff(TODAY, 30) == date(2026, 2, 8)


def test_hot_drops_whole_indices_past_the_window_and_plans_shorter_tenants() -> None:
    names = [f"strata-logs-{TODAY - timedelta(days=d):%Y.%m.%d}" for d in (0, 13, 14, 15, 40)]
    names += ["strata-logs-not-a-day", "other-2020.01.01"]
    tenants = {"acme": Retention(2, 45, 365), "globex": DEFAULTS}
    drops, shorter = hot_plan(names, "strata-logs", TODAY, 14, tenants)
    assert [d.target for d in drops] == [
        f"strata-logs-{TODAY - timedelta(days=40):%Y.%m.%d}",
        f"strata-logs-{TODAY - timedelta(days=15):%Y.%m.%d}",
    ]
    assert all(d.tier == HOT and d.tenant is None for d in drops)
    assert shorter == [("acme", TODAY - timedelta(days=2))]


def test_partitions_past_each_tenants_own_retention() -> None:
    days = [f"{TODAY - timedelta(days=d):%Y-%m-%d}" for d in (0, 1, 2, 30, 31)]
    parts = [(t, d) for t in ("acme", "globex") for d in days] + [("acme", "garbage")]
    limits = {"acme": 1, "globex": 30}
    gone = partitions_past(parts, TODAY, limits.__getitem__, COLD)
    assert [d.target for d in gone] == [f"acme/{days[i]}" for i in (4, 3, 2)] + [f"globex/{days[4]}"]
    assert all(d.tenant in limits and d.reason.startswith("older than") for d in gone)


class _Store:
    def __init__(self, tier: str, planned: list[Deletion], fail: bool = False) -> None:
        self.tier = tier
        self.planned = planned
        self.fail = fail
        self.deleted: list[str] = []

    def plan(self, today: date, defaults: Retention, tenants: Mapping[str, Retention]) -> list[Deletion]:
        if self.fail:
            raise ConnectionError("store down")
        return self.planned

    def delete(self, deletion: Deletion) -> Deletion:
        self.deleted.append(deletion.target)
        return Deletion(deletion.tier, deletion.target, deletion.reason, deletion.tenant, records=7)


def test_a_dry_run_lists_and_deletes_nothing_and_a_real_run_logs_each_deletion() -> None:
    hot = _Store(HOT, [Deletion(HOT, "idx-1", "old"), Deletion(HOT, "acme docs", "short", tenant="acme")])
    cold = _Store(COLD, [Deletion(COLD, "acme/2020-01-01", "old", tenant="acme")])
    logged: list[tuple[str, bool]] = []
    report = sweep(
        [hot, cold], TODAY, DEFAULTS, {}, dry_run=True, record=lambda d, dry: logged.append((d.target, dry))
    )
    assert hot.deleted == cold.deleted == [] and len(report.deletions) == 3
    assert logged == [("idx-1", True), ("acme docs", True), ("acme/2020-01-01", True)]
    logged.clear()
    report = sweep(
        [hot, cold], TODAY, DEFAULTS, {}, dry_run=False, record=lambda d, dry: logged.append((d.target, dry))
    )
    assert hot.deleted == ["idx-1", "acme docs"] and cold.deleted == ["acme/2020-01-01"]
    assert [d.records for d in report.deletions] == [7, 7, 7] and all(not dry for _, dry in logged)


def test_a_failing_tier_does_not_stop_the_others_and_one_tenant_touches_only_its_own() -> None:
    down = _Store(WARM, [], fail=True)
    cold = _Store(COLD, [Deletion(COLD, "a/x", "old", tenant="a"), Deletion(COLD, "b/x", "old", tenant="b")])
    shared = _Store(HOT, [Deletion(HOT, "idx-1", "old")])
    report = sweep(
        [down, shared, cold], TODAY, DEFAULTS, {}, dry_run=False, record=lambda *_: None, only_tenant="b"
    )
    assert report.errors == ["warm: ConnectionError: store down"]
    assert cold.deleted == ["b/x"] and shared.deleted == []


def test_search_never_routes_past_a_tenants_retention() -> None:
    now = 1_000 * DAY_US
    policy = Retention(2, 20, 30).policy()
    slices = policy.route(now - 90 * DAY_US, now, now)
    assert [t for t, _, _ in slices] == [HOT, WARM, COLD]
    assert slices[0][1] == now - 2 * DAY_US
    assert slices[-1][1] == now - 30 * DAY_US  # nothing older than the archive's 30 days
    # The archive's retention limits the archive only: a hot and warm range is untouched.
    assert Retention(14, 45, 1).policy().route(now - 30 * DAY_US, now, now)[-1] == (
        WARM,
        now - 30 * DAY_US,
        now - 14 * DAY_US,
    )
