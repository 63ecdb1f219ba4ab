"""Log metrics in OpenSearch: one index family per resolution, its template, and the reader the
API's ``/v1/metrics/logs`` calls.

Indices are ``<prefix>.metrics-1m-YYYY.MM`` (minutes, monthly), ``<prefix>.metrics-1h-YYYY`` and
``<prefix>.metrics-1d-YYYY`` (yearly), so retention drops whole indices; the dot keeps them out of
the hot tier's ``<prefix>-*`` template, searches and retention. A document is one contribution
(:mod:`core.metrics`): a bucket's value is the sum of its contributions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from core.metrics import METRICS_TIER, RESOLUTIONS, retention_plan
from core.retention import Deletion, Retention

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


class MetricsStore:
    """Retention of the metric indices (a :class:`core.retention.TierStore`): indices whose whole
    period is past the default are dropped; a tenant with fewer days has its older buckets deleted
    from the indices that stay."""

    tier = METRICS_TIER
    PAGE = 5000

    def __init__(self, client: Any, index_prefix: str) -> None:
        self.client = client
        self.prefix = index_prefix

    def _indices(self) -> dict[str, dict[str, Any]]:
        rows = self.client.cat.indices(index=metrics_pattern(self.prefix), format="json", bytes="b")
        return {row["index"]: row for row in rows}

    def plan(self, today: date, defaults: Retention, tenants: Mapping[str, Retention]) -> list[Deletion]:
        indices = self._indices()
        head = metrics_index(self.prefix, "")
        suffixes = {name[len(head) :]: name for name in indices if name.startswith(head)}
        drops, shorter = retention_plan(
            suffixes, today, _days(defaults), {t: _days(r) for t, r in tenants.items()}
        )
        out = [
            Deletion(
                METRICS_TIER,
                suffixes[suffix],
                reason,
                records=int(indices[suffixes[suffix]].get("docs.count") or 0),
                bytes=int(indices[suffixes[suffix]].get("store.size") or 0),
            )
            for suffix, reason in drops
        ]
        if not indices:
            return out
        for tenant, res, keep_from in shorter:
            target = f"{metrics_pattern(self.prefix, res)} tenant={tenant} before {keep_from.isoformat()}"
            count = self.client.count(
                index=metrics_pattern(self.prefix, res), body={"query": _older(tenant, keep_from)}
            )["count"]
            if count:
                days = _days(tenants[tenant])[res]
                reason = f"older than the tenant's {res} metrics retention of {days} days"
                out.append(Deletion(METRICS_TIER, target, reason, tenant=tenant, records=count))
        return out

    def delete(self, deletion: Deletion) -> Deletion:
        if deletion.tenant is None:
            self.client.indices.delete(index=deletion.target)
            return deletion
        pattern, _, rest = deletion.target.partition(" ")
        before = date.fromisoformat(rest.rsplit(" ", 1)[1])
        deleted = 0
        # Search and delete in pages, as the hot tier's store does (no reindex module needed).
        while True:
            hits = self.client.search(
                index=pattern,
                body={"query": _older(deletion.tenant, before), "_source": False, "size": self.PAGE},
            )["hits"]["hits"]
            if not hits:
                break
            answer = self.client.bulk(
                body=[{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits], refresh="true"
            )
            deleted += sum(1 for item in answer["items"] if item["delete"].get("result") == "deleted")
            failed = [i["delete"] for i in answer["items"] if i["delete"].get("status", 200) >= 300]
            if any(f.get("status") != 404 for f in failed):
                raise RuntimeError(f"OpenSearch refused {len(failed)} deletes, first: {failed[0]}")
        return Deletion(deletion.tier, deletion.target, deletion.reason, deletion.tenant, records=deleted)


def _days(r: Retention) -> dict[str, int]:
    return {"1m": r.metrics_1m_days, "1h": r.metrics_1h_days, "1d": r.metrics_1d_days}


def _older(tenant: str, keep_from: date) -> dict[str, Any]:
    cutoff = int(datetime(keep_from.year, keep_from.month, keep_from.day, tzinfo=UTC).timestamp())
    return {"bool": {"filter": [{"term": {"tenant": tenant}}, {"range": {"bucket": {"lt": cutoff}}}]}}
