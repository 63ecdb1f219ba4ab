"""The query language: parsing into the AST, and evaluating the AST against records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.query import (
    And,
    Exists,
    MatchAll,
    Not,
    Or,
    Prefix,
    QueryError,
    Term,
    Text,
    TextPrefix,
    levels_from,
    matches,
    parse,
    words,
)
from schemas.record import Level, Record

pytestmark = pytest.mark.unit


def rec(message: str = "Payment timeout for order A-1", **kw: object) -> Record:
    base: dict[str, object] = {
        "log_id": "0" * 32,
        "tenant": "acme",
        "timestamp": datetime(2025, 2, 15, 12, tzinfo=UTC),
        "ingested_at": datetime(2025, 2, 15, 12, tzinfo=UTC),
        "level": Level.ERROR,
        "service": "payment-service",
        "host": "web-1",
        "environment": "prod",
        "region": None,
        "message": message,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": None,
        "attributes": {"req_id": "abc-123", "http.status": "503"},
        "tags": ["truncated"],
    }
    base.update(kw)
    return Record(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("q", "ast"),
    [
        ("", MatchAll()),
        ("   ", MatchAll()),
        ("*", MatchAll()),
        ("timeout", Text(("timeout",), "timeout")),
        ('"connection reset"', Text(("connection", "reset"), "connection reset")),
        ("pay*", TextPrefix("pay")),
        ("PAY*", TextPrefix("pay")),
        ("message:Timeout", Text(("timeout",), "Timeout")),
        ("service:Payment-Service", Term("service", "payment-service")),
        ("service:pay*", Prefix("service", "pay")),
        ("level:warning", Term("level", "WARN")),
        ("trace_id:4bf9", Term("trace_id", "4bf9")),
        ("attributes.req_id:abc", Term("attributes.req_id", "abc")),
        ("req_id:abc", Term("attributes.req_id", "abc")),
        ('req_id:"a b"', Term("attributes.req_id", "a b")),
        ("environment:*", Exists("environment")),
        ("a\\:b", Text(("a:b",), "a:b")),
        ("a\\*", Text(("a",), "a*")),
        ("a b", And((Text(("a",), "a"), Text(("b",), "b")))),
        ("a AND b", And((Text(("a",), "a"), Text(("b",), "b")))),
        ("a OR b", Or((Text(("a",), "a"), Text(("b",), "b")))),
        ("NOT a", Not(Text(("a",), "a"))),
        ("NOT NOT a", Text(("a",), "a")),
        ("a and b", And((Text(("a",), "a"), Text(("and",), "and"), Text(("b",), "b")))),
        ('"AND"', Text(("and",), "AND")),
        (
            "a OR b AND c",
            Or((Text(("a",), "a"), And((Text(("b",), "b"), Text(("c",), "c"))))),
        ),
        (
            "(a OR b) c",
            And((Or((Text(("a",), "a"), Text(("b",), "b"))), Text(("c",), "c"))),
        ),
        (
            "level>=ERROR",
            Or((Term("level", "ERROR"), Term("level", "FATAL"))),
        ),
        ("level:>FATAL", Or(())),
        ("- a", Text(("a",), "a")),
        ("NOT -", MatchAll()),
    ],
)
def test_parse(q: str, ast: object) -> None:
    assert parse(q) == ast


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("(a", "unclosed parenthesis"),
        ("a)", r"unexpected \)"),
        ("AND a", "unexpected AND"),
        ("a OR", "a term is missing"),
        ('"abc', "unterminated quote"),
        ("timestamp:x", "use from/to"),
        ("masked:x", "cannot be searched"),
        ("level:loud", "unknown level"),
        ("host>a", "comparisons work on level only"),
        ("()", "empty parentheses"),
        ("x:", "missing value"),
        ("attributes.:x", "an attribute needs a name"),
        ("(" * 40 + "a" + ")" * 40, "nests deeper"),
        ("NOT " * 40 + "a", "nests deeper"),
        ("a " * 300, "more than 256 terms"),
        ("a" * 5000, "longer than"),
    ],
)
def test_parse_errors(q: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse(q)


def test_error_says_where() -> None:
    with pytest.raises(QueryError) as info:
        parse("a AND (b OR")
    assert info.value.position is not None


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("payment", True),
        ("PAYMENT", True),
        ("pay", False),  # words, not substrings
        ("pay*", True),
        ("paym*", True),
        ('"payment timeout"', True),
        ('"timeout payment"', False),
        ('"payment  TIMEOUT,"', True),  # punctuation and case do not matter in a phrase
        ("payment AND timeout", True),
        ("payment AND refund", False),
        ("payment OR refund", True),
        ("NOT refund", True),
        ("NOT payment", False),
        ("a-1", True),  # the words "a" "1" next to each other
        ("service:payment-service", True),
        ("service:payment", False),
        ("service:pay*", True),
        ("host:web-1 level:ERROR", True),
        ("level:error", True),
        ("level>=WARN", True),
        ("level<=WARN", False),
        ("level>FATAL", False),
        ("NOT level>FATAL", True),
        ("req_id:abc-123", True),
        ("req_id:abc", False),
        ("req_id:abc*", True),
        ("attributes.http.status:503", True),
        ("http.status:503", True),
        ("missing:x", False),
        ("NOT missing:x", True),
        ("missing:*", False),
        ("region:*", False),
        ("NOT region:*", True),
        ("environment:*", True),
        ("tags:truncated", True),
        ("tags:trunc*", True),
        ("tags:other", False),
        ("trace_id:4bf92f3577b34da6a3ce929d0e0e4736", True),
        ("(refund OR timeout) AND service:payment-service", True),
        ("(refund OR invoice) AND service:payment-service", False),
    ],
)
def test_matches(q: str, expected: bool) -> None:
    assert matches(parse(q), rec()) is expected


def test_words_follow_the_standard_analyzer() -> None:
    assert words("Connect to db.example.com failed: foo:bar x_y 3.14 1,000 can't ABC123 a-b a1.b2") == [
        "connect", "to", "db.example.com", "failed", "foo:bar", "x_y", "3.14", "1,000", "can't",
        "abc123", "a", "b", "a1", "b2",
    ]  # fmt: skip
    assert words("日本語 über") == ["日", "本", "語", "über"]
    assert words("x" * 300) == ["x" * 255, "x" * 45]


def test_levels_from() -> None:
    assert levels_from("ERROR") == (Level.ERROR,)
    assert levels_from("warn,error") == (Level.WARN, Level.ERROR)
    assert levels_from(">=WARN") == (Level.WARN, Level.ERROR, Level.FATAL)
    assert levels_from("WARN+") == (Level.WARN, Level.ERROR, Level.FATAL)
    assert levels_from("<INFO") == (Level.TRACE, Level.DEBUG)
    with pytest.raises(QueryError):
        levels_from("LOUD")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_fails_cleanly(q: str) -> None:
    try:
        ast = parse(q)
    except QueryError:
        return
    matches(ast, rec())


_QUERY_ALPHABET = st.sampled_from(
    ["a", "b", "payment", "timeout", "AND", "OR", "NOT", "(", ")", '"', "\\", ":", "*", " ", "level>=", "x:"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_QUERY_ALPHABET, max_size=30).map("".join))
def test_query_like_text_parses_or_fails_cleanly(q: str) -> None:
    try:
        ast = parse(q)
    except QueryError:
        return
    assert isinstance(matches(ast, rec()), bool)
