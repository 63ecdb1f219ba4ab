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
