"""The alerts job's graph on a local Flink (parallelism 2): raw_logs envelopes in, alert events out."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from core.alerts.rules import Rule
from jobs.alerts.rulesource import StaticRules
from schemas.envelope import RawEnvelope

pytestmark = pytest.mark.job

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def envelope(at_s: float, level: str, host: str = "web-1", message: str = "payment failed") -> str:
    ts = T0 + timedelta(seconds=at_s)
    env = RawEnvelope(
        tenant="acme",
        received_at=ts,
        service="payment-service",
        host=host,
        entry={"timestamp": ts.isoformat(), "level": level, "message": f"{message} #{at_s}"},
    )
    return env.encode().decode()


def test_job_fires_at_the_crossing_and_resolves_when_the_rate_falls_back() -> None:
    from pyflink.common import Configuration, Types
    from pyflink.datastream import StreamExecutionEnvironment

    from jobs.alerts.job import build

    rule = Rule.model_validate(
        {
            "id": "r-errors",
            "tenant": "acme",
            "name": "payment errors",
            "filter": {"services": ["payment-service"], "levels": ["ERROR"]},
            "window": "1m",
            "slide": "1m",
            "threshold": 5,
            "group_by": ["host"],
            "cooldown": 0,
        }
    )
    other_tenant = rule.model_copy(update={"id": "r-other", "tenant": "globex"})
    values = [envelope(i, "error", host="web-1") for i in range(8)]  # web-1: 8 errors in minute 0
    values += [envelope(10 + i, "error", host="web-2") for i in range(3)]  # web-2: 3, under
    values += [envelope(30 + 5 * i, "info") for i in range(40)]  # quiet traffic up to 3:15
    values.append('{"not": "an envelope"}')

    config = Configuration()
    config.set_string("python.executable", sys.executable)  # the venv's, which has pyflink
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(2)
    source = env.from_collection(values, type_info=Types.STRING())
    events = build(env, source, StaticRules([rule, other_tenant]), lateness_ms=20_000, idle_ms=1_000)
    with events.execute_and_collect() as results:
        out = [orjson.loads(e) for e in results]

    # (a collection is read faster than periodic watermarks tick, so which windows close before
    # the end of input is not deterministic here; the integration test drives event time)
    assert [(e["state"], e["group"], e["value"]) for e in out] == [
        ("FIRING", {"host": "web-1"}, 6.0),
        ("RESOLVED", {"host": "web-1"}, 0.0),
    ]
    fired, resolved = out
    assert fired["window_end_ms"] == int((T0 + timedelta(minutes=1)).timestamp() * 1000)
    assert resolved["window_end_ms"] == int((T0 + timedelta(minutes=2)).timestamp() * 1000)
    assert fired["notify"] and resolved["notify"] and len(fired["samples"]) == 5
    assert all(s["host"] == "web-1" and s["level"] == "ERROR" for s in fired["samples"])


def test_the_alerts_job_sees_records_as_the_ingest_job_stores_them() -> None:
    """One pipeline configuration for both jobs: a per-service pattern that sets the level, and an
    identity key that changes every log id. The alerts job's samples carry the level, service and
    log id that the ingest job's processing (what every tier stores) gives the same lines."""
    from pyflink.common import Configuration, Row, Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from core.records.config import PipelineConfig
    from infra.settings import Settings
    from jobs.alerts.job import build
    from jobs.ingest.job import IngestOptions, build_processing

    pipeline_config = PipelineConfig.model_validate(
        {
            "identity_key": "a-key-of-this-deployment",
            "patterns": {
                "billing": {
                    "regex": r"(?P<timestamp>\S+) \[(?P<level>[A-Z])\] (?P<message>.*)",
                    "level_map": {"E": "ERROR", "I": "INFO"},
                }
            },
            "services": {"legacy-billing": {"patterns": ["billing"]}},
        }
    )
    # The six lines in one 1-minute window: from a minute's start, not from any second of it.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    lines = [f"{(now + timedelta(seconds=i)).isoformat()} [E] invoice {i} rejected" for i in range(6)]
    values = [
        RawEnvelope(tenant="acme", received_at=now, service="legacy-billing", host="b-1", line=line).encode()
        for line in lines
    ]
    rule = Rule.model_validate(
        {
            "id": "r-billing",
            "tenant": "acme",
            "name": "billing errors",
            "filter": {"services": ["legacy-billing"], "levels": ["ERROR"]},
            "window": "1m",
            "slide": "1m",
            "threshold": 5,
            "cooldown": 0,
        }
    )

    config = Configuration()
    config.set_string("python.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    source = env.from_collection([v.decode() for v in values], type_info=Types.STRING())
    events = build(
        env, source, StaticRules([rule]), lateness_ms=1_000, idle_ms=1_000, pipeline_config=pipeline_config
    )
    with events.execute_and_collect() as results:
        fired = [e for e in (orjson.loads(r) for r in results) if e["state"] == "FIRING"]
    assert fired, "the per-service pattern's ERROR level must reach the alerts job"
    samples = {s["log_id"]: (s["service"], s["level"]) for s in fired[0]["samples"]}

    t_env = StreamTableEnvironment.create(env)
    raw = env.from_collection(
        [Row(v, "raw_logs", 0, i) for i, v in enumerate(values)],
        type_info=Types.ROW_NAMED(
            ["value", "topic", "partition", "offset"],
            [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.INT(), Types.LONG()],
        ),
    )
    settings = Settings()
    options = IngestOptions.from_settings(settings, pipeline_config=pipeline_config)
    graph = build_processing(t_env, raw, settings, options)
    table = t_env.sql_query(f"SELECT `log_id`, `service`, `level` FROM {graph.dedupe_view}")
    with t_env.to_data_stream(table).execute_and_collect() as results:
        stored = {r[0]: (r[1], r[2]) for r in results}
    assert len(stored) == len(lines)
    assert samples and all(stored[log_id] == seen for log_id, seen in samples.items())
    assert {level for _, level in stored.values()} == {"ERROR"}


def test_an_anomaly_rule_keeps_its_history_in_keyed_state_and_fires_on_a_surge() -> None:
    from pyflink.common import Configuration, Types
    from pyflink.datastream import StreamExecutionEnvironment

    from jobs.alerts.job import build

    rule = Rule.model_validate(
        {
            "id": "r-surge",
            "tenant": "acme",
            "name": "payment error surge",
            "type": "anomaly",
            "filter": {"services": ["payment-service"], "levels": ["ERROR"]},
            "window": "1h",
            "slide": "1h",
            "min_history": "10h",
            "group_by": ["host"],
            "cooldown": 0,
        }
    )
    hourly = [4, 3, 5, 4, 4, 3, 5, 4, 4, 5, 3, 4]  # twelve ordinary hours, then a surge on web-1
    values = []
    for hour, count in enumerate([*hourly, 40]):
        values += [envelope(hour * 3600 + 60 * i, "error", host="web-1") for i in range(count)]
        values += [envelope(hour * 3600 + 60 * i + 30, "error", host="web-2") for i in range(4)]

    config = Configuration()
    config.set_string("python.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(2)
    source = env.from_collection(values, type_info=Types.STRING())
    # A day of lateness holds every window open until the end of input, whose final watermark
    # closes them in order: the same events on every run.
    events = build(env, source, StaticRules([rule]), lateness_ms=86_400_000, idle_ms=1_000)
    with events.execute_and_collect() as results:
        out = [orjson.loads(e) for e in results]

    assert [(e["state"], e["group"], e["value"]) for e in out] == [
        ("FIRING", {"host": "web-1"}, 40.0),
        ("RESOLVED", {"host": "web-1"}, 0.0),
    ]
    fired = out[0]
    assert fired["window_end_ms"] == int((T0 + timedelta(hours=13)).timestamp() * 1000)
    assert fired["comparison"] == ">" and fired["threshold"] < 20
    assert fired["reason"].startswith("expected 4 from recent windows")


def test_groups_past_the_cap_are_not_evaluated_and_the_overflow_is_reported() -> None:
    """A rule grouped by host over 30 hosts, with a cap of 4 groups (2 per subtask): at most 4
    groups fire; the points of the others are counted in an ``overflow`` history entry that
    notifies no one."""
    from pyflink.common import Configuration, Types
    from pyflink.datastream import StreamExecutionEnvironment

    from jobs.alerts.job import build

    rule = Rule.model_validate(
        {
            "id": "r-hosts",
            "tenant": "acme",
            "name": "errors per host",
            "filter": {"levels": ["ERROR"]},
            "window": "1m",
            "slide": "1m",
            "threshold": 0,
            "group_by": ["host"],
            "cooldown": 0,
        }
    )
    values = [envelope(i, "error", host=f"web-{i}") for i in range(30)]
    values += [envelope(60 + 5 * i, "info") for i in range(30)]  # event time moves on
    config = Configuration()
    config.set_string("python.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(2)
    source = env.from_collection(values, type_info=Types.STRING())
    events = build(env, source, StaticRules([rule]), lateness_ms=20_000, idle_ms=1_000, max_groups=(4, 1_000))
    with events.execute_and_collect() as results:
        out = [orjson.loads(e) for e in results]

    fired_hosts = {e["group"]["host"] for e in out if e["state"] == "FIRING"}
    assert 1 <= len(fired_hosts) <= 4
    overflow = [e for e in out if e["group_id"] == "overflow"]
    assert overflow, "the refused groups were not reported"
    assert all(e["state"] == "OK" and not e["notify"] for e in overflow)
    assert all("records of new groups were not evaluated" in e["reason"] for e in overflow)
    assert sum(e["value"] for e in overflow) >= 1
