"""Search across OpenSearch, Cassandra and the Parquet archive, through the real API, compared with a
brute-force filter (``core.query.matches``) over the same records."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.search.params import Filters
from core.query import parse
from schemas.record import format_ts, micros
from tests.integration.collector_support import ApiServer, free_port, require_stack, tenant_with_key
from tests.integration.search_support import Loaded, loaded_tiers, make_records, now_utc

pytestmark = pytest.mark.integration

DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    base = require_stack().model_copy(update={"auth_cache_s": 30.0})
    with (
        tenant_with_key(base, scopes=("search",)) as (tenant_a, key_a),
        tenant_with_key(base, scopes=("search",)) as (tenant_b, key_b),
    ):
        now = now_utc()
        rng = random.Random(6)
        records = make_records(tenant_a, 1500, now, rng) + make_records(tenant_b, 300, now, rng)
        with loaded_tiers(base, records, now) as loaded, ApiServer(loaded.settings) as server:
            yield {
                "loaded": loaded,
                "url": server.url,
                "a": (tenant_a, key_a),
                "b": (tenant_b, key_b),
            }


def client(world: dict[str, Any], who: str = "a") -> httpx.Client:
    return httpx.Client(base_url=world["url"], headers={"X-API-Key": world[who][1]}, timeout=60)


def span(world: dict[str, Any], days_ago_from: float, days_ago_to: float) -> tuple[str, str, int, int]:
    """(from, to) strings and the [start, end) µs the API resolves them to."""
    loaded: Loaded = world["loaded"]
    start = loaded.now - timedelta(days=days_ago_from)
    end = loaded.now - timedelta(days=days_ago_to)
    return format_ts(start), format_ts(end), micros(start), micros(end) + 1


def page_all(
    c: httpx.Client, params: dict[str, Any], limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page of a search: (all logs in order, each page's body)."""
    logs, bodies = [], []
    cursor = None
    for _ in range(500):
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        r = c.get("/v1/logs/search", params=p)
        assert r.status_code == 200, r.text
        body = r.json()
        bodies.append(body)
        logs.extend(body["logs"])
        cursor = body["cursor"]
        if not cursor:
            return logs, bodies
    raise AssertionError("paging did not end")


def ids(items: list[Any]) -> list[str]:
    return [x["log_id"] if isinstance(x, dict) else x.log_id for x in items]


QUERIES = [
    ({"q": ""}, "everything"),
    ({"q": "payment"}, "a word"),
    ({"q": "PAYMENT timeout"}, "two words, any case"),
    ({"q": '"connection reset"'}, "a phrase"),
    ({"q": '"reset connection"'}, "a phrase in the wrong order"),
    ({"q": "pay*"}, "a word prefix"),
    ({"q": "payment AND NOT timeout"}, "NOT"),
    ({"q": "(timeout OR refused) AND level:ERROR"}, "OR in parentheses"),
    ({"q": "service:auth OR service:mailer"}, "OR of services"),
    ({"q": "service:pay*"}, "a keyword prefix"),
    ({"q": "req_id:r-7"}, "a bare attribute"),
    ({"q": "attributes.http.status:503"}, "a dotted attribute"),
    ({"q": "http.status:*"}, "an attribute present"),
    ({"q": "NOT environment:*"}, "a field absent"),
    ({"q": "tags:truncated"}, "a tag"),
    ({"q": "db.example.com"}, "a host name as one word"),
    ({"q": "level>=WARN"}, "a level comparison"),
    ({"q": "über 日本"}, "non-ASCII words"),
    ({"q": "can't"}, "an apostrophe"),
    ({"q": "id = 1; DROP TABLE logs; --"}, "SQL as words"),
    ({"q": "message:payment", "service": "payment-service", "level": "ERROR"}, "filters"),
    ({"level": ">=WARN", "host": "web-1"}, "minimum level and host"),
    ({"level": ["WARN", "FATAL"]}, "several levels"),
]


def _filters(params: dict[str, Any]) -> Filters:
    def tup(v: Any) -> tuple[str, ...]:
        return () if v is None else ((v,) if isinstance(v, str) else tuple(v))

    return Filters(
        q=params.get("q", ""),
        service=tup(params.get("service")),
        level=tup(params.get("level")),
        host=tup(params.get("host")),
        trace_id=tup(params.get("trace_id")),
    )


