"""How a search maps onto the warm table, with and without its optional indexes, and the setting
that chooses them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import pytest
from pydantic import ValidationError

from connectors.cassandra.search import _checked_columns, _RowView, plan_query
from core.query import matches, parse
from infra.settings import Settings
from schemas.projections import (
    CQL_SAI_TARGETS,
    cql_columns,
    cql_create_sai_indexes,
    cql_drop_sai_indexes,
    to_cql_row,
)
from schemas.record import Level, Record


@pytest.mark.parametrize(
    "query",
    [
        "level:ERROR",
        "host:web-1",
        "trace_id:4bf92f3577b34da6a3ce929d0e0e4736",
        "log_id:abc",
        "attributes.http.status:500",
        "timeout",
        "level:ERROR AND host:web-1 AND attributes.region:eu",
    ],
)
def test_without_indexes_every_condition_is_checked_while_scanning(query: str) -> None:
    plan = plan_query(parse(query), set())
    assert plan.where == [] and plan.params == []
    assert plan.residual and not plan.impossible
    assert plan.services is None


def test_without_indexes_a_service_still_picks_the_partitions() -> None:
    plan = plan_query(parse("(service:api OR service:web) AND level:WARN"), set())
    assert plan.services == ("api", "web")
    assert plan.where == [] and plan.residual


def test_an_impossible_service_combination_reads_nothing() -> None:
    assert plan_query(parse("service:api AND service:web"), set()).impossible


def test_a_service_alone_needs_no_residual_check() -> None:
    plan = plan_query(parse("service:api"), set())
    assert plan.services == ("api",) and not plan.residual and plan.where == []


def test_with_indexes_exact_terms_are_pushed_into_the_cql() -> None:
    plan = plan_query(parse("level:ERROR AND attributes.http.status:500 AND timeout"), set(CQL_SAI_TARGETS))
    assert plan.where == ['"level" = ?', '"attributes"[?] = ?']
    assert plan.params == ["ERROR", "http.status", "500"]
    assert plan.residual  # the word


def test_only_the_indexes_that_exist_are_used() -> None:
    plan = plan_query(parse("level:ERROR AND trace_id:t1"), {"trace_id"})
    assert plan.where == ['"trace_id" = ?'] and plan.params == ["t1"]
    assert plan.residual


def test_the_setting_defaults_to_no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATA_WARM_INDEXES", raising=False)
    assert Settings(_env_file=None).warm_index_targets == ()  # type: ignore[call-arg]


def test_the_setting_names_columns_and_attributes() -> None:
    s = Settings(_env_file=None, warm_indexes=" trace_id, attributes ,trace_id")  # type: ignore[call-arg]
    assert s.warm_index_targets == ("trace_id", "entries(attributes)")


def test_an_unknown_index_is_refused_with_the_choices() -> None:
    with pytest.raises(ValidationError, match="'message' is not a warm-tier index; choose among: log_id"):
        Settings(_env_file=None, warm_indexes="level,message")  # type: ignore[call-arg]


def test_the_drop_statements_spare_the_wanted_indexes() -> None:
    drops = cql_drop_sai_indexes("ks", "logs", keep=("trace_id",))
    assert drops == [
        "DROP INDEX IF EXISTS ks.logs_log_id_sai",
        "DROP INDEX IF EXISTS ks.logs_level_sai",
        "DROP INDEX IF EXISTS ks.logs_host_sai",
        "DROP INDEX IF EXISTS ks.logs_attributes_sai",
    ]
    assert cql_create_sai_indexes("ks", "logs", ("entries(attributes)",)) == [
        "CREATE INDEX IF NOT EXISTS logs_attributes_sai ON ks.logs (entries(\"attributes\")) USING 'sai'"
    ]


def _record(**changes: object) -> Record:
    base = Record(
        log_id="a" * 32,
        tenant="t",
        timestamp=datetime(2026, 11, 1, 12, tzinfo=UTC),
        ingested_at=datetime(2026, 11, 1, 12, tzinfo=UTC),
        level=Level.ERROR,
        service="checkout",
        host="web-1",
        environment=None,
        region="eu-west-1",
        message="Payment failed: timeout after 30 ms",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id=None,
        attributes={"http.status": "503", "req_id": "r-7"},
        tags=[],
        source_format="json",
        pattern_id=None,
        pattern=None,
        masked={},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


LIGHT_QUERIES = [
    "trace_id:4bf92f3577b34da6a3ce929d0e0e4736",
    "level:ERROR AND host:web-1",
    "level>=WARN",
    "attributes.http.status:503",
    "http.status:*",
    "NOT environment:*",
    "tags:truncated",
    "NOT tags:*",
    "payment AND NOT lock",
    "pay*",
    '"failed timeout"',
    "region:eu*",
]


@pytest.mark.parametrize("query", LIGHT_QUERIES)
def test_a_row_of_only_the_checked_columns_matches_as_the_record_does(query: str) -> None:
    ast = parse(query)
    checked = _checked_columns(ast)
    assert checked is not None
    for record in (
        _record(),
        _record(level=Level.INFO, host="db-1", trace_id=None, attributes={}, tags=["truncated"]),
        _record(environment="prod", message="lock held", region=None),
    ):
        full = dict(zip([n for n, _ in cql_columns()], to_cql_row(record), strict=True))
        # Cassandra returns an empty map or list as None
        row = {c: (full[c] or None) if c in ("attributes", "tags") else full[c] for c in checked}
        assert matches(ast, cast(Record, _RowView(row))) == matches(ast, record), (query, record)
