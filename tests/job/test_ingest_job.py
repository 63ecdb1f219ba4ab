"""The ingest job's processing on a local Flink environment: a collection in, collected rows out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from core.records.pipeline import RecordPipeline
from infra.settings import Settings
from jobs.ingest.job import IngestOptions, build_processing
from schemas.envelope import RawEnvelope
from schemas.projections import from_opensearch_doc, opensearch_index_name
from schemas.record import Record

pytestmark = pytest.mark.job

NOW = datetime.now(UTC)


def _envelope(line: str) -> bytes:
    return RawEnvelope(tenant="acme", received_at=NOW, line=line).encode()


def _inputs() -> list[bytes]:
    lines = [
        f"{NOW - timedelta(seconds=i):%Y-%m-%d %H:%M:%S} ERROR [checkout] order {i} failed" for i in range(40)
    ]
    old = [
        f"{NOW - timedelta(days=d):%Y-%m-%d %H:%M:%S} INFO [billing] invoice from {d} days ago"
        for d in (20, 60)
    ]
    good = [_envelope(line) for line in lines + old]
    # Poison shapes: one whose flattened keys would make megabytes (stored, attributes capped),
    # one still too large for a Kafka message once capped (a dead letter); the job goes on past both.
    wide = {"message": "wide", "k" * 250: {f"c{i}": 1 for i in range(45_000)}}
    huge = {"message": "huge", **{f"a{i}": "x" * 4000 for i in range(300)}}
    poison = [RawEnvelope(tenant="acme", received_at=NOW, entry=e).encode() for e in (wide, huge)]
    # A client's retry of an entry without a timestamp: a later arrival, the same entry_id.
    retried = [
        RawEnvelope(
            tenant="acme", received_at=at, entry={"message": "no time of its own"}, entry_id="body:1f/0"
        ).encode()
        for at in (NOW, NOW + timedelta(seconds=7))
    ]
    return poison + good + good[:10] + retried + [b"{broken", b"", _envelope("   ")] + poison


@pytest.fixture(scope="module")
def processed() -> tuple[Any, Any, Settings]:
    """The graph, built once; each test collects one of its outputs (each collect runs it)."""
    from pyflink.common import Row, Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    t_env = StreamTableEnvironment.create(env)
    values = _inputs()
    rows = [Row(v, "raw_logs", i % 2, i) for i, v in enumerate(values)]
    raw = env.from_collection(
        rows,
        type_info=Types.ROW_NAMED(
            ["value", "topic", "partition", "offset"],
            [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.INT(), Types.LONG()],
        ),
    )
    settings = Settings()
    return t_env, build_processing(t_env, raw, settings, IngestOptions.from_settings(settings)), settings


def _expected() -> dict[str, Record]:
    pipeline = RecordPipeline()
    out = {}
    for value in _inputs():
        result = pipeline.process(value)
        if isinstance(result, Record):
            out[result.log_id] = result
    return out


def test_records_are_deduplicated_and_routed_by_event_time(processed: tuple[Any, Any, Settings]) -> None:
    t_env, graph, settings = processed
    table = t_env.sql_query(f"SELECT `log_id`, `in_hot`, `dt`, `json` FROM {graph.dedupe_view}")
    with t_env.to_data_stream(table).execute_and_collect() as results:
        rows = [tuple(r) for r in results]
    expected = _expected()
    assert sorted(r[0] for r in rows) == sorted(expected)  # each once, though 10 were sent twice
    for log_id, in_hot, dt, as_json in rows:
        record = expected[log_id]
        assert in_hot == (NOW - record.timestamp < timedelta(days=settings.hot_days))
        assert dt == f"{record.timestamp:%Y-%m-%d}"
        assert Record.from_dict(orjson.loads(as_json)).log_id == log_id


def test_hot_rows_are_index_requests_for_the_daily_indices(processed: tuple[Any, Any, Settings]) -> None:
    _, graph, settings = processed
    with graph.hot_rows.execute_and_collect() as results:
        rows = sorted(tuple(r) for r in results)
    pipeline = RecordPipeline()
    records = [r for v in _inputs() if isinstance(r := pipeline.process(v), Record)]
    # Not the 20- or 60-day-old lines; every repeat (they come before the dedupe) again under its id.
    hot = [r for r in records if NOW - r.timestamp < timedelta(days=settings.hot_days)]
    assert len(hot) > len({r.log_id for r in hot})  # the inputs do repeat records
    prefix = settings.opensearch_index_prefix
    expected = sorted((r.log_id, opensearch_index_name(prefix, r), r.to_json()) for r in hot)
    got = sorted(
        (log_id, index, from_opensearch_doc(orjson.loads(source)).to_json()) for log_id, index, source in rows
    )
    assert got == expected


def test_warm_rows_carry_what_is_left_of_the_window(processed: tuple[Any, Any, Settings]) -> None:
    _, graph, settings = processed
    with graph.warm_rows.execute_and_collect() as results:
        rows = [tuple(r) for r in results]
    expected = _expected()
    warm = {lid for lid, r in expected.items() if NOW - r.timestamp < timedelta(days=settings.warm_days)}
    assert {r[0] for r in rows} == warm  # the 60-day-old line is not warm
    assert len(rows) == len(warm)  # resent entries are one row, even a retry with a later arrival
    ttl_by_id = {r[0]: r[-1] for r in rows}
    old = next(lid for lid, r in expected.items() if NOW - r.timestamp > timedelta(days=19))
    left = timedelta(days=settings.warm_days - 20).total_seconds()
    # 25 days, not 45: what was left when the job saw the line, so at most the time since NOW less,
    # less up to a second for the line's whole-second timestamp and another for whole-second TTLs.
    elapsed = (datetime.now(UTC) - NOW).total_seconds()
    assert left - elapsed - 2 <= ttl_by_id[old] <= left


def test_bad_input_becomes_dead_letters_with_reasons(processed: tuple[Any, Any, Settings]) -> None:
    _, graph, _ = processed
    with graph.dead_letters.execute_and_collect() as results:
        dead = [orjson.loads(r) for r in results]
    pipeline = RecordPipeline()
    reasons = [str(r.reason_code) for v in _inputs() if not isinstance(r := pipeline.process(v), Record)]
    assert len(reasons) == 5 and reasons.count("TOO_LARGE") == 2
    assert sorted(d["reason_code"] for d in dead) == sorted(reasons)
    too_large = [d for d in dead if d["reason_code"] == "TOO_LARGE"]
    assert all("max_record_bytes" in d["detail"] for d in too_large)
    assert {d["original"] for d in dead} >= {"{broken", ""}
    assert all(d["source"]["topic"] == "raw_logs" and isinstance(d["source"]["offset"], int) for d in dead)


def test_the_whole_graph_deduplicates_once(settings: Settings) -> None:
    """Warm, cold and the logs topic share one dedupe: its keyed state is the job's biggest, and
    each extra copy would cost every record another shuffle."""
    import json

    from jobs.flink import stream_environment
    from jobs.ingest.job import attach_sinks, raw_source

    env, t_env = stream_environment(settings, "ingest-plan")
    options = IngestOptions.from_settings(settings, archive_path="file:///tmp/strata-plan-only")
    processed = build_processing(t_env, raw_source(t_env, settings, options), settings, options)
    attach_sinks(t_env, processed, settings, options).attach_as_datastream()
    nodes = json.loads(env.get_execution_plan())["nodes"]
    operators = [n["contents"] for n in nodes]
    assert sum("Deduplicate(" in c for c in operators) == 1
    sinks = {"warm-cassandra-sink", "cold-parquet-sink: Writer", "logs_sink"}
    assert all(any(name in c for c in operators) for name in sinks)
