"""Compaction planning without S3: which files a reader sees at every moment of a swap, what a
run merges, and what it deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.compaction import (
    ArchiveFile,
    CompactionError,
    GroupMeta,
    cleanup,
    hour_closed,
    output_count,
    output_name,
    parse_output,
    plan_hour,
    visible,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PARTS = [f"part-abc-{i}-0.parquet" for i in range(5)]


def files(names: list[str], at: datetime = T0, size: int = 100) -> list[ArchiveFile]:
    return [ArchiveFile(n, size, at) for n in names]


def group(gid: str, n: int, replaces: list[str]) -> GroupMeta:
    return GroupMeta(gid, tuple(output_name(gid, k, n) for k in range(1, n + 1)), tuple(replaces))


G1 = "a" * 32
G2 = "b" * 32


def test_output_names_round_trip_and_still_match_the_part_glob() -> None:
    name = output_name(G1, 2, 3)
    assert name.startswith("part-") and name.endswith(".parquet")
    assert parse_output(name) == (G1, 2, 3)
    assert parse_output(PARTS[0]) is None


def test_metadata_round_trips_and_garbage_is_a_clear_error() -> None:
    meta = group(G1, 2, PARTS)
    assert GroupMeta.from_json(meta.to_json()) == meta
    with pytest.raises(CompactionError, match="not compaction metadata"):
        GroupMeta.from_json(b'{"group": 1}')


def test_a_reader_sees_each_record_once_at_every_step_of_a_swap() -> None:
    meta = group(G1, 2, PARTS)
    out1, out2 = meta.outputs
    metas = {G1: meta}
    # before, while the group is being written, once complete, after the deletion
    assert visible(PARTS, metas) == sorted(PARTS)
    assert visible([*PARTS, out1], metas) == sorted(PARTS)
    assert visible([*PARTS, out1, out2], metas) == [out1, out2]
    assert visible([*PARTS[:2], out1, out2], metas) == [out1, out2]
    assert visible([out1, out2], {}) == [out1, out2]  # the steady state needs no metadata


def test_part_files_arriving_after_a_compaction_stay_visible() -> None:
    meta = group(G1, 1, PARTS)
    late = "part-def-0-7.parquet"
    assert visible([*meta.outputs, late], {G1: meta}) == sorted([*meta.outputs, late])


def test_in_progress_files_and_markers_are_never_read() -> None:
    assert visible([".part-x.inprogress", "_SUCCESS", PARTS[0]], {}) == [PARTS[0]]


def test_hours_close_after_their_end_plus_the_grace() -> None:
    assert not hour_closed("2026-11-01", "11", T0 + timedelta(seconds=899), 900)
    assert hour_closed("2026-11-01", "11", T0 + timedelta(seconds=900), 900)
    assert not hour_closed("2026-11-01", "12", T0 + timedelta(seconds=900), 900)
    assert not hour_closed("not-a-day", "11", T0, 0)


def test_output_count_aims_at_the_target_size_with_at_most_four_files() -> None:
    assert output_count(10, 100) == 1
    assert output_count(250, 100) == 3
    assert output_count(10_000, 100) == 4
    with pytest.raises(ValueError):
        output_count(1, 0)


def test_plan_merges_the_visible_files_and_skips_a_compacted_hour() -> None:
    plan = plan_hour(files(PARTS), {}, target_bytes=1000)
    assert plan is not None
    assert plan.inputs == tuple(sorted(PARTS)) and plan.replaces == tuple(sorted(PARTS))
    assert plan.input_bytes == 500 and plan.outputs == 1
    meta = group(G1, 1, [])
    assert plan_hour(files(list(meta.outputs)), {G1: meta}, target_bytes=1000) is None


def test_a_recompaction_also_replaces_what_the_old_group_still_awaits_deleting() -> None:
    old = group(G1, 1, PARTS[:3])
    late = PARTS[3]
    names = [*PARTS[:3], *old.outputs, late]
    plan = plan_hour(files(names), {G1: old}, target_bytes=1000)
    assert plan is not None
    assert set(plan.inputs) == {*old.outputs, late}
    # deleting the old group's file must not make its sources visible again
    assert set(plan.replaces) == {*old.outputs, late, *PARTS[:3]}


def test_an_incomplete_group_is_ignored_by_the_plan_and_deleted_by_cleanup() -> None:
    meta = group(G1, 2, PARTS)
    names = [*PARTS, meta.outputs[0]]
    plan = plan_hour(files(names), {G1: meta}, target_bytes=1000)
    assert plan is not None and plan.inputs == tuple(sorted(PARTS))
    assert plan.stale == (meta.outputs[0],)
    assert cleanup(files(names), {G1: meta}, T0, delete_after_s=60) == [meta.outputs[0]]


def test_replaced_files_are_deleted_only_after_the_delay() -> None:
    meta = group(G1, 1, PARTS)
    listing = files(PARTS) + files(list(meta.outputs), at=T0)
    assert cleanup(listing, {G1: meta}, T0 + timedelta(seconds=59), delete_after_s=60) == []
    assert cleanup(listing, {G1: meta}, T0 + timedelta(seconds=60), delete_after_s=60) == sorted(PARTS)


def test_two_groups_in_one_hour_hide_what_each_replaces() -> None:
    old = group(G1, 1, PARTS[:2])
    new = group(G2, 1, [*old.outputs, *PARTS[:2], PARTS[2]])
    names = [*PARTS[:3], *old.outputs, *new.outputs]
    assert visible(names, {G1: old, G2: new}) == list(new.outputs)
