"""The cold tier's pages over a range of many hourly partitions on the real S3 server: the reader
stops at the partitions that fill the page, yet every page is exactly what a full scan would give,
paging reaches every match once, and the total is exact or says it is a lower bound."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from connectors.s3.archive import ColdArchive, s3_filesystem
from connectors.s3.client import s3_client
from connectors.s3.compaction import ArchiveCompactor
from core.query import MatchAll, Node, Position, TierQuery, matches, order_key, parse
from infra.settings import Settings
from schemas.record import Record, micros
from tests.integration.search_support import make_records, now_utc
from tests.support.tiers import write_archive_file

pytestmark = pytest.mark.integration


@dataclass
class Archive:
    cold: ColdArchive
    records: list[Record]
    now: datetime

    def span(self) -> tuple[int, int]:
        return micros(self.now - timedelta(days=10)), micros(self.now + timedelta(hours=1))

    def expected(self, ast: Node, order: str, start: int, end: int) -> list[Record]:
        hits = [r for r in self.records if matches(ast, r) and start <= micros(r.timestamp) < end]
        return sorted(hits, key=order_key, reverse=order == "desc")

    def pages(self, ast: Node, order: str, limit: int, start: int, end: int) -> list[Any]:
        out = []
        after = None
        while True:
            page = self.cold.search(TierQuery("acme", ast, start, end, order, limit, after))
            out.append(page)
            if len(page.records) < limit:
                return out
            last = page.records[-1]
            after = Position(micros(last.timestamp), last.log_id)


@pytest.fixture(params=["as written", "compacted"])
def archive(request, settings: Settings, require) -> Iterator[Archive]:  # type: ignore[no-untyped-def]
    """Records of 7 days, in a few hours of each day (ties at page edges): one file per hour as
    written, or compacted into files sorted by service with row groups of a few rows each, so
    that statistics can skip most row groups of a service or time filter."""
    require("s3")
    tag = f"test-coldpage-{uuid.uuid4().hex[:10]}"
    root = f"{settings.s3_bucket}/{tag}"
    fs = s3_filesystem(
        settings.s3_endpoint_url, settings.s3_access_key, settings.s3_secret_key, settings.s3_region
    )
    now = now_utc()
    records = make_records("acme", 300, now, random.Random(11), days=7)
    hours: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        hours[f"dt={r.timestamp:%Y-%m-%d}/hour={r.timestamp:%H}"].append(r)
    for part, group in hours.items():
        write_archive_file(fs, f"{root}/logs/tenant=acme/{part}/part-{uuid.uuid4()}-0-0.parquet", group)
    if request.param == "compacted":
        client = s3_client(settings)
        options: dict[str, Any] = {"grace_s": 0, "row_group_rows": 3, "delete_after_s": 0}
        compactor = ArchiveCompactor(client, settings.s3_bucket, f"{tag}/logs", **options)
        assert not compactor.run(now=now + timedelta(hours=2)).errors
    try:
        yield Archive(ColdArchive(fs, settings.s3_bucket, f"{tag}/logs"), records, now)
    finally:
        fs.delete_dir(root)


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("query", ["", "level:ERROR", "service:checkout timeout", "service:auth level:WARN"])
def test_paging_over_many_hours_gives_every_match_once_in_order(
    archive: Archive, order: str, query: str
) -> None:
    ast = parse(query)
    start, end = archive.span()
    expected = archive.expected(ast, order, start, end)
    assert len(expected) >= 12, "the query should match several pages"
    pages = archive.pages(ast, order, 6, start, end)
    got = [r.log_id for page in pages for r in page.records]
    assert got == [r.log_id for r in expected]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_a_match_all_first_page_counts_every_record_exactly(archive: Archive, order: str) -> None:
    # a range starting and ending inside an hour: footers count whole hours, the edges are scanned
    start = micros(archive.now - timedelta(days=5, minutes=30))
    end = micros(archive.now - timedelta(hours=2, minutes=17))
    expected = archive.expected(MatchAll(), order, start, end)
    page = archive.cold.search(TierQuery("acme", MatchAll(), start, end, order, 5))
    assert [r.log_id for r in page.records] == [r.log_id for r in expected[:5]]
    assert (page.total, page.total_exact) == (len(expected), True)


def test_a_filtered_first_page_gives_a_lower_bound_and_the_last_page_knows_it_all(archive: Archive) -> None:
    ast = parse("level:ERROR")
    start, end = archive.span()
    expected = archive.expected(ast, "desc", start, end)
    first = archive.cold.search(TierQuery("acme", ast, start, end, "desc", 3))
    assert [r.log_id for r in first.records] == [r.log_id for r in expected[:3]]
    assert first.total_exact is False
    assert first.total is not None and 3 <= first.total < len(expected)

    everything = archive.cold.search(TierQuery("acme", ast, start, end, "desc", len(expected) + 1))
    assert (everything.total, everything.total_exact) == (len(expected), True)
    assert len(everything.records) == len(expected)


def test_a_page_with_nothing_left_after_the_cursor_is_empty(archive: Archive) -> None:
    start, end = archive.span()
    oldest = archive.expected(MatchAll(), "desc", start, end)[-1]
    after = Position(micros(oldest.timestamp), oldest.log_id)
    page = archive.cold.search(TierQuery("acme", parse("level:ERROR"), start, end, "desc", 5, after))
    assert page.records == []
    assert page.total_exact is False
