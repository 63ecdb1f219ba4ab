"""Archive compaction on the real S3 server: closed hours merged into a few sorted files, every
record exactly once for readers before, during and after the swap, and a run that dies midway
leaving a correct archive that the next run finishes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.s3.archive import ColdArchive, s3_filesystem
from connectors.s3.client import s3_client
from connectors.s3.compaction import ArchiveCompactor
from connectors.s3.retention import ArchiveStore
from core.compaction import (
    META_KEY,
    GroupMeta,
    hour_closed,
    parse_output,
    parse_summary,
    single_group,
    summary_prefix,
)
from core.query import MatchAll, TierQuery, order_key
from core.retention import Deletion
from core.tiers import COLD
from infra.settings import Settings
from schemas.record import Record
from tests.integration.search_support import make_records, now_utc
from tests.support.tiers import write_archive_file

pytestmark = pytest.mark.integration

FILES_PER_HOUR = 6
GRACE_S = 900.0  # the default: the tests' hours are closed or open as they would be for the API


@dataclass
class Layout:
    settings: Settings
    fs: Any
    client: Any
    records: list[Record]  # distinct records (by log_id) the archive holds
    closed_hours: set[tuple[str, str]]
    open_hours: set[tuple[str, str]]  # hours within the grace: not compacted yet
    now: datetime

    @property
    def root(self) -> str:
        return f"{self.settings.s3_bucket}/{self.settings.archive_prefix}"

    def compactor(self, **kwargs: Any) -> ArchiveCompactor:
        options: dict[str, Any] = {"grace_s": GRACE_S, "delete_after_s": 0.0, **kwargs}
        return ArchiveCompactor(self.client, self.settings.s3_bucket, self.settings.archive_prefix, **options)

    def hour_files(self, dt: str, hour: str) -> list[str]:
        prefix = f"{self.settings.archive_prefix}/tenant=acme/dt={dt}/hour={hour}/"
        listing = self.client.list_objects_v2(Bucket=self.settings.s3_bucket, Prefix=prefix)
        return sorted(o["Key"].rsplit("/", 1)[1] for o in listing.get("Contents", []))

    def search_total(self) -> int:
        cold = ColdArchive(self.fs, self.settings.s3_bucket, self.settings.archive_prefix)
        start = int((self.now - timedelta(days=60)).timestamp() * 1e6)
        end = int((self.now + timedelta(hours=1)).timestamp() * 1e6)
        page = cold.search(TierQuery("acme", MatchAll(), start, end, "desc", 5))
        assert page.total is not None
        return page.total


def write_small_files(fs: Any, root: str, records: list[Record], *, repeats: bool) -> None:
    """Each hour's records spread over several part files, as checkpoints of two subtasks leave
    them; with ``repeats``, one record of every hour written twice (a replay after a restart)."""
    hours: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        hours[(f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}")].append(r)
    for (dt, hour), group in hours.items():
        chunks: list[list[Record]] = [[] for _ in range(FILES_PER_HOUR)]
        for i, r in enumerate(group):
            chunks[i % FILES_PER_HOUR].append(r)
        if repeats:
            chunks[-1].append(group[0])
        for n, chunk in enumerate(chunks):
            if chunk:
                path = f"{root}/tenant=acme/dt={dt}/hour={hour}/part-{uuid.uuid4()}-{n % 2}-{n}.parquet"
                write_archive_file(fs, path, chunk)


def make_layout(settings: Settings, *, repeats: bool) -> Iterator[Layout]:
    tag = uuid.uuid4().hex[:10]
    s = settings.model_copy(update={"archive_prefix": f"test-compact-{tag}/logs"})
    now = now_utc()
    records = make_records("acme", 400, now, random.Random(7), days=3)
    # one record in the hour being written now: not closed, so never compacted
    current = make_records("acme", 1, now, random.Random(8), days=1)[0]
    records.append(replace(current, timestamp=now, log_id="open-hour-record"))
    fs = s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region)
    write_small_files(fs, f"{s.s3_bucket}/{s.archive_prefix}", records, repeats=repeats)
    hours = {(f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}") for r in records}
    closed = {h for h in hours if hour_closed(*h, now, GRACE_S)}
    try:
        yield Layout(s, fs, s3_client(s), records, closed, hours - closed, now)
    finally:
        fs.delete_dir(f"{s.s3_bucket}/test-compact-{tag}")


@pytest.fixture
def layout(settings: Settings, require) -> Iterator[Layout]:  # type: ignore[no-untyped-def]
    """Every record once, in many small files per hour."""
    require("s3")
    yield from make_layout(settings, repeats=False)


@pytest.fixture
def repeated(settings: Settings, require) -> Iterator[Layout]:  # type: ignore[no-untyped-def]
    """As ``layout``, with one record of every hour in two of its files."""
    require("s3")
    yield from make_layout(settings, repeats=True)


def test_closed_hours_become_a_few_sorted_files_holding_every_record_once(repeated: Layout) -> None:
    layout = repeated
    before = {h: layout.hour_files(*h) for h in layout.closed_hours | layout.open_hours}
    hours = len(layout.closed_hours) + len(layout.open_hours)
    open_records = sum(
        1 for r in layout.records if (f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}") in layout.open_hours
    )
    assert layout.search_total() == len(layout.records) + hours  # one repeat per hour

    report = layout.compactor().run()

    assert not report.errors
    assert {(h.dt, h.hour) for h in report.hours} == layout.closed_hours
    assert sum(h.records_out for h in report.hours) == len(layout.records) - open_records
    assert sum(h.records_in - h.records_out for h in report.hours) == len(layout.closed_hours)  # repeats
    assert all(layout.hour_files(*h) == before[h] for h in layout.open_hours)
    for dt, hour in layout.closed_hours:
        names = layout.hour_files(dt, hour)
        assert 1 <= len(names) <= 4 and all(parse_output(n) for n in names), names
        for name in names:
            data = layout.client.get_object(
                Bucket=layout.settings.s3_bucket,
                Key=f"{layout.settings.archive_prefix}/tenant=acme/dt={dt}/hour={hour}/{name}",
            )["Body"].read()
            f = pq.ParquetFile(pa.BufferReader(data))
            meta = GroupMeta.from_json(f.metadata.metadata[META_KEY.encode()])
            assert set(meta.replaces) == set(before[(dt, hour)])
            assert all(f.metadata.row_group(0).column(i).is_stats_set for i in range(f.metadata.num_columns))
            rows = f.read(columns=["service", "timestamp"]).to_pylist()
            assert rows == sorted(rows, key=lambda r: (r["service"], r["timestamp"]))
    # open hours keep their repeats
    assert layout.search_total() == len(layout.records) + len(layout.open_hours)

    # a second run finds nothing to do
    again = layout.compactor().run()
    assert again.hours == [] and again.deleted == []


def test_each_compacted_hour_has_a_summary_beside_the_archive_counting_its_records(layout: Layout) -> None:
    report = layout.compactor().run()
    assert not report.errors
    root = summary_prefix(layout.settings.archive_prefix)
    for dt, hour in layout.closed_hours:
        listing = layout.client.list_objects_v2(
            Bucket=layout.settings.s3_bucket, Prefix=f"{root}/tenant=acme/dt={dt}/hour={hour}/"
        )
        (key,) = [o["Key"] for o in listing.get("Contents", [])]
        group = single_group(layout.hour_files(dt, hour))
        records = [
            r for r in layout.records if (f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}") == (dt, hour)
        ]
        assert parse_summary(key.rsplit("/", 1)[1]) == (group, len(records))
        body = json.loads(layout.client.get_object(Bucket=layout.settings.s3_bucket, Key=key)["Body"].read())
        expected = Counter((r.service, r.level.value) for r in records)
        assert {(s, lv): n for s, lv, n in body["by_service_level"]} == expected
    # nothing under the archive's own prefix is a summary: readers of the data never meet one
    data = f"{layout.settings.archive_prefix}/"
    keys = layout.client.list_objects_v2(Bucket=layout.settings.s3_bucket, Prefix=data)
    assert all(k["Key"].endswith(".parquet") for k in keys.get("Contents", []))
    assert layout.search_total() == len(layout.records)


def test_retention_deleting_a_day_deletes_its_summaries_too(layout: Layout) -> None:
    assert not layout.compactor().run().errors
    s = layout.settings
    dt, _ = min(layout.closed_hours)
    store = ArchiveStore(layout.client, s.s3_bucket, s.archive_prefix)
    store.delete(Deletion(COLD, f"{s.archive_prefix}/tenant=acme/dt={dt}/", "past retention", "acme"))

    def days(prefix: str) -> set[str]:
        listing = layout.client.list_objects_v2(Bucket=s.s3_bucket, Prefix=f"{prefix}/tenant=acme/")
        return {o["Key"].split("/dt=")[1][:10] for o in listing.get("Contents", [])}

    summarised = {d for d, _ in layout.closed_hours}
    assert days(s.archive_prefix) == {d for d, _ in layout.closed_hours | layout.open_hours} - {dt}
    assert days(summary_prefix(s.archive_prefix)) == summarised - {dt}


def test_strata_archive_sql_counts_every_record_once_while_sources_await_deletion(layout: Layout) -> None:
    compactor = layout.compactor(delete_after_s=3600.0)
    compactor._finish = lambda written, report: None  # type: ignore[method-assign]
    compactor.run()
    some_hour = sorted(layout.closed_hours)[0]
    assert len(layout.hour_files(*some_hour)) > 4  # sources and the group, side by side
    env = {
        **os.environ,
        "STRATA_ARCHIVE_PREFIX": layout.settings.archive_prefix,
        "STRATA_S3_ENDPOINT": layout.settings.s3_endpoint_url,
        "STRATA_S3_BUCKET": layout.settings.s3_bucket,
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "archive",
            "sql",
            "--tenant",
            "acme",
            "--format",
            "csv",
            "SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM logs",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    n = len(layout.records)
    assert out.stdout.splitlines()[1] == f"{n},{n}"
    assert layout.search_total() == n


def test_a_reader_counts_exactly_while_compaction_swaps_files(layout: Layout) -> None:
    expected = len(layout.records)
    counts: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                counts.append(layout.search_total())
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        report = layout.compactor(delete_after_s=2.0).run()
    finally:
        stop.set()
        reader.join(timeout=120)
    assert not errors, errors
    assert not report.errors
    assert len(counts) >= 2
    assert set(counts) == {expected}, counts
    assert all(len(layout.hour_files(*h)) <= 4 for h in layout.closed_hours)


@pytest.mark.parametrize("step", ["merged", "wrote-output", "written"])
def test_a_run_that_dies_midway_leaves_a_correct_archive_and_the_next_run_finishes(
    layout: Layout, step: str
) -> None:
    class Died(BaseException):  # as a kill: nothing in the run catches it
        pass

    def die(name: str) -> None:
        if name == step:
            raise Died(step)

    # a small target: several files per hour, so a run can die between two of them
    with pytest.raises(Died):
        layout.compactor(after_step=die, target_bytes=1500).run()
    assert layout.search_total() == len(layout.records)

    report = layout.compactor(target_bytes=1500).run()
    assert not report.errors
    assert layout.search_total() == len(layout.records)
    for h in layout.closed_hours:
        names = layout.hour_files(*h)
        assert 1 <= len(names) <= 4 and all(parse_output(n) for n in names), names


def cli(layout: Layout, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STRATA_ARCHIVE_PREFIX": layout.settings.archive_prefix,
        "STRATA_S3_ENDPOINT": layout.settings.s3_endpoint_url,
        "STRATA_S3_BUCKET": layout.settings.s3_bucket,
        "STRATA_ARCHIVE_COMPACT_DELETE_AFTER_S": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "archive", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_compact_command_says_what_it_would_do_then_does_it(layout: Layout) -> None:
    before = {h: layout.hour_files(*h) for h in layout.closed_hours}
    dry = cli(layout, "compact", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would merge tenant=acme") == len(layout.closed_hours)
    assert {h: layout.hour_files(*h) for h in layout.closed_hours} == before  # nothing changed

    other = cli(layout, "compact", "--tenant", "nobody")
    assert other.returncode == 0 and "0 hours merged" in other.stdout
    done = cli(layout, "compact", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("merged tenant=acme") == len(layout.closed_hours)
    assert all(len(layout.hour_files(*h)) <= 4 for h in layout.closed_hours)
    assert layout.search_total() == len(layout.records)

    bad = cli(layout, "compact", "--tenant", "x'; DROP")
    assert bad.returncode == 2 and "not a tenant id" in bad.stderr


def test_only_one_process_compacts_at_a_time(layout: Layout) -> None:
    import psycopg

    from connectors.s3.compaction import _COMPACT_LOCK_ID, CompactionBusy, compact

    with psycopg.connect(layout.settings.postgres_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_COMPACT_LOCK_ID,))
        with pytest.raises(CompactionBusy, match="another process is compacting"):
            compact(layout.settings)
        busy = cli(layout, "compact")
        assert busy.returncode == 1 and "another process is compacting" in busy.stderr
    assert not any(parse_output(n) for h in layout.closed_hours for n in layout.hour_files(*h))


def test_the_api_schedule_compacts_closed_hours(layout: Layout) -> None:
    import asyncio

    from connectors.s3.compaction import scheduled

    settings = layout.settings.model_copy(
        update={"archive_compact_interval_s": 0.2, "archive_compact_delete_after_s": 0.0}
    )

    async def run_until_compacted() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(scheduled(settings, stop))
        try:
            for _ in range(300):
                await asyncio.sleep(0.2)
                done = await asyncio.to_thread(
                    lambda: all(
                        all(parse_output(n) for n in layout.hour_files(*h)) for h in layout.closed_hours
                    )
                )
                if done:
                    return
            raise AssertionError("the schedule did not compact the closed hours within a minute")
        finally:
            stop.set()
            await asyncio.wait_for(task, 120)

    asyncio.run(run_until_compacted())
    assert layout.search_total() == len(layout.records)


def test_a_search_that_listed_before_the_swap_reads_the_merged_files_when_its_files_are_gone(
    layout: Layout,
) -> None:
    cold = ColdArchive(layout.fs, layout.settings.s3_bucket, layout.settings.archive_prefix)
    listed = ColdArchive.files
    stale: dict[tuple[str, int, int], list[str]] = {}

    def files_listed_before_the_compaction(self: ColdArchive, tenant: str, start: int, end: int) -> list[str]:
        key = (tenant, start, end)
        if key not in stale:
            stale[key] = listed(self, tenant, start, end)
            layout.compactor(delete_after_s=0.0).run()  # merges, then deletes the listed files
            return stale[key]
        return listed(self, tenant, start, end)

    cold.files = files_listed_before_the_compaction.__get__(cold)  # type: ignore[method-assign]
    start = int((layout.now - timedelta(days=60)).timestamp() * 1e6)
    end = int((layout.now + timedelta(hours=1)).timestamp() * 1e6)
    page = cold.search(TierQuery("acme", MatchAll(), start, end, "desc", 5))
    assert page.total == len(layout.records)
    newest = sorted(layout.records, key=order_key, reverse=True)[:5]
    assert [r.log_id for r in page.records] == [r.log_id for r in newest]
    assert not any(parse_output(n) is None for h in layout.closed_hours for n in layout.hour_files(*h))
