"""The warm tier without storage-attached indexes (the default) against the real Cassandra: every
search feature answers what a brute-force filter over the same records answers, a lookup by id
scans only the partitions of its range, newest first, within the scan budget, and the ingest job's
set-up drops the indexes that are not wanted."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.cassandra.indexes import existing_indexes
from connectors.cassandra.search import WarmSearch, connect
from core.query import Position, TierQuery, matches, order_key, parse
from infra.settings import Settings
from schemas.projections import cql_day
from schemas.record import Record, micros
from tests.integration.search_support import make_records, now_utc
from tests.support.tiers import create_warm_tables, write_warm

pytestmark = pytest.mark.integration

DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def warm(settings: Settings) -> Iterator[dict[str, Any]]:
    import uuid

    keyspace = f"warm_scan_{uuid.uuid4().hex[:10]}"
    session = connect(settings.cassandra_contact_points, settings.cassandra_port, timeout_s=30)
    now = now_utc()
    rng = random.Random(11)
    records = make_records("tenant-a", 900, now, rng, days=8) + make_records(
        "tenant-b", 200, now, rng, days=8
    )
    try:
        create_warm_tables(session, keyspace)
        write_warm(session, keyspace, "logs", records)
        search = WarmSearch(session, keyspace)
        try:
            yield {"session": session, "keyspace": keyspace, "records": records, "now": now, "search": search}
        finally:
            search.close()
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        session.cluster.shutdown()


def _window(w: dict[str, Any]) -> tuple[int, int]:
    now_us = micros(w["now"])
    return now_us - 50 * DAY_US, now_us + DAY_US


def _mine(w: dict[str, Any], tenant: str = "tenant-a") -> list[Record]:
    start, end = _window(w)
    return [r for r in w["records"] if r.tenant == tenant and start <= micros(r.timestamp) < end]


def test_the_table_has_no_index(warm: dict[str, Any]) -> None:
    assert existing_indexes(warm["session"], warm["keyspace"], "logs") == set()


def test_get_by_id_finds_records_of_any_day_in_the_order_asked(warm: dict[str, Any]) -> None:
    mine = sorted(_mine(warm), key=order_key)
    picked = [mine[0], mine[len(mine) // 3], mine[-1], mine[len(mine) // 2]]
    start, end = _window(warm)
    found = warm["search"].get("tenant-a", [r.log_id for r in picked] + ["0" * 32], start, end)
    assert found == picked


def test_get_by_id_keeps_to_the_tenant_and_the_range(warm: dict[str, Any]) -> None:
    record = _mine(warm)[5]
    ts = micros(record.timestamp)
    search: WarmSearch = warm["search"]
    assert search.get("tenant-b", [record.log_id], *_window(warm)) == []
    assert search.get("tenant-a", [record.log_id], ts + 1, ts + DAY_US) == []
    assert search.get("tenant-a", [record.log_id], ts - DAY_US, ts) == []
    assert search.get("tenant-a", [record.log_id], ts, ts + 1) == [record]


def test_get_by_id_reads_the_newest_day_first_and_stops_at_the_scan_budget(warm: dict[str, Any]) -> None:
    start, end = _window(warm)
    by_day: dict[str, list[Record]] = {}
    for r in _mine(warm):
        by_day.setdefault(cql_day(r.timestamp), []).append(r)
    newest, oldest = max(by_day), min(by_day)
    new_record, old_record = by_day[newest][0], by_day[oldest][0]
    ids = [new_record.log_id, old_record.log_id]
    # A budget of exactly the newest day's rows: that day is read whole, nothing older.
    tight = WarmSearch(warm["session"], warm["keyspace"], scan_rows=len(by_day[newest]))
    try:
        assert tight.get("tenant-a", ids, start, end) == [new_record]
    finally:
        tight.close()
    assert warm["search"].get("tenant-a", ids, start, end) == [new_record, old_record]


def _queries(w: dict[str, Any]) -> list[str]:
    mine = _mine(w)
    trace = next(r.trace_id for r in mine if r.trace_id)
    host = mine[0].host
    return [
        f"trace_id:{trace}",
        "attributes.http.status:503",
        "region_code:eu AND level:ERROR",
        f"host:{host}",
        "level>=WARN",
        "payment",
        f"service:checkout AND host:{host} AND NOT timeout",
        "log_id:" + mine[3].log_id,
    ]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_filters_without_indexes_match_brute_force(warm: dict[str, Any], order: str) -> None:
    start, end = _window(warm)
    search: WarmSearch = warm["search"]
    for q in _queries(warm):
        ast = parse(q)
        assert search.plan(ast).where == [], q
        expected = sorted((r for r in _mine(warm) if matches(ast, r)), key=order_key, reverse=order == "desc")
        page = search.search(TierQuery("tenant-a", ast, start, end, order=order, limit=1000))
        assert [r.log_id for r in page.records] == [r.log_id for r in expected], q
        assert page.total == len(expected) and page.total_exact, q
        assert expected, q  # each query finds something, so the comparison means something


def test_a_filtered_page_continues_after_its_last_record(warm: dict[str, Any]) -> None:
    start, end = _window(warm)
    ast = parse("level>=WARN")
    expected = sorted((r for r in _mine(warm) if matches(ast, r)), key=order_key, reverse=True)
    search: WarmSearch = warm["search"]
    seen: list[str] = []
    after = None
    for _ in range(100):
        page = search.search(TierQuery("tenant-a", ast, start, end, limit=37, after=after))
        seen += [r.log_id for r in page.records]
        if len(page.records) < 37:
            break
        last = page.records[-1]
        after = Position(micros(last.timestamp), last.log_id)
    assert seen == [r.log_id for r in expected]


def test_histogram_and_top_without_indexes_match_brute_force(warm: dict[str, Any]) -> None:
    start, end = _window(warm)
    search: WarmSearch = warm["search"]
    interval = 6 * 3600 * 10**6
    for q in ("attributes.http.status:503", "level:ERROR", ""):
        ast = parse(q)
        hits = [r for r in _mine(warm) if matches(ast, r)]
        hist = search.histogram(TierQuery("tenant-a", ast, start, end), interval)
        expected_hist = Counter(
            (micros(r.timestamp) - micros(r.timestamp) % interval, r.level.value) for r in hits
        )
        assert hist.complete and dict(hist.counts) == dict(expected_hist), q
        top = search.top(TierQuery("tenant-a", ast, start, end), "host", 10)
        assert top.complete and dict(top.counts) == dict(Counter(r.host for r in hits)), q


def test_a_scan_past_the_budget_says_so(warm: dict[str, Any]) -> None:
    start, end = _window(warm)
    tight = WarmSearch(warm["session"], warm["keyspace"], scan_rows=50)
    try:
        page = tight.search(TierQuery("tenant-a", parse("level:FATAL"), start, end, limit=1000))
        assert not page.total_exact
        assert any("stopped after reading 50 rows" in n for n in page.notes)
        top = tight.top(TierQuery("tenant-a", parse("level:FATAL"), start, end), "host", 5)
        assert not top.complete
    finally:
        tight.close()


def test_the_ingest_set_up_drops_the_indexes_not_wanted(
    settings: Settings, unique_name: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from opensearchpy import OpenSearch

    from connectors.opensearch.metrics import metrics_template_name
    from jobs.ingest.job import IngestOptions, prepare_tiers
    from tests.support.stack import cassandra_keyspace, kafka_topic

    keyspace, prefix = unique_name("warm_setup"), unique_name("strata-setup").replace("_", "-")
    with (
        cassandra_keyspace(settings, keyspace) as session,
        kafka_topic(settings, unique_name("setup-dlq")) as dlq,
    ):
        options = IngestOptions.from_settings(settings, keyspace=keyspace, index_prefix=prefix, dlq_topic=dlq)
        client = OpenSearch(settings.opensearch_endpoint)
        try:
            # A deployment from before: the table with all five of Strata's indexes, and one of
            # the operator's own, which the set-up must leave alone.
            prepare_tiers(
                settings.model_copy(update={"warm_indexes": "log_id,level,host,trace_id,attributes"}), options
            )
            session.execute(
                f"CREATE INDEX ops_environment ON {keyspace}.logs (environment) USING 'sai'", timeout=120
            )
            assert existing_indexes(session, keyspace, "logs") == {
                "logs_log_id_sai", "logs_level_sai", "logs_host_sai", "logs_trace_id_sai",
                "logs_attributes_sai", "ops_environment",
            }  # fmt: skip

            with caplog.at_level(logging.INFO, logger="connectors.cassandra.indexes"):
                prepare_tiers(settings.model_copy(update={"warm_indexes": "trace_id"}), options)
            assert existing_indexes(session, keyspace, "logs") == {"logs_trace_id_sai", "ops_environment"}
            dropped = [r.getMessage() for r in caplog.records if "dropping the warm index" in r.getMessage()]
            assert len(dropped) == 4 and any(f"{keyspace}.logs_attributes_sai" in m for m in dropped)

            prepare_tiers(settings.model_copy(update={"warm_indexes": ""}), options)
            assert existing_indexes(session, keyspace, "logs") == {"ops_environment"}
        finally:
            client.indices.delete_index_template(name=prefix, ignore=[404])
            client.indices.delete_index_template(name=metrics_template_name(prefix), ignore=[404])
