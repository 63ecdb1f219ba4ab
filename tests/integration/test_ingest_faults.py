"""The ingest job under faults: a SIGKILL mid-run, a tier restarted under it, a replay.

Each test runs ``strata job run ingest`` as a user would, in its own process group, on its own
topics, index prefix, table, archive prefix and consumer group, and then counts what a user would
count in every tier: each expected record exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from infra.settings import Settings
from tests.integration.ingest_support import (
    Expected,
    Job,
    Run,
    archive_ids,
    committed_lag,
    completed_checkpoints,
    duplicates,
    hot_ids,
    isolated_run,
    messages,
    now_utc,
    outage,
    produce,
    running,
    topic_values,
    wait_for,
    warm_ids,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Starting the job (a JVM, the jars, the Python workers) takes a minute on a busy 2-core machine.
START_S = 240
CATCH_UP_S = 300


@pytest.fixture
def run(settings: Settings, require, unique_name, tmp_path: Path) -> Iterator[Run]:
    require("kafka", "opensearch", "cassandra", "s3")
    with isolated_run(settings, unique_name("faults").lower(), tmp_path) as r:
        yield r


def _assert_each_tier_holds_each_record_once(run: Run, expected: Expected) -> None:
    s = run.settings
    hot = hot_ids(s)
    assert len(hot) == len(expected.hot), f"OpenSearch: {len(hot)} documents, expected {len(expected.hot)}"
    assert set(hot) == expected.hot
    warm = warm_ids(s)
    assert len(warm) == len(expected.warm), f"Cassandra: {len(warm)} rows, expected {len(expected.warm)}"
    assert set(warm) == expected.warm
    cold = archive_ids(s)
    assert not duplicates(cold), f"archive: {len(duplicates(cold))} log_ids stored more than once"
    assert len(cold) == len(expected.records)
    assert set(cold) == set(expected.records)


def _wait_caught_up(run: Run, job: Job, expected: Expected, timeout: float = CATCH_UP_S) -> None:
    """Until the group committed every offset (a checkpoint completed after the last record, so
    every sink flushed and every archive file is committed) and the archive holds everything."""
    s = run.settings
    wait_for(
        lambda: committed_lag(s, s.raw_topic) == 0,
        timeout,
        "the job to commit every offset",
        alive=job.check_running,
    )
    wait_for(
        lambda: len(set(archive_ids(s))) >= len(expected.records), 60, "the archive", alive=job.check_running
    )


def test_sigkill_mid_run_resumes_from_the_checkpoint_without_loss_or_duplicates(run: Run) -> None:
    s = run.settings
    now = now_utc()
    batch = messages(100_000, now)
    assert 280 <= sum(map(len, batch)) / len(batch) <= 340
    produce(s, s.raw_topic, batch)

    with running(Job(run, label="first")) as first:
        expected = Expected()
        expected.add(batch, now, s)  # while the job starts
        assert len(expected.records) < 98_000 and expected.rejected > 0  # duplicates and bad input
        # Archive files are visible once a checkpoint has committed them: the restart below has
        # pending and committed files, flushed and unflushed writes, to get right.
        wait_for(lambda: archive_ids(s), START_S, "a checkpoint's archive files", alive=first.check_running)
        assert completed_checkpoints(run)
        archived_at_kill = len(archive_ids(s))
        first.kill()
    print(f"killed with {archived_at_kill} rows archived")
    assert archived_at_kill < len(expected.records), "the kill must land mid-run, or this test proves nothing"

    with running(Job(run, label="second")) as second:
        _wait_caught_up(run, second, expected)
        assert second.stop() is not None
    assert "resuming from" in second.log.read_text()
    _assert_each_tier_holds_each_record_once(run, expected)


DOWN_S = 20


def test_opensearch_then_cassandra_restarted_under_the_job_catch_up_without_duplicates(
    run: Run, settings: Settings
) -> None:
    s = run.settings
    now = now_utc()
    expected = Expected()
    first = messages(10_000, now, seed=2)
    produce(s, s.raw_topic, first)
    with running(Job(run, label="job")) as job:
        expected.add(first, now, s)
        wait_for(
            lambda: archive_ids(s), START_S, "a first checkpoint's archive files", alive=job.check_running
        )

        for seed, service in ((3, "opensearch"), (4, "cassandra")):
            batch = messages(5_000, now, seed=seed)
            expected.add(batch, now, s)
            with outage(settings, service):
                began = time.monotonic()
                produce(s, s.raw_topic, batch)  # the job has to write these to a tier that is down
                time.sleep(max(0.0, DOWN_S - (time.monotonic() - began)))
                job.check_running()  # the job restarts and waits; it never gives up
            back = time.monotonic()
            _wait_caught_up(run, job, expected)
            print(f"{service}: caught up {time.monotonic() - back:.0f}s after it was healthy again")
        assert job.stop() is not None
    _assert_each_tier_holds_each_record_once(run, expected)


def test_replay_from_earliest_changes_no_count_a_user_sees(run: Run) -> None:
    s = run.settings
    now = now_utc()
    expected = Expected()
    old = messages(2_000, now, seed=5)
    produce(s, s.raw_topic, old)
    expected.add(old, now, s)
    full = Job(run, "--bounded", label="full").start()
    assert full.wait(START_S + CATCH_UP_S) == 0, full.tail()
    assert committed_lag(s, s.raw_topic) == 0
    _assert_each_tier_holds_each_record_once(run, expected)

    # Messages the group has not read yet, then a replay of everything with new state.
    new = messages(500, now, seed=6)
    produce(s, s.raw_topic, new)
    expected.add(new, now, s)
    replay = Job(run, "--from", "earliest", "--bounded", "--fresh", label="replay").start()
    assert replay.wait(START_S + CATCH_UP_S) == 0, replay.tail()
    assert "resuming from" not in replay.log.read_text()

    # OpenSearch and Cassandra took the replay as no-ops; the archive, the live-tail topic and the
    # DLQ, which only append, took the new messages only.
    _assert_each_tier_holds_each_record_once(run, expected)
    live = [orjson.loads(v)["log_id"] for v in topic_values(s, s.logs_topic)]
    assert len(live) == len(expected.records) and set(live) == set(expected.records)
    assert len(topic_values(s, s.dlq_topic)) == expected.rejected
