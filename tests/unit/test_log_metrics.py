"""Log metrics' pure logic: buckets, contributions and their ids, the store's query and answer."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from connectors.opensearch.metrics import (
    MetricsQuery,
    chunk_spans,
    data_body,
    parse_answer,
    plan_body,
    query_body,
)
from core.metrics import (
    MAX_HOSTS_PER_SERVICE,
    OTHER_HOST,
    RESOLUTIONS,
    STEPS,
    DictStore,
    MetricsError,
    ServiceAccumulator,
    bucket_start,
    index_suffix,
    parse_step,
    resolution_for_step,
)

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z, an hour boundary


def _acc() -> ServiceAccumulator:
    return ServiceAccumulator(DictStore(), DictStore(), DictStore())


def _totals(docs: list[tuple[str, str, dict]]) -> Counter[tuple[str, int, str]]:
    """Sum of contributions per (resolution, bucket, level), as a reader adds them up."""
    out: Counter[tuple[str, int, str]] = Counter()
    for _, suffix, doc in docs:
        out[(suffix.split("-")[0], doc["bucket"], doc["level"])] += doc["count"]
    return out


def test_buckets_and_the_resolution_a_step_reads() -> None:
    assert bucket_start(T0 + 125, "1m") == T0 + 120
    assert bucket_start(T0 + 125, "1h") == T0
    assert bucket_start(T0 + 125, "1d") == T0 - T0 % 86400
    assert [resolution_for_step(parse_step(s)) for s in ("1m", "5m", "1h", "6h", "1d")] == [
        "1m",
        "1m",
        "1h",
        "1h",
        "1d",
    ]
    with pytest.raises(MetricsError, match="step '2m' is not one of"):
        parse_step("2m")
    assert index_suffix("1m", T0) == "1m-2025.11" and index_suffix("1d", T0) == "1d-2025"


def test_a_record_counts_in_its_minute_hour_and_day() -> None:
    acc = _acc()
    acc.add("ERROR", "p1", "h1", T0 + 5, 10, 0, 100, now_ms=1)
    acc.add("ERROR", "p1", "h1", T0 + 50, 20, 0, 101, now_ms=2)
    acc.add("INFO", None, "h1", T0 + 65, 7, 0, 102, now_ms=3)
    docs = acc.flush("acme", "api")
    assert _totals(docs) == {
        ("1m", T0, "ERROR"): 2,
        ("1m", T0 + 60, "INFO"): 1,
        ("1h", T0, "ERROR"): 2,
        ("1h", T0, "INFO"): 1,
        ("1d", T0 - T0 % 86400, "ERROR"): 2,
        ("1d", T0 - T0 % 86400, "INFO"): 1,
    }
    assert {d["pattern"] for _, _, d in docs} == {"p1", "_none"}
    assert sum(d["bytes"] for _, s, d in docs if s.startswith("1h")) == 37
    assert acc.flush("acme", "api") == [], "nothing changed since the last flush"


def test_a_restored_state_rewrites_the_same_ids_and_a_fresh_state_adds_new_ones() -> None:
    first = _acc()
    first.add("ERROR", "p", "h", T0, 1, 0, 100, now_ms=1)
    first.add("ERROR", "p", "h", T0 + 1, 1, 0, 101, now_ms=1)
    before = {i: d["count"] for i, _, d in first.flush("acme", "api")}
    first.add("ERROR", "p", "h", T0 + 2, 1, 0, 102, now_ms=2)
    again = {i: d["count"] for i, _, d in first.flush("acme", "api")}
    assert again.keys() == before.keys() and all(v == 3 for v in again.values())

    # a replay: new state, only records past the group's mark (offset 103 on) are counted
    replay = _acc()
    replay.add("ERROR", "p", "h", T0 + 3, 1, 0, 103, now_ms=3)
    added = {i: d["count"] for i, _, d in replay.flush("acme", "api")}
    assert not added.keys() & again.keys()
    assert sum(again.values()) + sum(added.values()) == 3 * 4  # three resolutions, four records


def test_an_idle_contribution_closes_and_a_late_record_opens_another() -> None:
    acc = _acc()
    acc.add("WARN", "p", "h", T0, 1, 0, 100, now_ms=0)
    first = {i for i, _, _ in acc.flush("acme", "api")}
    assert acc.close_idle(now_ms=599_000, idle_s=600) == 3
    assert acc.close_idle(now_ms=601_000, idle_s=600) == 0
    acc.add("WARN", "p", "h", T0 + 1, 1, 1, 7, now_ms=700_000)
    late = acc.flush("acme", "api")
    assert not {i for i, _, _ in late} & first
    assert all(d["count"] == 1 for _, _, d in late)


def test_hosts_past_the_cap_count_as_other() -> None:
    acc = _acc()
    for n in range(MAX_HOSTS_PER_SERVICE + 5):
        acc.add("INFO", "p", f"host-{n}", T0, 1, 0, n, now_ms=0)
    docs = acc.flush("acme", "api")
    minute = [d for _, s, d in docs if s.startswith("1m")]
    assert len({d["host"] for d in minute}) == MAX_HOSTS_PER_SERVICE + 1
    assert sum(d["count"] for d in minute if d["host"] == OTHER_HOST) == 5
    assert sum(d["count"] for d in minute) == MAX_HOSTS_PER_SERVICE + 5


def test_query_filters_by_tenant_and_range_and_groups_by_a_label() -> None:
    q = MetricsQuery("acme", "1h", T0, T0 + 86400, 3600, "bytes", "level", services=("api",), max_series=2)
    body = query_body(q)
    filters = body["query"]["bool"]["filter"]
    assert {"term": {"tenant": "acme"}} in filters
    assert {"range": {"bucket": {"gte": T0, "lt": T0 + 86400}}} in filters
    assert {"terms": {"service": ["api"]}} in filters
    group = body["aggs"]["g"]
    assert group["terms"]["field"] == "level" and group["terms"]["size"] == 3
    assert group["aggs"]["h"]["aggs"]["v"] == {"sum": {"field": "bytes"}}

    def bucket(key: str) -> dict:
        return {"key": key, "h": {"buckets": [{"key": T0, "v": {"value": 4.0}}]}}

    result = {"aggregations": {"g": {"buckets": [bucket("ERROR"), bucket("INFO"), bucket("WARN")]}}}
    answer = parse_answer(q, result)
    assert answer.truncated
    assert answer.series == [
        {"labels": {"level": "ERROR"}, "points": [(T0, 4)]},
        {"labels": {"level": "INFO"}, "points": [(T0, 4)]},
    ]


def test_retention_drops_whole_indices_past_the_default_and_a_tenants_older_buckets() -> None:
    from datetime import date

    from core.metrics import index_period_end, retention_plan
    from core.retention import Override, Retention, RetentionError, check_override, resolve

    assert index_period_end("1m-2025.12") == date(2026, 1, 1)
    assert index_period_end("1h-2025") == date(2026, 1, 1)
    assert index_period_end("1m-garbage") is None

    defaults = Retention(14, 45, 365)
    acme = resolve(defaults, Override(metrics_1m_days=7))
    assert (acme.metrics_1m_days, acme.metrics_1h_days, acme.archive_days) == (7, 365, 365)
    with pytest.raises(RetentionError, match="metrics_1m_days must be between 1 and 90"):
        check_override(defaults, Override(metrics_1m_days=91))

    def days(r: Retention) -> dict[str, int]:
        return {"1m": r.metrics_1m_days, "1h": r.metrics_1h_days, "1d": r.metrics_1d_days}

    today = date(2026, 3, 15)  # 90 days back: 2025-12-15; a year back: 2025-03-15
    drops, shorter = retention_plan(
        ["1m-2025.11", "1m-2025.12", "1m-2026.03", "1h-2024", "1h-2025", "1d-2024"],
        today,
        days(defaults),
        {"acme": days(acme), "globex": days(defaults)},
    )
    assert [s for s, _ in drops] == ["1h-2024", "1m-2025.11"]
    assert shorter == [("acme", "1m", date(2026, 3, 8))]


D0 = T0 - T0 % 86400


def test_a_range_is_read_in_chunks_that_every_step_of_its_resolution_divides() -> None:
    # chunks end at hours, days or calendar months, epoch-aligned
    assert chunk_spans(D0 - 3600, D0 + 86400 + 60, "1h") == [
        (D0 - 3600, D0),
        (D0, D0 + 86400),
        (D0 + 86400, D0 + 86400 + 60),
    ]
    assert chunk_spans(D0, D0, "1m") == []
    dec = int(datetime(2025, 12, 30, tzinfo=UTC).timestamp())
    jan = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    feb = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    assert chunk_spans(dec, feb + 86400, "1d") == [(dec, jan), (jan, feb), (feb, feb + 86400)]
    for resolution in RESOLUTIONS:
        steps = [s for s in STEPS.values() if resolution_for_step(s) == resolution]
        spans = chunk_spans(D0 - 400 * 86400, D0, resolution)
        for start, end in spans:
            # a chunk never straddles two indices, and each step bucket lies in one chunk
            assert index_suffix(resolution, start) == index_suffix(resolution, end - 1)
            assert all(end % step == 0 for step in steps) or end == D0
        assert len(spans) == {"1m": 400 * 24, "1h": 400, "1d": 14}[resolution]


def test_the_plan_says_what_each_chunk_holds_and_which_groups_answer() -> None:
    q = MetricsQuery("acme", "1h", D0, D0 + 2 * 86400, 3600, "count", "service", levels=("ERROR",))
    q = replace(q, max_series=5)
    body = plan_body(q, chunk_spans(q.start_s, q.end_s, "1h"))
    assert body["size"] == 0
    assert {"terms": {"level": ["ERROR"]}} in body["query"]["bool"]["filter"]
    days = body["aggs"]["d"]
    assert days["range"]["ranges"] == [{"from": D0 + i * 86400, "to": D0 + (i + 1) * 86400} for i in (0, 1)]
    assert days["aggs"] == {"hi": {"max": {"field": "_seq_no"}}, "sum": {"sum": {"field": "_seq_no"}}}
    assert body["aggs"]["g"]["terms"]["size"] == 6
    data = data_body(q, D0, D0 + 86400, ["api", "db"])
    assert {"terms": {"service": ["api", "db"]}} in data["query"]["bool"]["filter"]
    assert {"range": {"bucket": {"gte": D0, "lt": D0 + 86400}}} in data["query"]["bool"]["filter"]


def test_the_job_writes_metrics_as_often_as_the_setting_says() -> None:
    from pydantic import ValidationError

    from infra.settings import Settings
    from jobs.ingest.metrics import MetricsOptions

    options = MetricsOptions.from_settings(Settings(log_metrics_flush_s=12), "acme")
    assert (options.index_prefix, options.flush_s) == ("acme", 12)
    assert MetricsOptions.from_settings(Settings(), "acme").flush_s == 30
    with pytest.raises(ValidationError, match="at least 1"):
        Settings(log_metrics_flush_s=0)