@pytest.mark.parametrize(("params", "what"), QUERIES, ids=[w for _, w in QUERIES])
def test_every_query_feature_matches_brute_force(world, params, what) -> None:  # type: ignore[no-untyped-def]
    frm, to, start, end = span(world, 90, 0)
    tenant = world["a"][0]
    expected = world["loaded"].expected(tenant, _filters(params).ast(), start, end)
    with client(world) as c:
        r = c.get("/v1/logs/search", params={**params, "from": frm, "to": to, "limit": 1000})
        assert r.status_code == 200, r.text
        body = r.json()
    assert [t["status"] for t in body["tiers"]] == ["ok", "ok", "ok"]
    assert [t["tier"] for t in body["tiers"]] == ["hot", "warm", "cold"]
    assert ids(body["logs"]) == ids(expected)[:1000]
    if body["total_is_exact"]:
        assert body["total"] == len(expected)
    assert all(log["tenant"] == tenant for log in body["logs"])


@pytest.mark.parametrize(
    ("ago", "tiers"),
    [
        ((10, 0), ["hot"]),
        ((40, 20), ["warm"]),
        ((90, 50), ["cold"]),
        ((20, 10), ["hot", "warm"]),
        ((50, 40), ["warm", "cold"]),
        ((90, 0), ["hot", "warm", "cold"]),
    ],
)
def test_each_tier_alone_and_together(world, ago, tiers) -> None:  # type: ignore[no-untyped-def]
    frm, to, start, end = span(world, *ago)
    ast = parse("level>=INFO")
    expected = world["loaded"].expected(world["a"][0], ast, start, end)
    with client(world) as c:
        logs, bodies = page_all(c, {"q": "level>=INFO", "from": frm, "to": to}, 400)
    assert [t["tier"] for t in bodies[0]["tiers"]] == tiers
    assert ids(logs) == ids(expected)
    assert expected, "the range should hold records"


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_paging_across_tier_boundaries_misses_and_repeats_nothing(world, order) -> None:  # type: ignore[no-untyped-def]
    frm, to, start, end = span(world, 90, 0)
    expected = world["loaded"].expected(world["a"][0], parse(""), start, end, order)
    with client(world) as c:
        logs, bodies = page_all(c, {"from": frm, "to": to, "order": order}, 97)
    got = ids(logs)
    assert len(got) == len(set(got)), "a record came twice"
    assert got == ids(expected)
    assert len(bodies) >= len(expected) // 97
    assert bodies[0]["total"] == len(expected) and bodies[0]["total_is_exact"]


def test_paging_a_filtered_search_by_post(world) -> None:  # type: ignore[no-untyped-def]
    frm, to, start, end = span(world, 90, 0)
    ast = _filters({"q": "timeout OR refused", "level": ">=WARN"}).ast()
    expected = world["loaded"].expected(world["a"][0], ast, start, end)
    got: list[dict[str, Any]] = []
    cursor = None
    with client(world) as c:
        while True:
            body = {"q": "timeout OR refused", "level": ">=WARN", "from": frm, "to": to, "limit": 13}
            if cursor:
                body["cursor"] = cursor
            r = c.post("/v1/logs/search", json=body)
            assert r.status_code == 200, r.text
            got.extend(r.json()["logs"])
            cursor = r.json()["cursor"]
            if not cursor:
                break
    assert ids(got) == ids(expected)


def test_relative_times_and_level_minimum_in_the_query_string(world) -> None:  # type: ignore[no-untyped-def]
    with client(world) as c:
        r = c.get("/v1/logs/search?level>=ERROR&from=now-30d&limit=1000")
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["logs"]
    assert {log["level"] for log in body["logs"]} <= {"ERROR", "FATAL"}
    assert [t["tier"] for t in body["tiers"]] == ["hot", "warm"]


def test_a_cursor_from_another_query_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    with client(world) as c:
        body = c.get("/v1/logs/search", params={"q": "payment", "from": "now-90d", "limit": 5}).json()
        r = c.get("/v1/logs/search", params={"q": "timeout", "cursor": body["cursor"]})
        assert r.status_code == 400
        assert "different query" in r.json()["detail"]["message"]
        assert c.get("/v1/logs/search", params={"cursor": "bm9wZQ"}).status_code == 400


@pytest.mark.parametrize(
    ("q", "where"),
    [
        ("a AND (b", "unclosed"),
        ("timestamp:1", "from/to"),
        ("level:LOUD", "unknown level"),
        ('"open', "quote"),
    ],
)
def test_a_bad_query_says_what_is_wrong(world, q, where) -> None:  # type: ignore[no-untyped-def]
    with client(world) as c:
        r = c.get("/v1/logs/search", params={"q": q})
    assert r.status_code == 400
    assert where in r.json()["detail"]["message"]


