"""How the job's operators hold rules: shipped without state, swapped whole, kept on a failed reload."""

from __future__ import annotations

import pickle

import pytest

from jobs.alerts.rulesource import PostgresRules, StaticRules
from tests.unit.alert_support import record, rule

pytestmark = pytest.mark.unit


def test_a_source_travels_to_the_workers_empty_and_fills_on_start() -> None:
    source = StaticRules([rule(), rule(id="r2", enabled=False)])
    source.start()
    shipped = pickle.loads(pickle.dumps(source))
    assert len(shipped.matcher) == 0  # nothing compiled travels
    shipped.start()
    assert len(shipped.matcher) == 1 and shipped.get("r1") is not None and shipped.get("r2") is None
    assert [p.rule_id for p in shipped.matcher.points(record(1))] == ["r1"]


def test_a_changed_revision_replaces_the_set_and_an_unchanged_one_does_not() -> None:
    source = StaticRules([])
    assert source._install([rule()])
    first = source.matcher
    assert not source._install([rule()])
    assert source.matcher is first
    assert source._install([rule(revision=2, threshold=5)])
    assert source.get("r1") is not None and source.get("r1").threshold == 5  # type: ignore[union-attr]


def test_postgres_rules_refuse_to_start_blind() -> None:
    # Starting with no rules would resolve every firing alert; failing lets Flink retry instead.
    source = PostgresRules("host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1", refresh_s=1)
    with pytest.raises(Exception, match="connection"):
        source.start()
