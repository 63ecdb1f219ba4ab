"""The metrics reader against a real OpenSearch: chunks it reuses give the answer a full aggregation
gives, and any write into a reused chunk (a late contribution, a rewrite, a deletion) shows in the
next answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.opensearch.metrics import (
    MetricsAnswer,
    MetricsQuery,
    MetricsReader,
    MetricsStore,
    drop_metrics,
    ensure_template,
    metrics_index,
    metrics_pattern,
    parse_answer,
    query_body,
)
from core.metrics import METRICS_TIER, Series, contribution_id, index_suffix
from core.retention import Deletion
from infra.settings import Settings

pytestmark = pytest.mark.integration

DAY = 86400
START = 1_764_115_200 - 10 * DAY  # ten whole days, ending at a midnight
END = START + 10 * DAY
SERVICES = ("api", "db", "web")


@pytest.fixture
def world(settings: Settings, require, unique_name: Callable[[str], str]) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    require("opensearch")
    from opensearchpy import OpenSearch, helpers

    from connectors.opensearch.search import client

    prefix = unique_name("mreader").lower()
    raw = OpenSearch(settings.opensearch_endpoint, timeout=60)
    ensure_template(raw, prefix)

    def write(service: str, res: str, bucket: int, count: int, offset: int = 0) -> None:
        series = Series("acme", service, "INFO", "_none", "_other")
        raw.index(
            index=metrics_index(prefix, index_suffix(res, bucket)),
            id=contribution_id(series, res, bucket, 0, offset),
            body={**series.__dict__, "bucket": bucket, "count": count, "bytes": count * 10},
            refresh="true",
        )

    actions = []
    for n, service in enumerate(SERVICES):
        for res, size in (("1d", DAY), ("1h", 3600), ("1m", 60)):
            end = START + DAY if res == "1m" else END  # a day of minutes is 24 hour-chunks
            for bucket in range(START, end, size):
                series = Series("acme", service, "INFO", "_none", "_other")
                actions.append(
                    {
                        "_index": metrics_index(prefix, index_suffix(res, bucket)),
                        "_id": contribution_id(series, res, bucket, 0, 0),
                        "_source": {
                            **series.__dict__,
                            "bucket": bucket,
                            "count": (bucket // size) % 7 + n,
                            "bytes": 1,
                        },
                    }
                )
    helpers.bulk(raw, actions, refresh="true")
    os_client = client(settings.opensearch_endpoint, timeout_s=30)
    try:
        yield {"reader": MetricsReader(os_client, prefix), "client": os_client, "raw": raw, "write": write}
    finally:
        drop_metrics(raw, prefix)


def full(world: dict[str, Any], q: MetricsQuery) -> MetricsAnswer:
    """One aggregation over the whole range, nothing reused: the reference answer."""
    result = world["client"].search(
        index=metrics_pattern(world["reader"].prefix, q.resolution),
        body=query_body(q),
        params={"filter_path": "aggregations"},
    )
    return parse_answer(q, result)


def value(answer: MetricsAnswer, service: str, at: int) -> int | None:
    for s in answer.series:
        if s["labels"].get("service", service) == service:
            return dict((t, v) for t, v in s["points"]).get(at)
    return None


def test_reused_chunks_answer_as_a_full_aggregation_and_see_every_later_write(world: dict[str, Any]) -> None:
    reader: MetricsReader = world["reader"]
    by_service = MetricsQuery("acme", "1h", START, END, 3600, group_by="service")
    first = reader.read(by_service)
    assert first == full(world, by_service)
    assert [s["labels"]["service"] for s in first.series] == ["web", "db", "api"]  # largest first
    assert sum(len(s["points"]) for s in first.series) == 3 * 10 * 24
    assert reader.read(by_service) == first and reader.last_recomputed == 0

    # A late record for day 2: another contribution to a bucket already shown. Only that day is
    # aggregated again, and the bucket is the sum of both contributions.
    old = START + 2 * DAY + 5 * 3600
    before = value(first, "db", old)
    assert before is not None
    world["write"]("db", "1h", old, 1000, offset=77)
    late = reader.read(by_service)
    assert value(late, "db", old) == before + 1000
    assert late == full(world, by_service) and reader.last_recomputed == 1

    # A rewrite of that contribution (a restart recounting into the same id) with another count.
    world["write"]("db", "1h", old, 400, offset=77)
    rewritten = reader.read(by_service)
    assert value(rewritten, "db", old) == before + 400
    assert rewritten == full(world, by_service)

    # Another late contribution on day 4, and a deletion of day 0 (a tenant's shorter retention).
    day4 = START + 4 * DAY + 3600
    world["write"]("api", "1h", day4, 5, offset=9)
    keep_from = datetime.fromtimestamp(START + DAY, UTC).date()
    target = f"{metrics_pattern(reader.prefix, '1h')} tenant=acme before {keep_from.isoformat()}"
    MetricsStore(world["raw"], reader.prefix).delete(Deletion(METRICS_TIER, target, "test", tenant="acme"))
    after = reader.read(by_service)
    assert after == full(world, by_service)
    assert value(after, "api", day4) == value(first, "api", day4) + 5  # type: ignore[operator]
    assert min(t for s in after.series for t, _ in s["points"]) == START + DAY
    assert reader.last_recomputed == 1  # day 4; day 0 has no documents left to aggregate


def test_a_shifting_range_filters_and_a_top_n_that_changes(world: dict[str, Any]) -> None:
    reader: MetricsReader = world["reader"]
    # A dashboard whose range moves with the clock: the first and last chunks change, the rest
    # are reused.
    for shift in (0, 3600, 7200):
        q = MetricsQuery("acme", "1h", START + 3 * 3600 + shift, END - 5000 + shift, 3600, group_by="service")
        assert reader.read(q) == full(world, q)
    assert reader.last_recomputed == 2
    # Fewer series than groups: the top two, said to be cut; then one more service grows past them.
    top2 = MetricsQuery("acme", "1h", START, END, 6 * 3600, group_by="service", max_series=2)
    assert reader.read(top2) == full(world, top2) and reader.read(top2).truncated
    world["write"]("api", "1h", START + 7 * DAY, 1_000_000, offset=5)
    grown = reader.read(top2)
    assert grown == full(world, top2)
    assert grown.series[0]["labels"]["service"] == "api"
    # Minutes in hour chunks, a filter, no grouping, bytes.
    minutes = MetricsQuery("acme", "1m", START, START + DAY, 300, metric="bytes", services=("web",))
    assert reader.read(minutes) == full(world, minutes)
    world["write"]("web", "1m", START + 13 * 3600 + 120, 3)
    assert reader.read(minutes) == full(world, minutes) and reader.last_recomputed == 1
    # Days, in calendar-month chunks.
    days = MetricsQuery("acme", "1d", START - 40 * DAY, END, DAY, group_by="service")
    assert reader.read(days) == full(world, days)
    world["write"]("db", "1d", START + 2 * DAY, 11, offset=3)
    assert reader.read(days) == full(world, days) and reader.last_recomputed == 1
    nothing = MetricsQuery("nobody", "1h", START, END, 3600, group_by="service")
    assert reader.read(nothing) == full(world, nothing) == MetricsAnswer([], False)