def test_histogram_matches_brute_force(world) -> None:  # type: ignore[no-untyped-def]
    frm, to, start, end = span(world, 90, 0)
    with client(world) as c:
        r = c.get("/v1/logs/histogram", params={"from": frm, "to": to, "interval": "1d", "q": "NOT payment"})
        assert r.status_code == 200, r.text
        body = r.json()
    expected: Counter[tuple[str, str]] = Counter()
    step = DAY_US
    for rec in world["loaded"].expected(world["a"][0], parse("NOT payment"), start, end):
        ts = micros(rec.timestamp)
        expected[(format_ts_us(ts - ts % step), str(rec.level))] += 1
    got = Counter({(b["start"], lv): n for b in body["buckets"] for lv, n in b["levels"].items()})
    assert got == expected
    assert body["total"] == sum(expected.values())
    assert body["interval_s"] == 86400
    assert [t["tier"] for t in body["tiers"]] == ["hot", "warm", "cold"]


def format_ts_us(us: int) -> str:
    from schemas.record import from_micros

    return format_ts(from_micros(us))


@pytest.mark.parametrize("by", ["service", "host", "level", "message"])
def test_top_matches_brute_force(world, by) -> None:  # type: ignore[no-untyped-def]
    frm, to, start, end = span(world, 90, 0)
    with client(world) as c:
        r = c.get("/v1/logs/top", params={"by": by, "from": frm, "to": to, "limit": 5, "q": "level>=WARN"})
        assert r.status_code == 200, r.text
        body = r.json()
    counts = Counter(
        str(getattr(rec, by))
        for rec in world["loaded"].expected(world["a"][0], parse("level>=WARN"), start, end)
    )
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(i["value"], i["count"]) for i in body["items"]] == expected


@pytest.mark.parametrize("days_ago", [3, 30, 70])
def test_get_one_log_and_its_context_in_each_tier(world, days_ago) -> None:  # type: ignore[no-untyped-def]
    loaded: Loaded = world["loaded"]
    tenant = world["a"][0]
    target_us = micros(loaded.now) - days_ago * DAY_US
    mine = sorted(
        (r for r in loaded.records if r.tenant == tenant), key=lambda r: abs(micros(r.timestamp) - target_us)
    )
    record = mine[0]
    with client(world) as c:
        r = c.get(f"/v1/logs/{record.log_id}", params={"timestamp": format_ts(record.timestamp)})
        assert r.status_code == 200, r.text
        assert r.json()["log"] == record.to_dict()
        # A tier is asked only when the newer ones have no such record.
        asked = {3: ["hot"], 30: ["hot", "warm"], 70: ["hot", "warm", "cold"]}[days_ago]
        assert [t["tier"] for t in r.json()["tiers"]] == asked
        if days_ago < 45:  # hot and warm find a record by id alone
            assert c.get(f"/v1/logs/{record.log_id}").json()["log"]["log_id"] == record.log_id
        r = c.get(
            f"/v1/logs/{record.log_id}/context",
            params={"before": 3, "after": 3, "timestamp": format_ts(record.timestamp)},
        )
        assert r.status_code == 200, r.text
        body = r.json()
    same = sorted(
        (
            x
            for x in loaded.records
            if x.tenant == tenant and x.service == record.service and x.host == record.host
        ),
        key=lambda x: (micros(x.timestamp), x.log_id),
    )
    i = ids(same).index(record.log_id)
    day = DAY_US
    before = [x for x in same[:i] if micros(x.timestamp) >= micros(record.timestamp) - day][-3:]
    after = [x for x in same[i + 1 :] if micros(x.timestamp) < micros(record.timestamp) + day][:3]
    assert ids(body["before"]) == ids(before)
    assert ids(body["after"]) == ids(after)


def test_an_unknown_log_is_404(world) -> None:  # type: ignore[no-untyped-def]
    with client(world) as c:
        r = c.get("/v1/logs/" + "0" * 32, params={"timestamp": format_ts(world["loaded"].now)})
    assert r.status_code == 404


def test_tenants_never_see_each_other(world) -> None:  # type: ignore[no-untyped-def]
    loaded: Loaded = world["loaded"]
    tenant_a, tenant_b = world["a"][0], world["b"][0]
    frm, to, start, end = span(world, 90, 0)
    with client(world, "b") as c:
        logs, _ = page_all(c, {"from": frm, "to": to}, 1000)
        assert ids(logs) == ids(loaded.expected(tenant_b, parse(""), start, end))
        r = c.get("/v1/logs/search", params={"q": f"tenant:{tenant_a}", "from": frm, "to": to})
        assert r.json()["logs"] == []
        for rec in [r for r in loaded.records if r.tenant == tenant_a][:5]:
            r = c.get(f"/v1/logs/{rec.log_id}", params={"timestamp": format_ts(rec.timestamp)})
            assert r.status_code == 404
        top = c.get("/v1/logs/top", params={"by": "service", "from": frm, "to": to}).json()
        assert sum(i["count"] for i in top["items"]) <= sum(1 for r in loaded.records if r.tenant == tenant_b)
    with httpx.Client(base_url=world["url"]) as anon:
        assert anon.get("/v1/logs/search").status_code == 401
        assert (
            anon.get(
                "/v1/logs/search", headers={"X-API-Key": "strata_0000000000000000_nope-nope-nope-nope"}
            ).status_code
            == 401
        )


