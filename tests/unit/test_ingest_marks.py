"""The consumer group's archive marks: below them a replay does not write the archive again."""

from __future__ import annotations

import pytest

from core.ingest import archive_marks

pytestmark = pytest.mark.unit

INVALID = -1001  # what Kafka answers for a partition without a committed offset


def test_a_group_that_never_committed_archives_everything() -> None:
    assert archive_marks({0: INVALID, 1: INVALID}, {}, {0: 100, 1: 50}) == {0: 0, 1: 0}


def test_the_mark_is_the_committed_offset_after_normal_runs() -> None:
    assert archive_marks({0: 100, 1: 40}, {0: 90, 1: 40}, {0: 120, 1: 50}) == {0: 100, 1: 40}


def test_a_replay_stopped_halfway_keeps_the_mark_it_started_with() -> None:
    # The replay committed its own, lower offsets as it went; the bookmark still knows how far
    # the archive goes, so starting the replay again archives nothing twice.
    assert archive_marks({0: 10, 1: INVALID}, {0: 100, 1: 40}, {0: 120, 1: 50}) == {0: 100, 1: 40}


def test_marks_past_the_end_mean_the_topic_was_recreated() -> None:
    assert archive_marks({0: 100}, {0: 100, 1: 7}, {0: 3, 1: 9}) == {0: 0, 1: 7}


def test_new_partitions_start_at_zero() -> None:
    assert archive_marks({0: 5}, {0: 5}, {0: 5, 1: 0, 2: 3}) == {0: 5, 1: 0, 2: 0}
