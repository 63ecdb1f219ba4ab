"""Metrics from fields: rule validation, reading a field from what the pipeline makes of a line,
contributions and their exactness, and merging sketches over buckets into a step's statistics."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core.fieldmetrics import (
    FieldRules,
    MetricRule,
    MetricRuleSpec,
    RuleAccumulator,
    merge_steps,
    read_value,
)
from core.metrics import DictStore
from core.records.pipeline import RecordPipeline
from core.sketch import RELATIVE_ACCURACY
from schemas.record import Record

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z, an hour boundary
PIPELINE = RecordPipeline(None)


def record(line: str, *, service: str = "checkout", tenant: str = "acme", ts: int = T0 + 5) -> Record:
    stamp = datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    envelope = {
        "tenant": tenant,
        "service": service,
        "line": f"{stamp} {line}",
        "received_at": stamp,
    }
    result = PIPELINE.process(json.dumps(envelope).encode())
    assert isinstance(result, Record), result
    return result


def rule(rule_id: str = "m1", tenant: str = "acme", **spec: object) -> MetricRule:
    body = {"name": rule_id, "field": "latency", **spec}
    return MetricRule.model_validate({**body, "id": rule_id, "tenant": tenant})


# -- validation -------------------------------------------------------------------------------


def test_a_rule_names_a_field_and_may_filter_by_service_level_and_query() -> None:
    spec = MetricRuleSpec.model_validate(
        {
            "name": "cart latency",
            "filter": {"services": ["Checkout"], "levels": ["info"], "q": "path:/cart"},
            "field": "attributes.latency",
            "unit": "ms",
        }
    )
    assert spec.field == "latency"
    assert spec.filter.services == ["checkout"]
    assert [str(lv) for lv in spec.filter.levels] == ["INFO"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"field": "lat ency"}, "is not a field name"),
        ({"field": ""}, "is not a field name"),
        ({"field": "latency", "filter": {"q": "service:(a"}}, "filter"),
        ({"field": "latency", "unit": "furlongs"}, "unit"),
        ({"field": "latency", "filter": {"levels": ["LOUD"]}}, "levels"),
        ({"field": "latency", "colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong(body: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        MetricRuleSpec.model_validate({"name": "r", **body})
    assert says in str(info.value)


# -- reading the field ------------------------------------------------------------------------


def test_the_field_is_read_from_what_the_pipeline_makes_of_a_line() -> None:
    plain = record("INFO GET /cart done latency=722ms bytes=2KiB")
    assert plain.attributes["latency"] == "722ms"  # the pipeline made it an attribute
    assert read_value(plain, "latency", "") == 722.0
    assert read_value(plain, "bytes", "") == 2048.0
    assert read_value(record("INFO done latency=1.5s"), "latency", "ms") == 1500.0
    # a bare number takes the rule's unit; a value of another kind is not this rule's quantity
    assert read_value(record("INFO done latency=2"), "latency", "s") == 2000.0
    assert read_value(record("INFO done latency=2KiB"), "latency", "ms") is None
    assert read_value(record("INFO done latency=fast"), "latency", "ms") is None
    assert read_value(record("INFO done"), "latency", "ms") is None


def test_a_pair_left_in_the_message_is_read_when_it_is_not_an_attribute() -> None:
    r = record("INFO done")
    r.message = 'request finished {latency: "35ms", status=200}'
    assert read_value(r, "latency", "ms") == 35.0
    assert read_value(r, "status", "") == 200.0
    assert read_value(r, "atency", "ms") is None


# -- matching ---------------------------------------------------------------------------------


def test_records_are_measured_only_by_the_rules_they_match() -> None:
    rules = FieldRules(
        [
            rule("cart", filter={"services": ["checkout"], "q": "cart"}),
            rule("errors", filter={"levels": ["ERROR"]}),
            rule("other-tenant", tenant="globex"),
            rule("off", enabled=False),
        ]
    )
    assert set(rules.rules) == {"cart", "errors", "other-tenant"}
    found = rules.measurements(record("INFO GET /cart latency=10ms"))
    assert [(m.rule_id, m.service, m.level, m.value) for m in found] == [("cart", "checkout", "INFO", 10.0)]
    found = rules.measurements(record("ERROR cart failed latency=3s"))
    assert sorted((m.rule_id, m.value) for m in found) == [("cart", 3000.0), ("errors", 3000.0)]
    assert rules.measurements(record("INFO GET /cart latency=10ms", service="search")) == []
    assert rules.measurements(record("INFO GET /cart latency=10ms", tenant="initech")) == []
    missing = rules.measurements(record("INFO GET /cart no timing"))
    assert [(m.rule_id, m.value) for m in missing] == [("cart", None)]


# -- contributions, exactness -----------------------------------------------------------------


def _acc() -> RuleAccumulator:
    return RuleAccumulator(DictStore(), DictStore())


def _feed(acc: RuleAccumulator, values: Sequence[tuple[int, float | None]], first_offset: int = 0) -> None:
    from core.fieldmetrics import Measurement

    for i, (ts, v) in enumerate(values):
        acc.add(Measurement("m1", "checkout", "INFO", ts, v), 0, first_offset + i, now_ms=1000)


def _stored(*flushes: list[tuple[str, str, dict]]) -> dict[str, tuple[str, dict]]:
    """The index as a sequence of flushes leaves it: a later document with an id overwrites."""
    out: dict[str, tuple[str, dict]] = {}
    for docs in flushes:
        for doc_id, suffix, doc in docs:
            out[doc_id] = (suffix, doc)
    return out


def test_a_rule_s_contributions_per_resolution_hold_count_sum_min_max_and_missing() -> None:
    acc = _acc()
    _feed(acc, [(T0 + 1, 10.0), (T0 + 2, 30.0), (T0 + 61, 20.0), (T0 + 62, None)])
    docs = acc.flush("acme", "m1")
    by = {(s.split("-")[0], d["bucket"]): d for _, s, d in docs}
    assert set(by) == {("1m", T0), ("1m", T0 + 60), ("1h", T0), ("1d", T0 - T0 % 86400)}
    hour = by[("1h", T0)]
    assert (hour["count"], hour["sum"], hour["min"], hour["max"], hour["missing"]) == (3, 60.0, 10.0, 30.0, 1)
    assert by[("1m", T0 + 60)]["count"] == 1
    assert acc.flush("acme", "m1") == []  # nothing changed since


def test_a_restart_from_the_checkpoint_overwrites_and_a_replay_with_new_state_adds() -> None:
    first = [(T0 + i, float(i + 1)) for i in range(10)]
    more = [(T0 + 20 + i, 100.0 + i) for i in range(5)]

    # the run: 10 records, a checkpoint (flush), 5 more that a crash loses before it is written
    acc = _acc()
    _feed(acc, first)
    at_checkpoint = acc.flush("acme", "m1")
    state = copy.deepcopy((acc.open, acc.dirty))
    _feed(acc, more, first_offset=10)

    # restart from the checkpoint: the state comes back, the 5 are read again, same ids
    restored = RuleAccumulator(*state)
    _feed(restored, more, first_offset=10)
    rewritten = restored.flush("acme", "m1")
    after = _stored(at_checkpoint, rewritten)
    minute = [d for s, d in after.values() if s.startswith("1m")]
    assert len(minute) == 1 and minute[0]["count"] == 15

    # a replay with new state starts at the group's mark (offset 15): a new contribution adds
    replay = _acc()
    _feed(replay, [(T0 + 30, 7.0)], first_offset=15)
    final = _stored(at_checkpoint, rewritten, replay.flush("acme", "m1"))
    steps = merge_steps((d for s, d in final.values() if s.startswith("1m")), 60, "count", None)
    assert steps == {(): [[T0, 16.0]]}
    assert merge_steps((d for s, d in final.values() if s.startswith("1m")), 60, "max", None) == {
        (): [[T0, 104.0]]
    }


def test_idle_contributions_close_and_a_late_record_opens_a_new_one() -> None:
    acc = _acc()
    _feed(acc, [(T0, 5.0)])
    first = acc.flush("acme", "m1")
    assert acc.close_idle(now_ms=1000 + 601_000, idle_s=600) == 0
    _feed(acc, [(T0 + 3, 9.0)], first_offset=50)
    second = acc.flush("acme", "m1")
    assert {i for i, _, _ in first}.isdisjoint({i for i, _, _ in second})
    docs = [d for _, s, d in first + second if s.startswith("1m")]
    assert merge_steps(docs, 60, "sum", None) == {(): [[T0, 14.0]]}


# -- merging sketches over buckets ------------------------------------------------------------


def test_quantiles_over_a_step_merge_every_bucket_and_contribution_within_accuracy() -> None:
    rnd = random.Random(7)
    values = [(T0 + rnd.randrange(3600), rnd.lognormvariate(5, 1.2)) for _ in range(5000)]
    # two runs' contributions (a replay split the records between them), by minute and by hour
    a, b = _acc(), _acc()
    _feed(a, values[:3000])
    _feed(b, values[3000:], first_offset=3000)
    docs = a.flush("acme", "m1") + b.flush("acme", "m1")
    exact = sorted(v for _, v in values)
    for res in ("1m", "1h"):
        mine = [d for _, s, d in docs if s.startswith(res)]
        for stat, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            (points,) = merge_steps(mine, 3600, stat, None).values()
            assert len(points) == 1
            want = exact[int(q * (len(exact) - 1))]
            assert abs(points[0][1] - want) <= RELATIVE_ACCURACY * want * 1.0001, (res, stat)
        (count,) = merge_steps(mine, 3600, "count", None).values()
        (total,) = merge_steps(mine, 3600, "sum", None).values()
        (low,) = merge_steps(mine, 3600, "min", None).values()
        (high,) = merge_steps(mine, 3600, "max", None).values()
        (avg,) = merge_steps(mine, 3600, "avg", None).values()
        assert count == [[T0, 5000.0]]
        assert total[0][1] == pytest.approx(sum(exact))
        assert (low[0][1], high[0][1]) == (exact[0], exact[-1])
        assert avg[0][1] == pytest.approx(sum(exact) / 5000)


def test_steps_group_by_a_label_and_leave_out_steps_without_values() -> None:
    from core.fieldmetrics import Measurement

    acc = _acc()
    acc.add(Measurement("m1", "checkout", "INFO", T0 + 1, 10.0), 0, 1, 1000)
    acc.add(Measurement("m1", "search", "INFO", T0 + 301, 20.0), 0, 2, 1000)
    acc.add(Measurement("m1", "search", "INFO", T0 + 601, None), 0, 3, 1000)
    docs = [d for _, s, d in acc.flush("acme", "m1") if s.startswith("1m")]
    assert merge_steps(docs, 300, "max", "service") == {
        ("checkout",): [[T0, 10.0]],
        ("search",): [[T0 + 300, 20.0]],
    }


def test_a_logs_topic_record_is_read_only_when_a_rule_could_match_it() -> None:
    from core.fieldmetrics import measure_json

    rules = FieldRules([rule("cart", filter={"services": ["checkout"]}), rule("all", tenant="globex")])
    matched = record("INFO GET /cart latency=10ms")
    found = measure_json(rules, matched.to_json())
    assert [(t, i, m.rule_id, m.value) for t, i, m in found] == [("acme", matched.log_id, "cart", 10.0)]
    assert measure_json(rules, record("INFO x latency=1ms", service="search").to_json()) == []
    assert [m.rule_id for _, _, m in measure_json(rules, record("INFO x", tenant="globex").to_json())] == [
        "all"
    ]
    for bad in (b"not json", b"[1, 2]", b'{"tenant": "acme", "service": "checkout"}'):
        with pytest.raises(ValueError):
            measure_json(rules, bad)
