"""Log metrics in OpenSearch: one index family per resolution, its template, and the reader the
API's ``/v1/metrics/logs`` calls.

Indices are ``<prefix>.metrics-1m-YYYY.MM`` (minutes, monthly), ``<prefix>.metrics-1h-YYYY`` and
``<prefix>.metrics-1d-YYYY`` (yearly), so retention drops whole indices; the dot keeps them out of
the hot tier's ``<prefix>-*`` template, searches and retention. A document is one contribution
(:mod:`core.metrics`): a bucket's value is the sum of its contributions.

The reader answers a range in chunks (hours or days) and keeps each chunk's answer while its
documents are unchanged (docs/metrics.md, "Reading fast and exact"): a 30-day dashboard recomputes
only the chunks written since it last asked, typically today.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from core.metrics import METRICS_TIER, RESOLUTIONS, index_suffix, retention_plan
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


def _points(agg: dict[str, Any]) -> list[tuple[int, int]]:
    return [(int(b["key"]), int(b["v"]["value"])) for b in agg["buckets"]]


def parse_answer(q: MetricsQuery, result: dict[str, Any]) -> MetricsAnswer:
    aggs = result.get("aggregations", {})
    if q.group_by is None:
        points = _points(aggs["h"]) if aggs else []
        return MetricsAnswer([{"labels": {}, "points": points}] if points else [], False)
    groups = aggs.get("g", {}).get("buckets", []) if aggs else []
    series = [{"labels": {q.group_by: str(g["key"])}, "points": _points(g["h"])} for g in groups]
    return MetricsAnswer(series[: q.max_series], len(series) > q.max_series)


# A range is read in chunks, each cached on its own: hours of minutes (a 24-hour panel recomputes
# the hour being written, not the day), days of hours, calendar months of days (a 2,000-day panel is
# 66 chunks, not 2,000). Every step a resolution serves divides its chunks (minutes serve 1m, 5m and
# 15m steps; hours 1h and 6h; days 1d), and no index layout splits a chunk (minutes are monthly,
# hours and days yearly), so a chunk's documents sit in one single-shard index.
CHUNK_S = {"1m": 3600, "1h": 86400}


def _chunk_end(resolution: str, at: int) -> int:
    """The start of the chunk after the one holding ``at``."""
    if resolution in CHUNK_S:
        return at - at % CHUNK_S[resolution] + CHUNK_S[resolution]
    day = datetime.fromtimestamp(at, UTC)
    nxt = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return int(nxt.timestamp())


def chunk_spans(start_s: int, end_s: int, resolution: str) -> list[tuple[int, int]]:
    """``[start_s, end_s)`` cut at the chunk boundaries of ``resolution``.

    >>> chunk_spans(86400 - 3600, 2 * 86400 + 60, "1h")
    [(82800, 86400), (86400, 172800), (172800, 172860)]
    """
    spans = []
    at = start_s
    while at < end_s:
        nxt = min(end_s, _chunk_end(resolution, at))
        spans.append((at, nxt))
        at = nxt
    return spans


def _filters(q: MetricsQuery, start_s: int, end_s: int) -> list[dict[str, Any]]:
    return query_body(replace(q, start_s=start_s, end_s=end_s))["query"]["bool"]["filter"]


def plan_body(q: MetricsQuery, spans: list[tuple[int, int]]) -> dict[str, Any]:
    """One small aggregation saying, per chunk, what its documents are now (count, highest and sum of
    the sequence numbers: any write or delete a search can see changes one of them), and, when
    grouping, which groups the answer has (the ``max_series`` largest by total)."""
    seq = {"hi": {"max": {"field": "_seq_no"}}, "sum": {"sum": {"field": "_seq_no"}}}
    aggs: dict[str, Any] = {
        "d": {
            "range": {"field": "bucket", "ranges": [{"from": a, "to": b} for a, b in spans]},
            "aggs": seq,
        }
    }
    if q.group_by is not None:
        aggs["g"] = {
            "terms": {
                "field": _LABEL_FIELD[q.group_by],
                "size": q.max_series + 1,  # one more: to say the answer was cut
                "order": {"total": "desc"},
            },
            "aggs": {"total": {"sum": {"field": q.metric}}},
        }
    return {"query": {"bool": {"filter": _filters(q, q.start_s, q.end_s)}}, "size": 0, "aggs": aggs}


def data_body(q: MetricsQuery, start_s: int, end_s: int, groups: list[str] | None) -> dict[str, Any]:
    """The histogram of ``[start_s, end_s)``, limited to ``groups`` when grouping."""
    body = query_body(replace(q, start_s=start_s, end_s=end_s, max_series=len(groups or ())))
    if q.group_by is not None:
        body["query"]["bool"]["filter"].append({"terms": {_LABEL_FIELD[q.group_by]: groups}})
    return body


# One chunk's answer: per group (None without grouping), its points (step start, value). Points are
# tuples, so answers share them with the cache and no caller can change what is cached.
_Chunk = dict[str | None, list[tuple[int, int]]]


@dataclass
class _Cached:
    state: tuple[int, float, float]
    groups: frozenset[str | None]
    chunk: _Chunk
    points: int
    at: float


class MetricsReader:
    """Reads the metric indices of one index prefix.

    Each chunk of a range is cached with what its documents were when it was computed, and reused
    only while they are unchanged, so the answer is the one a full aggregation would give. The
    cache is bounded by points held and by age (``ttl_s``, a bound on anything the check could
    miss, such as an index dropped and rebuilt with the same documents)."""

    def __init__(
        self, client: Any, index_prefix: str, *, max_points: int = 500_000, ttl_s: float = 600.0
    ) -> None:
        self.client = client
        self.prefix = index_prefix
        self.max_points = max_points
        self.ttl_s = ttl_s
        self._cache: OrderedDict[tuple[Any, ...], _Cached] = OrderedDict()
        self._points = 0
        self._lock = threading.Lock()
        self.last_recomputed = 0  # chunks aggregated by the last read: for tests and benchmarks

    def _indices(self, resolution: str, spans: list[tuple[int, int]]) -> str:
        names = dict.fromkeys(metrics_index(self.prefix, index_suffix(resolution, a)) for a, _ in spans)
        return ",".join(names) or metrics_pattern(self.prefix, resolution)

    def read(self, q: MetricsQuery) -> MetricsAnswer:
        if q.resolution not in RESOLUTIONS:
            raise ValueError(f"unknown resolution {q.resolution!r}")
        spans = chunk_spans(q.start_s, q.end_s, q.resolution)
        if not spans:
            return MetricsAnswer([], False)
        index = self._indices(q.resolution, spans)
        params = {"ignore_unavailable": "true", "allow_no_indices": "true", "filter_path": "aggregations"}
        shape = (self.prefix, replace(q, start_s=0, end_s=0, max_series=0))
        now = time.monotonic()
        with self._lock:
            known = any((shape, span) in self._cache for span in spans)
        if not known:
            # Nothing to reuse: one aggregation of the whole range, which also says what each
            # chunk's documents were, from the same view of the index.
            body = query_body(q)
            body["aggs"]["d"] = plan_body(q, spans)["aggs"]["d"]
            whole = self.client.search(index=index, body=body, params=params).get("aggregations")
            if not whole:
                return MetricsAnswer([], False)
            groups, truncated = _ranked(q, whole)
            if q.group_by is not None:
                whole["g"]["buckets"] = whole["g"]["buckets"][: q.max_series]
            states = _states(whole)
            cut = _by_chunk(q, whole, spans)
            wanted = frozenset(groups)
            for span, state, computed in zip(spans, states, cut, strict=True):
                if state[0]:
                    self._store((shape, span), _Cached(state, wanted, computed, _size(computed), now))
            self.last_recomputed = sum(1 for state in states if state[0])
            return _assemble(q, groups, cut, truncated)
        # The plan is read before the data: a write landing in between makes the stored state
        # older than the data, which only costs a recomputation next time, never a stale answer.
        plan = self.client.search(index=index, body=plan_body(q, spans), params=params).get("aggregations")
        if not plan:
            return MetricsAnswer([], False)
        states = _states(plan)
        groups, truncated = _ranked(q, plan)
        wanted = frozenset(groups)
        chunks: list[_Chunk | None] = []
        with self._lock:
            for span, state in zip(spans, states, strict=True):
                hit = self._cache.get((shape, span)) if state[0] else None
                if (
                    hit is not None
                    and hit.state == state
                    and wanted <= hit.groups
                    and now - hit.at < self.ttl_s
                ):
                    self._cache.move_to_end((shape, span))
                    chunks.append(hit.chunk)
                else:
                    chunks.append({} if not state[0] else None)
        missing = [i for i, d in enumerate(chunks) if d is None]
        self.last_recomputed = len(missing)
        if missing:
            runs: list[list[int]] = []
            for i in missing:
                if runs and runs[-1][-1] == i - 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            names = [g for g in groups if g is not None] if q.group_by else None
            lines: list[Any] = []
            for run in runs:
                lines += [{"index": index, "ignore_unavailable": True, "allow_no_indices": True}]
                lines += [data_body(q, spans[run[0]][0], spans[run[-1]][1], names)]
            # status keeps every response in the list, so responses pair with runs by position
            kept = "responses.status,responses.aggregations,responses.error"
            answer = self.client.msearch(body=lines, params={"filter_path": kept})
            for run, response in zip(runs, answer["responses"], strict=True):
                if "error" in response:
                    raise RuntimeError(f"OpenSearch refused a metrics query: {response['error']}")
                cut = _by_chunk(q, response.get("aggregations"), [spans[i] for i in run])
                for i, computed in zip(run, cut, strict=True):
                    chunks[i] = computed
                    self._store((shape, spans[i]), _Cached(states[i], wanted, computed, _size(computed), now))
        return _assemble(q, groups, chunks, truncated)

    def _store(self, key: tuple[Any, ...], entry: _Cached) -> None:
        if entry.points > self.max_points:
            return
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._points -= old.points
            self._cache[key] = entry
            self._points += entry.points
            while self._points > self.max_points:
                _, dropped = self._cache.popitem(last=False)
                self._points -= dropped.points


def _states(aggs: dict[str, Any]) -> list[tuple[int, float, float]]:
    return [
        (int(b["doc_count"]), float(b["hi"]["value"] or 0), float(b["sum"]["value"] or 0))
        for b in aggs["d"]["buckets"]
    ]


def _ranked(q: MetricsQuery, aggs: dict[str, Any]) -> tuple[list[str | None], bool]:
    """The answer's groups, largest total first, and whether there were more."""
    if q.group_by is None:
        return [None], False
    ranked: list[str | None] = [str(g["key"]) for g in aggs["g"]["buckets"]]
    return ranked[: q.max_series], len(ranked) > q.max_series


