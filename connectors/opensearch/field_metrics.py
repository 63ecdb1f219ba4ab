"""Metrics from fields in OpenSearch: the indices of the rules' sketch contributions, their
template, the reader ``/v1/metrics/logs?rule=…`` calls, and their retention.

Indices are ``<prefix>.fields.metrics-1m-YYYY.MM``, ``<prefix>.fields.metrics-1h-YYYY`` and
``<prefix>.fields.metrics-1d-YYYY``: the log metrics' layout (:mod:`connectors.opensearch.metrics`)
under the index prefix ``<prefix>.fields``, so the same retention store and plan drop and trim
them, and neither the log metrics' ``<prefix>.metrics-*`` nor the hot tier's ``<prefix>-*``
pattern matches them. A document is one contribution (:mod:`core.fieldmetrics`): count, sum, min,
max, the records without a value, and the sketch's bucket counts (stored, not indexed).

Quantiles are not sums, so the reader fetches the contributions of the range and merges their
sketches per step in Python (:func:`core.fieldmetrics.merge_steps`); every statistic is computed
the same way from the merged sketch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.opensearch.metrics import MetricsStore, metrics_index, metrics_pattern
from core.fieldmetrics import merge_steps
from core.metrics import RESOLUTIONS

# The most contributions one answer reads: a year of minutes for one series is 525,600, which a
# dashboard asks for at 1h or 1d (read from the hour and day rollups) instead.
MAX_CONTRIBUTIONS = 200_000
SCAN_PAGE = 5000


def fields_prefix(index_prefix: str) -> str:
    return f"{index_prefix}.fields"


def field_metrics_index(index_prefix: str, suffix: str) -> str:
    return metrics_index(fields_prefix(index_prefix), suffix)


def field_metrics_pattern(index_prefix: str, resolution: str | None = None) -> str:
    return metrics_pattern(fields_prefix(index_prefix), resolution)


def field_metrics_template(index_prefix: str, *, refresh_interval: str = "5s") -> dict[str, Any]:
    """Keywords to filter on, the bucket as epoch seconds; values and sketches stored only."""
    keyword = {"type": "keyword"}
    stored_long = {"type": "long", "index": False}
    stored_double = {"type": "double", "index": False}
    return {
        "index_patterns": [field_metrics_pattern(index_prefix)],
        "priority": 111,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "refresh_interval": refresh_interval,
                # a chart reads one rule's slice of a time range: store it together
                "sort.field": ["tenant", "rule", "bucket"],
                "sort.order": ["asc", "asc", "asc"],
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "tenant": keyword,
                    "rule": keyword,
                    "service": keyword,
                    "level": keyword,
                    "bucket": {"type": "long"},
                    "count": stored_long,
                    "sum": stored_double,
                    "min": stored_double,
                    "max": stored_double,
                    "missing": stored_long,
                    # bucket index -> count: keys vary per document, so it is kept, never mapped
                    "sketch": {"type": "object", "enabled": False},
                },
            },
        },
    }


def ensure_field_template(client: Any, index_prefix: str) -> None:
    client.indices.put_index_template(
        name=fields_prefix(index_prefix), body=field_metrics_template(index_prefix)
    )


@dataclass(frozen=True)
class FieldQuery:
    tenant: str
    rule: str  # the rule's id
    resolution: str
    start_s: int  # inclusive, aligned to step_s
    end_s: int  # exclusive
    step_s: int
    stat: str = "count"
    group_by: str | None = None  # service or level
    services: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()


class TooManyContributions(ValueError):
    """The range holds more contributions than one answer reads."""


def query_filter(q: FieldQuery) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {"term": {"tenant": q.tenant}},
        {"term": {"rule": q.rule}},
        {"range": {"bucket": {"gte": q.start_s, "lt": q.end_s}}},
    ]
    if q.services:
        filters.append({"terms": {"service": list(q.services)}})
    if q.levels:
        filters.append({"terms": {"level": list(q.levels)}})
    return {"bool": {"filter": filters}}


def series_of(q: FieldQuery, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The endpoint's ``series`` from the contributions read: one per group, biggest count first."""
    steps = merge_steps(docs, q.step_s, q.stat, q.group_by)
    weight: dict[tuple[str, ...], int] = {}
    for doc in docs:
        key = (str(doc[q.group_by]),) if q.group_by else ()
        weight[key] = weight.get(key, 0) + int(doc["count"])
    ordered = sorted(steps, key=lambda k: (-weight.get(k, 0), k))
    return [
        {"labels": {q.group_by: k[0]} if q.group_by else {}, "points": steps[k]} for k in ordered if steps[k]
    ]


class FieldMetricsReader:
    """Reads the rule metric indices of one index prefix."""

    def __init__(self, client: Any, index_prefix: str) -> None:
        self.client = client
        self.prefix = index_prefix

    def contributions(self, q: FieldQuery) -> list[dict[str, Any]]:
        if q.resolution not in RESOLUTIONS:
            raise ValueError(f"unknown resolution {q.resolution!r}")
        index = field_metrics_pattern(self.prefix, q.resolution)
        params: dict[str, Any] = {"ignore_unavailable": "true", "allow_no_indices": "true"}
        total = self.client.count(index=index, body={"query": query_filter(q)}, params=params)["count"]
        if total > MAX_CONTRIBUTIONS:
            raise TooManyContributions(
                f"the range holds {total} stored values of this rule, more than {MAX_CONTRIBUTIONS} "
                "one answer reads; use a longer step (1h or 1d read the rollups) or a shorter range"
            )
        if total == 0:
            return []
        from opensearchpy.helpers import scan

        body = {
            "query": query_filter(q),
            "_source": ["bucket", "service", "level", "count", "sum", "min", "max", "sketch"],
        }
        return [
            hit["_source"]
            for hit in scan(self.client, index=index, query=body, size=SCAN_PAGE, scroll="1m", **params)
        ]

    def read(self, q: FieldQuery) -> list[dict[str, Any]]:
        return series_of(q, self.contributions(q))


class FieldMetricsStore(MetricsStore):
    """Retention of the rule metric indices: the log metrics' plan, on their own indices."""

    def __init__(self, client: Any, index_prefix: str) -> None:
        super().__init__(client, fields_prefix(index_prefix))
