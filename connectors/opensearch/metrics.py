"""Log metrics in OpenSearch: one index family per resolution, its template, and the reader the
API's ``/v1/metrics/logs`` calls.

Indices are ``<prefix>.metrics-1m-YYYY.MM`` (minutes, monthly), ``<prefix>.metrics-1h-YYYY`` and
``<prefix>.metrics-1d-YYYY`` (yearly), so retention drops whole indices; the dot keeps them out of
the hot tier's ``<prefix>-*`` template, searches and retention. A document is one contribution
(:mod:`core.metrics`): a bucket's value is the sum of its contributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.metrics import RESOLUTIONS

_LABEL_FIELD = {"level": "level", "service": "service", "pattern": "pattern", "host": "host"}


def metrics_index(index_prefix: str, suffix: str) -> str:
    return f"{index_prefix}.metrics-{suffix}"


def metrics_pattern(index_prefix: str, resolution: str | None = None) -> str:
    return f"{index_prefix}.metrics-{resolution}-*" if resolution else f"{index_prefix}.metrics-*"


def metrics_index_template(index_prefix: str, *, refresh_interval: str = "5s") -> dict[str, Any]:
    """The composable template of every metrics index: keywords to filter and group on, the bucket
    as epoch seconds, the values as longs; nothing else is indexed."""
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [metrics_pattern(index_prefix)],
        "priority": 110,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "refresh_interval": refresh_interval,
                # dashboards read tenant+service slices of time ranges: store them together
                "sort.field": ["tenant", "service", "bucket"],
                "sort.order": ["asc", "asc", "asc"],
            },
            "mappings": {
                "dynamic": "strict",
                "_source": {"enabled": True},
                "properties": {
                    "tenant": keyword,
                    "service": keyword,
                    "level": keyword,
                    "pattern": keyword,
                    "host": keyword,
                    "bucket": {"type": "long"},
                    "count": {"type": "long", "index": False},
                    "bytes": {"type": "long", "index": False},
                },
            },
        },
    }


@dataclass(frozen=True)
class MetricsQuery:
    tenant: str
    resolution: str
    start_s: int  # inclusive, aligned to step_s
    end_s: int  # exclusive
    step_s: int
    metric: str = "count"  # or bytes
    group_by: str | None = None
    services: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    max_series: int = 100


def query_body(q: MetricsQuery) -> dict[str, Any]:
    """One aggregation: the group's values (top ``max_series`` by total), each a histogram of
    ``step_s`` buckets summing the contributions' ``metric``."""
    filters: list[dict[str, Any]] = [
        {"term": {"tenant": q.tenant}},
        {"range": {"bucket": {"gte": q.start_s, "lt": q.end_s}}},
    ]
    for field, values in (
        ("service", q.services),
        ("level", q.levels),
        ("host", q.hosts),
        ("pattern", q.patterns),
    ):
        if values:
            filters.append({"terms": {field: list(values)}})
    histogram = {
        "histogram": {"field": "bucket", "interval": q.step_s, "min_doc_count": 1},
        "aggs": {"v": {"sum": {"field": q.metric}}},
    }
    if q.group_by is None:
        aggs: dict[str, Any] = {"h": histogram}
    else:
        aggs = {
            "g": {
                "terms": {
                    "field": _LABEL_FIELD[q.group_by],
                    "size": q.max_series + 1,  # one more: to say the answer was cut
                    "order": {"total": "desc"},
                },
                "aggs": {"total": {"sum": {"field": q.metric}}, "h": histogram},
            }
        }
    return {"query": {"bool": {"filter": filters}}, "size": 0, "aggs": aggs}


@dataclass(frozen=True)
class MetricsAnswer:
    series: list[dict[str, Any]]
    truncated: bool


def _points(agg: dict[str, Any]) -> list[list[int]]:
    return [[int(b["key"]), int(b["v"]["value"])] for b in agg["buckets"]]


def parse_answer(q: MetricsQuery, result: dict[str, Any]) -> MetricsAnswer:
    aggs = result.get("aggregations", {})
    if q.group_by is None:
        points = _points(aggs["h"]) if aggs else []
        return MetricsAnswer([{"labels": {}, "points": points}] if points else [], False)
    groups = aggs.get("g", {}).get("buckets", []) if aggs else []
    series = [{"labels": {q.group_by: str(g["key"])}, "points": _points(g["h"])} for g in groups]
    return MetricsAnswer(series[: q.max_series], len(series) > q.max_series)


class MetricsReader:
    """Reads the metric indices of one index prefix."""

    def __init__(self, client: Any, index_prefix: str) -> None:
        self.client = client
        self.prefix = index_prefix

    def read(self, q: MetricsQuery) -> MetricsAnswer:
        if q.resolution not in RESOLUTIONS:
            raise ValueError(f"unknown resolution {q.resolution!r}")
        result = self.client.search(
            index=metrics_pattern(self.prefix, q.resolution),
            body=query_body(q),
            params={"ignore_unavailable": "true", "allow_no_indices": "true", "filter_path": "aggregations"},
        )
        return parse_answer(q, result)


def ensure_template(client: Any, index_prefix: str) -> None:
    client.indices.put_index_template(
        name=f"{index_prefix}.metrics", body=metrics_index_template(index_prefix)
    )