def _assemble(
    q: MetricsQuery, groups: list[str | None], chunks: Sequence[_Chunk | None], truncated: bool
) -> MetricsAnswer:
    series = []
    for g in groups:
        points: list[tuple[int, int]] = []
        for chunk in chunks:
            got = chunk.get(g) if chunk else None
            if got is not None:
                points.extend(got)
        if points:
            series.append({"labels": {} if g is None else {q.group_by: g}, "points": points})
    return MetricsAnswer(series, truncated)


def _size(chunk: _Chunk) -> int:
    return sum(len(points) for points in chunk.values())


def _by_chunk(q: MetricsQuery, aggs: dict[str, Any] | None, spans: list[tuple[int, int]]) -> list[_Chunk]:
    """An aggregation's histogram(s) cut into the chunks of ``spans`` (consecutive)."""
    out: list[_Chunk] = [{} for _ in spans]
    if not aggs:
        return out
    if q.group_by is None:
        groups: list[tuple[str | None, list[dict[str, Any]]]] = [(None, aggs["h"]["buckets"])]
    else:
        groups = [(str(g["key"]), g["h"]["buckets"]) for g in aggs["g"]["buckets"]]
    for group, buckets in groups:
        i, end, points = -1, spans[0][0], []
        for b in buckets:  # in key order
            t = int(b["key"])
            if t >= end:
                while t >= spans[i + 1][1]:
                    i += 1
                i += 1
                end = spans[i][1]
                points = out[i].setdefault(group, [])
            points.append((t, int(b["v"]["value"])))
    return out


def metrics_template_name(index_prefix: str) -> str:
    return f"{index_prefix}.metrics"


def ensure_template(client: Any, index_prefix: str) -> None:
    client.indices.put_index_template(
        name=metrics_template_name(index_prefix), body=metrics_index_template(index_prefix)
    )


def drop_metrics(client: Any, index_prefix: str) -> None:
    """Remove every metric index of ``index_prefix`` and their template (what a throwaway prefix
    leaves behind: a test's or a benchmark's)."""
    client.indices.delete(index=metrics_pattern(index_prefix), ignore=[404])
    client.indices.delete_index_template(name=metrics_template_name(index_prefix), ignore=[404])


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
