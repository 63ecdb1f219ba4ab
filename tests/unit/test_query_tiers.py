"""How a query becomes each tier's query, how a time range is routed, and the cursor: no services."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from itertools import pairwise

import duckdb
import pytest

from api.search.params import Cursor, Filters, parse_time, resolve_range
from connectors.opensearch.search import compile_query
from connectors.s3.archive import compile_sql
from core.query import Position, QueryError, parse
from core.tiers import COLD, DAY_US, HOT, WARM, WARM_EDGE_US, route

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000_000


def test_routing_splits_a_range_at_the_tier_windows() -> None:
    hot_start, warm_start = NOW - 14 * DAY_US, NOW - 45 * DAY_US + WARM_EDGE_US
    assert route(NOW - 90 * DAY_US, NOW, NOW, 14, 45) == [
        (HOT, hot_start, NOW),
        (WARM, warm_start, hot_start),
        (COLD, NOW - 90 * DAY_US, warm_start),
    ]
    assert route(NOW - DAY_US, NOW, NOW, 14, 45) == [(HOT, NOW - DAY_US, NOW)]
    assert route(NOW - 30 * DAY_US, NOW - 20 * DAY_US, NOW, 14, 45) == [
        (WARM, NOW - 30 * DAY_US, NOW - 20 * DAY_US)
    ]
    assert [t for t, _, _ in route(NOW - 90 * DAY_US, NOW, NOW, 0, 0)] == [COLD]
    assert [t for t, _, _ in route(NOW - 90 * DAY_US, NOW, NOW, 14, 14)] == [HOT, COLD]


def test_slices_cover_the_range_without_overlap() -> None:
    for start, end in [(NOW - 100 * DAY_US, NOW + 5), (NOW - 45 * DAY_US, NOW - 14 * DAY_US + 1)]:
        slices = route(start, end, NOW, 14, 45)
        assert slices[0][2] == end and slices[-1][1] == start
        for (_, s1, _), (_, _, e2) in pairwise(slices):
            assert s1 == e2


def test_opensearch_gets_values_never_query_syntax() -> None:
    hostile = 'x" OR *:* {"match_all": {}}'
    dsl = compile_query(parse(f'service:"{hostile.replace(chr(34), chr(92) + chr(34))}" NOT "a b"'))
    assert dsl == {
        "bool": {
            "filter": [
                {"term": {"service": hostile.lower()}},
                {"bool": {"must_not": [{"match_phrase": {"message": "a b"}}]}},
            ]
        }
    }
    assert "query_string" not in str(compile_query(parse("a:b* c OR d")))


def test_sql_binds_every_user_value() -> None:
    params: list[object] = []
    sql = compile_sql(parse('service:"x\'; DROP TABLE logs; --" req_id:a* level>=ERROR'), params)
    assert "DROP" not in sql and "'" not in sql
    assert params == ["x'; drop table logs; --", "req_id", "a", "ERROR", "FATAL"]


def test_sql_runs_in_duckdb_with_missing_values_false() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE cold AS SELECT 'a b' AS message, NULL::VARCHAR AS environment, "
        "MAP(['k'], ['v']) AS attributes, ['t1'] AS tags"
    )
    con.create_function("strata_phrase", lambda m, r: r in m, [str, str], bool)
    for q, want in [
        ("NOT environment:prod", True),
        ("environment:*", False),
        ("k:v", True),
        ("NOT other:x", True),
        ("tags:t*", True),
        ("tags:x", False),
    ]:
        params: list[object] = []
        sql = compile_sql(parse(q), params)
        assert con.execute(f"SELECT {sql} FROM cold", params).fetchone() == (want,), q


def test_times() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert parse_time("now-15m", now) == datetime(2026, 1, 2, 11, 45, tzinfo=UTC)
    assert parse_time("2h", now) == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    assert parse_time("2026-01-01T00:00:00+01:00", now) == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    assert parse_time("2026-01-01", now) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(QueryError):
        parse_time("yesterday", now)
    with pytest.raises(QueryError):
        resolve_range("now", "now-1h", now)


def test_cursor_round_trip_and_tampering() -> None:
    cursor = Cursor(Position(123, "ab" * 16), "desc", 1, 2, Filters(q="x").fingerprint())
    assert Cursor.decode(cursor.encode()) == cursor
    with pytest.raises(QueryError):
        Cursor.decode("not-a-cursor")
    assert Filters(q="x").fingerprint() != Filters(q="y").fingerprint()


def test_filters_join_the_query_with_and() -> None:
    ast = Filters(q="timeout", service=("Checkout,auth",), level=(">=ERROR",)).ast()
    assert str(ast).count("Term(field='service'") == 2
    assert "checkout" in str(ast) and "FATAL" in str(ast)


def test_the_archive_word_regex_splits_words_like_the_evaluator() -> None:
    from connectors.s3.archive import _word_regex
    from core.query import words

    rng = random.Random(1)
    alphabet = "ab1_.:,;' -x/"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    con = duckdb.connect()
    for word in ["ab", "a", "1", "b1", "ab1"]:
        for prefix in (False, True):
            pattern = _word_regex(word, prefix=prefix)
            got = con.execute(
                "SELECT regexp_matches(t, ?) FROM unnest(?::VARCHAR[]) AS u(t)", [pattern, texts]
            ).fetchall()
            for text, (found,) in zip(texts, got, strict=True):
                expected = any(w.startswith(word) for w in words(text)) if prefix else word in words(text)
                assert found == expected, (word, prefix, text)
