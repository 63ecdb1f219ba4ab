"""Bad input to lines nobody described: every line becomes a record (tagged with what was guessed
or cut) or a rejection with a reason, never an exception and never nothing."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from core.records.config import PipelineConfig
from core.records.mining import Drain
from core.records.multiline import MultilineJoiner
from core.records.pipeline import RecordPipeline
from schemas.record import Record
from schemas.rejection import Rejected, RejectReason

pytestmark = pytest.mark.unit

ARRIVAL = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def parse(line: str | bytes, pipeline: RecordPipeline | None = None) -> Record:
    result = (pipeline or RecordPipeline()).process_line(line, tenant="t", service="app", received_at=ARRIVAL)
    assert isinstance(result, Record), result
    return result


def test_two_timestamps_far_apart_keep_the_first_and_say_so() -> None:
    r = parse("2025-03-10 11:59:00 replaying batch from 2019-05-05 10:00:00 done")
    assert r.timestamp == datetime(2025, 3, 10, 11, 59, tzinfo=UTC)
    assert "ambiguous_timestamp" in r.tags
    assert r.attributes["timestamp_alternative"] == "2019-05-05 10:00:00"


def test_a_timestamp_years_in_the_future_falls_back_to_arrival() -> None:
    r = parse("2031-01-01 00:00:00 ERROR clock is wrong")
    assert r.timestamp == ARRIVAL and "future_timestamp" in r.tags
    assert r.attributes["original_timestamp"] == "2031-01-01 00:00:00"
    assert r.message == "clock is wrong"


def test_a_timestamp_decades_in_the_past_is_kept_and_tagged() -> None:
    r = parse("1987-06-01 08:00:00 WARN restored from tape")
    assert r.timestamp == datetime(1987, 6, 1, 8, tzinfo=UTC) and "old_timestamp" in r.tags


def test_a_year_less_time_is_never_placed_in_the_future() -> None:
    r = parse("Mar 20 08:00:00 host app[1]: ten days ahead by the calendar, so last year")
    assert r.timestamp == datetime(2024, 3, 20, 8, tzinfo=UTC)
    # Within a day ahead it is read as a zone or clock mismatch, and the future policy applies.
    r = parse("Mar 11 08:00:00 host app[1]: twenty hours ahead")
    assert r.timestamp == ARRIVAL and "future_timestamp" in r.tags


def test_a_one_mebibyte_line_becomes_a_cut_record_quickly() -> None:
    line = "2025-03-10 11:00:00 ERROR " + "payload=" + "ab1," * (1024 * 1024 // 4 - 10)
    assert len(line.encode()) <= 1024 * 1024
    start = time.process_time()
    r = parse(line)
    assert time.process_time() - start < 5.0  # loose: the regression it guards against is minutes
    assert r.timestamp == datetime(2025, 3, 10, 11, tzinfo=UTC)
    assert "truncated" in r.tags and "mining_skipped" in r.tags and r.pattern_id is None
    assert r.attributes["original_size"]


def test_a_line_over_the_input_limit_is_rejected_with_its_reason() -> None:
    result = RecordPipeline().process_line(b"x" * (1024 * 1024 + 1), tenant="t", received_at=ARRIVAL)
    assert isinstance(result, Rejected) and result.reason_code is RejectReason.TOO_LARGE


def test_the_quadratic_mining_case_is_linear() -> None:
    line = "1," * 20000 + "a"
    start = time.process_time()
    cluster = Drain().add(line)
    assert time.process_time() - start < 1.0  # was 21.7 s
    assert cluster.template.startswith("<*>,<*>,") and cluster.template.endswith(",a")
    r = parse(line, RecordPipeline(PipelineConfig.model_validate({"mining": {"max_message_chars": 100}})))
    assert "mining_skipped" in r.tags and r.pattern is None


def test_binary_garbage_is_never_an_exception() -> None:
    rng = random.Random(7)
    pipeline = RecordPipeline()
    for _ in range(300):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        result = pipeline.process_line(blob, tenant="t", service="bin", received_at=ARRIVAL)
        if isinstance(result, Rejected):
            assert result.reason_code in (RejectReason.EMPTY, RejectReason.MISSING_MESSAGE), result
        else:
            assert result.message.strip()


def test_an_endless_continuation_is_split_into_tagged_records_and_nothing_is_lost() -> None:
    joiner = MultilineJoiner(max_lines=100)
    pipeline = RecordPipeline()
    lines = ["2025-03-10 11:00:00 ERROR failed"] + [f"\tat frame{i}(X.java:{i})" for i in range(1000)]
    events = [e for line in lines for e in joiner.push(line)] + joiner.flush()
    records = []
    for event in events:
        r = parse(event.text, pipeline)
        r.tags.extend(event.tags)
        records.append(r)
    assert len(records) == 11 and all("multiline_split" in r.tags for r in records)
    assert sum(r.message.count("\n") + 1 for r in records) == 1001