_HOSTILE = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            [
                "payment", "timeout", "AND", "OR", "NOT", "(", ")", '"', "\\", ":", "*", " ", "'", ";",
                "level>=", "service:", "req_id:", "tenant:", "{", "}", "[", "]", "--", "/*", "%", "_",
                "' OR 1=1 --", '{"match_all":{}}', "*:*", "?", "~", "^2", "\x00", "ALLOW FILTERING",
            ]
        ),
        max_size=12,
    ).map("".join),
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(q=_HOSTILE)
def test_hostile_queries_are_data(world: dict[str, Any], q: str) -> None:  # type: ignore[no-untyped-def]
    frm, to, start, end = span(world, 90, 0)
    with client(world) as c:
        r = c.get("/v1/logs/search", params={"q": q, "from": frm, "to": to, "limit": 1000})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        return
    body = r.json()
    assert [t["status"] for t in body["tiers"]] == ["ok", "ok", "ok"], body["tiers"]
    expected = world["loaded"].expected(world["a"][0], parse(q), start, end)
    got = ids(body["logs"])
    missing = [(format_ts(r.timestamp), r.message) for r in expected[:1000] if r.log_id not in set(got)]
    extra = [
        (log["timestamp"], log["message"]) for log in body["logs"] if log["log_id"] not in set(ids(expected))
    ]
    assert got == ids(expected)[:1000], f"missing {missing[:5]}, extra {extra[:5]}"


@pytest.mark.parametrize(
    ("setting", "tier"),
    [("cassandra_port", "warm"), ("opensearch_port", "hot"), ("s3_port", "cold")],
)
def test_a_tier_down_leaves_the_others_answering(world, setting, tier) -> None:  # type: ignore[no-untyped-def]
    loaded: Loaded = world["loaded"]
    dead = loaded.settings.model_copy(update={setting: free_port(), "search_tier_timeout_s": 8.0})
    frm, to, start, end = span(world, 90, 0)
    with (
        ApiServer(dead) as server,
        httpx.Client(base_url=server.url, headers={"X-API-Key": world["a"][1]}, timeout=60) as c,
    ):
        r = c.get("/v1/logs/search", params={"from": frm, "to": to, "limit": 1000, "q": "level>=WARN"})
        assert r.status_code == 200, r.text
        body = r.json()
        status = {t["tier"]: t["status"] for t in body["tiers"]}
        assert status[tier] == "unavailable"
        assert all(s == "ok" for t, s in status.items() if t != tier)
        assert body["total_is_exact"] is False
        down = next(t for t in body["tiers"] if t["tier"] == tier)
        lo, hi = micros_from(down["from"]), micros_from(down["to"])
        expected = [
            r
            for r in loaded.expected(world["a"][0], parse("level>=WARN"), start, end)
            if not lo <= micros(r.timestamp) < hi
        ]
        assert ids(body["logs"]) == ids(expected)
        h = c.get("/v1/logs/histogram", params={"from": frm, "to": to})
        assert h.status_code == 200
        assert {t["tier"]: t["status"] for t in h.json()["tiers"]}[tier] == "unavailable"


def micros_from(text: str) -> int:
    from schemas.record import parse_ts

    return micros(parse_ts(text))


def test_the_search_command_prints_every_match(world, capsys) -> None:  # type: ignore[no-untyped-def]
    from infra.cli.main import main

    frm, to, start, end = span(world, 90, 0)
    tenant, key = world["a"]
    args = ["search", "payment OR timeout", "--level", ">=WARN", "--from", frm, "--to", to]
    args += ["--url", world["url"], "--api-key", key]
    assert main([*args, "--json", "--limit", "0"]) == 0
    printed = [orjson_loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = world["loaded"].expected(
        tenant, _filters({"q": "payment OR timeout", "level": ">=WARN"}).ast(), start, end
    )
    assert ids(printed) == ids(expected)
    assert main([*args, "--limit", "3", "--color", "always"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "\033[" in lines[0] and expected[0].message in lines[0]
    assert main(["search", "a AND (", "--url", world["url"], "--api-key", key]) == 2


def orjson_loads(line: str) -> dict[str, Any]:
    import orjson

    loaded: dict[str, Any] = orjson.loads(line)
    return loaded


def test_the_search_page_is_served(world) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=world["url"]) as c:
        r = c.get("/ui")
        page = c.get("/ui/static/pages/search.js")
    assert r.status_code == 200 and "/ui/static/app.js" in r.text
    assert page.status_code == 200 and "/v1/logs/search" in page.text
