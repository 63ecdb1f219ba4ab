"""Reading the hot tier: a query AST compiled into OpenSearch's bool DSL, built as dicts.

User text only ever lands in a query as a value (``term``, ``prefix``, ``match_phrase``), never in
``query_string``, so Lucene syntax in a search is just characters to look for. Every query is
filtered on the tenant and limited to the daily indices of its time slice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.serializer import JSONSerializer

from core.query import (
    And,
    Exists,
    MatchAll,
    Node,
    Not,
    Or,
    Prefix,
    Term,
    Text,
    TextPrefix,
    TierCounts,
    TierPage,
    TierQuery,
    attribute_key,
)
from schemas.projections import from_opensearch_doc, opensearch_index_name
from schemas.record import Level, Record, format_ts, from_micros

TRACK_TOTAL_UP_TO = 10_000
# OpenSearch cannot aggregate an analyzed field: the top messages of the hot tier are counted over
# this many newest matches, and said to be a sample.
MESSAGE_SAMPLE = 2_000


class _OrjsonSerializer(JSONSerializer):
    """Hits are decoded with orjson: a page of 1,000 records is most of a search's time in Python."""

    def loads(self, s: str | bytes) -> Any:
        return orjson.loads(s)

    def dumps(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        return orjson.dumps(data).decode()


def client(url: str, *, timeout_s: float = 10.0, **connection: Any) -> OpenSearch:
    """A client that fails fast: the search API answers without a tier rather than wait on it.
    ``connection``: TLS and credentials (:func:`connectors.opensearch.connection.connection_options`)."""
    return OpenSearch(
        url.split(","),
        timeout=timeout_s,
        max_retries=0,
        retry_on_timeout=False,
        serializer=_OrjsonSerializer(),
        **connection,
    )


def compile_query(node: Node) -> dict[str, Any]:
    """The OpenSearch query of a :mod:`core.query` AST.

    >>> compile_query(parse("service:api timeout"))
    {'bool': {'filter': [{'term': {'service': 'api'}}, {'match_phrase': {'message': 'timeout'}}]}}
    """
    if isinstance(node, MatchAll):
        return {"match_all": {}}
    if isinstance(node, And):
        return {"bool": {"filter": [compile_query(c) for c in node.children]}}
    if isinstance(node, Or):
        if not node.children:
            return {"match_none": {}}
        return {"bool": {"should": [compile_query(c) for c in node.children], "minimum_should_match": 1}}
    if isinstance(node, Not):
        return {"bool": {"must_not": [compile_query(node.child)]}}
    if isinstance(node, Text):
        # The analyzer splits the text as core.query.words does; a one-word phrase is a term.
        return {"match_phrase": {"message": node.raw}}
    if isinstance(node, TextPrefix):
        # Words are indexed lower-cased and a prefix query is not analyzed: the prefix is lowered.
        return {"prefix": {"message": node.prefix}}
    if isinstance(node, Term):
        return {"term": {node.field: node.value}}
    if isinstance(node, Prefix):
        return {"prefix": {node.field: node.value}}
    if isinstance(node, Exists):
        if attribute_key(node.field) is not None:
            # flat_object's `exists` misses keys with a dot ("http.status"); an empty prefix on the
            # key's path finds every value of exactly that key
            return {"prefix": {node.field: ""}}
        return {"exists": {"field": node.field}}
    raise TypeError(f"not a query node: {node!r}")


def _day_record(tenant: str, ts_us: int) -> Record:
    # opensearch_index_name takes a record; a stand-in with the tenant and the day is all it reads.
    ts = from_micros(ts_us)
    return Record("", tenant, ts, ts, Level.INFO, "", "", None, None, "", None, None)


class HotSearch:
    """Searches, aggregations and lookups over one index prefix's daily indices."""

    def __init__(self, os_client: OpenSearch, index_prefix: str) -> None:
        self.client = os_client
        self.prefix = index_prefix

    def indices(self, tenant: str, start_us: int, end_us: int) -> list[str]:
        """The daily indices that can hold records of ``[start_us, end_us)``."""
        day = from_micros(start_us).replace(hour=0, minute=0, second=0, microsecond=0)
        last = from_micros(max(end_us - 1, start_us))
        names = []
        while day <= last:
            names.append(
                opensearch_index_name(self.prefix, _day_record(tenant, int(day.timestamp()) * 10**6))
            )
            day += timedelta(days=1)
        return names

    def _filter(self, q: TierQuery) -> dict[str, Any]:
        return {
            "bool": {
                "filter": [
                    {"term": {"tenant": q.tenant}},
                    {
                        "range": {
                            "timestamp": {
                                "gte": format_ts(from_micros(q.start_us)),
                                "lt": format_ts(from_micros(q.end_us)),
                            }
                        }
                    },
                    compile_query(q.ast),
                ]
            }
        }

    def _search(self, q: TierQuery, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.client.search(
            index=",".join(self.indices(q.tenant, q.start_us, q.end_us)),
            body=body,
            params={
                "ignore_unavailable": "true",
                "allow_no_indices": "true",
                # only what is read below travels back
                "filter_path": "hits.total,hits.hits._source,aggregations",
            },
        )
        return result

    def search(self, q: TierQuery) -> TierPage:
        direction = q.order
        body: dict[str, Any] = {
            "query": self._filter(q),
            "size": q.limit,
            "sort": [{"timestamp": {"order": direction}}, {"log_id": {"order": direction}}],
            "track_total_hits": TRACK_TOTAL_UP_TO,
        }
        if q.after is not None:
            # date_nanos sorts on nanoseconds since the epoch; search_after keeps the total intact
            body["search_after"] = [q.after.ts_us * 1000, q.after.log_id]
        result = self._search(q, body)
        hits = result.get("hits", {})  # filter_path drops empty parts
        total = hits.get("total", {"value": 0})
        return TierPage(
            records=[from_opensearch_doc(h["_source"]) for h in hits.get("hits", [])],
            total=int(total["value"]),
            total_exact=total.get("relation", "eq") == "eq",
            notes=[],
        )

    def histogram(self, q: TierQuery, interval_us: int) -> TierCounts[tuple[int, str]]:
        body = {
            "query": self._filter(q),
            "size": 0,
            "aggs": {
                "h": {
                    "date_histogram": {
                        "field": "timestamp",
                        "fixed_interval": f"{max(interval_us // 1000, 1)}ms",
                        "min_doc_count": 1,
                    },
                    "aggs": {"lv": {"terms": {"field": "level", "size": 10}}},
                }
            },
        }
        result = self._search(q, body)
        counts: Counter[tuple[int, str]] = Counter()
        for bucket in result.get("aggregations", {}).get("h", {}).get("buckets", []):
            for lv in bucket["lv"]["buckets"]:
                counts[(int(bucket["key"]) * 1000, str(lv["key"]))] += int(lv["doc_count"])
        return TierCounts(counts)

    def top(self, q: TierQuery, field: str, size: int) -> TierCounts[str]:
        if field == "message":
            sample = self.search(TierQuery(q.tenant, q.ast, q.start_us, q.end_us, "desc", MESSAGE_SAMPLE))
            counts = Counter(r.message for r in sample.records)
            exact = sample.total is not None and sample.total <= MESSAGE_SAMPLE and sample.total_exact
            return TierCounts(counts, exact)
        body = {
            "query": self._filter(q),
            "size": 0,
            "aggs": {"top": {"terms": {"field": field, "size": size, "shard_size": size * 5 + 50}}},
        }
        result = self._search(q, body)
        agg = result.get("aggregations", {}).get("top", {})
        counts = Counter({str(b["key"]): int(b["doc_count"]) for b in agg.get("buckets", [])})
        return TierCounts(counts, int(agg.get("doc_count_error_upper_bound", 0)) == 0)

    def get(self, tenant: str, log_ids: Sequence[str], start_us: int, end_us: int) -> list[Record]:
        """By ``_id`` (the log_id) in the daily indices of the range."""
        if not log_ids:
            return []
        q = TierQuery(tenant, MatchAll(), start_us, end_us)
        query = self._filter(q)
        query["bool"]["filter"].append({"ids": {"values": list(log_ids)}})
        result = self._search(q, {"query": query, "size": len(log_ids)})
        return [from_opensearch_doc(h["_source"]) for h in result.get("hits", {}).get("hits", [])]
