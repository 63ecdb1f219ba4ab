"""Header reading for lines no format claimed: time, level, host, process and component."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.records.config import PipelineConfig
from core.records.header import HeaderReader, read_header, zone
from core.records.pipeline import RecordPipeline
from schemas.record import Level, Record, micros

pytestmark = pytest.mark.unit

ARRIVAL = datetime(2025, 3, 10, 12, 0, 0, tzinfo=UTC)
ARRIVAL_US = micros(ARRIVAL)


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="microseconds")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2025-02-15T12:00:00Z started", "2025-02-15T12:00:00.000000+00:00"),
        ("2025-02-15 12:00:00,123 started", "2025-02-15T12:00:00.123000+00:00"),
        ("2025-02-15T12:00:00.123456789+02:00 started", "2025-02-15T10:00:00.123456+00:00"),
        ("2025-02-15 12:00:00.5 -0130 started", "2025-02-15T13:30:00.500000+00:00"),
        ("2025-02-15 12:00 started", "2025-02-15T12:00:00.000000+00:00"),
        ("Feb 15 12:00:00 host app[1]: started", "2025-02-15T12:00:00.000000+00:00"),
        ("Sat Feb 15 12:00:00 2025 started", "2025-02-15T12:00:00.000000+00:00"),
        ("[Sat Feb 15 12:00:00.250 2025] [error] started", "2025-02-15T12:00:00.250000+00:00"),
        ("15/Feb/2025:12:00:00 +0100 started", "2025-02-15T11:00:00.000000+00:00"),
        ("20250215-12:00:00:123|step|started", "2025-02-15T12:00:00.123000+00:00"),
        ("2025-02-15-12.00.00.654321 started", "2025-02-15T12:00:00.654321+00:00"),
        ("2025.02.15 12:00:00 started", "2025-02-15T12:00:00.000000+00:00"),
        ("[02.15 12:00:00] chrome.exe started", "2025-02-15T12:00:00.000000+00:00"),
        ("25/02/15 12:00:00 INFO started", "2025-02-15T12:00:00.000000+00:00"),
        ("02/15/2025 01:00:00 PM started", "2025-02-15T13:00:00.000000+00:00"),
        ("02/15/2025 12:30:00 AM started", "2025-02-15T00:30:00.000000+00:00"),
        ("1739620800 started", "2025-02-15T12:00:00.000000+00:00"),
        ("1739620800.25 started", "2025-02-15T12:00:00.250000+00:00"),
        ("1739620800123 started", "2025-02-15T12:00:00.123000+00:00"),
        ("1739620800123456 started", "2025-02-15T12:00:00.123456+00:00"),
        ("1739620800123456789 started", "2025-02-15T12:00:00.123456+00:00"),
        ("2025-02-15\t12:00:00 started", "2025-02-15T12:00:00.000000+00:00"),
        ("2025/02/15 | 12:00:00 | started", "2025-02-15T12:00:00.000000+00:00"),
        ("02-15 12:00:00.120  1702  2395 D WindowManager: started", "2025-02-15T12:00:00.120000+00:00"),
        ("250215 120000 148 INFO dfs.DataNode: started", "2025-02-15T12:00:00.000000+00:00"),
        ("I0215 12:00:00.123456    1234 main.go:42] started", "2025-02-15T12:00:00.123456+00:00"),
        ("15 Feb 2025 12:00:00,001 WARN started", "2025-02-15T12:00:00.001000+00:00"),
        ("node-7 app 2025-02-15T12:00:00Z started", "2025-02-15T12:00:00.000000+00:00"),
    ],
)
def test_timestamp_forms(line: str, expected: str) -> None:
    h = read_header(line, ARRIVAL_US)
    assert _iso(h.timestamp_us) == expected, h
    assert line[h.message_start :].endswith("started")


def test_level_host_process_component() -> None:
    line = "Mar  9 08:00:01 web-3 sshd(pam_unix)[19939]: session opened for user root"
    h = read_header(line, ARRIVAL_US)
    assert (h.host, h.process, h.attributes["pid"]) == ("web-3", "sshd(pam_unix)", "19939")
    assert line[h.message_start :] == "session opened for user root"

    line = "2025-02-15 12:00:00,123 ERROR [main] com.acme.Payments: card declined"
    h = read_header(line, ARRIVAL_US)
    assert (h.level, h.attributes["thread"], h.attributes["component"]) == (
        "ERROR",
        "main",
        "com.acme.Payments",
    )
    assert line[h.message_start :] == "card declined"

    line = "2025-02-15 12:00:00 - WARN  [Sync:Quorum$Learner@88] - Follower lost"
    h = read_header(line, ARRIVAL_US)
    assert h.level == "WARN" and line[h.message_start :] == "Follower lost"


@pytest.mark.parametrize(
    ("word", "level"),
    [("warning", "WARN"), ("Warn", "WARN"), ("[ERR]", "ERROR"), ("<crit>", "FATAL"), ("dbg", "DEBUG"),
     ("Notice", "INFO"), ("TRACE", "TRACE"), ("severe", "ERROR")],
)  # fmt: skip
def test_level_spellings(word: str, level: str) -> None:
    h = read_header(f"2025-02-15 12:00:00 {word} something happened", ARRIVAL_US)
    assert h.level == level


def test_single_letter_levels_only_where_a_header_puts_them() -> None:
    assert read_header("2025-02-15 12:00:00 E Tag: broke", ARRIVAL_US).level == "ERROR"
    h = read_header("2025-02-15 12:00:00 I think it broke", ARRIVAL_US)
    assert h.level is None and h.message_start == len("2025-02-15 12:00:00 ")


def test_numeric_syslog_severity() -> None:
    h = read_header("<11>Feb 15 12:00:00 host app: disk failed", ARRIVAL_US)
    assert h.level == "ERROR" and h.attributes["syslog.facility"] == "1" and h.host == "host"


def test_missing_year_never_in_the_future() -> None:
    # Received on 10 March: "Dec 31" is last year's, "Mar 10 11:00" this year's.
    assert _iso(read_header("Dec 31 23:00:00 x", ARRIVAL_US).timestamp_us or 0).startswith("2024-12-31")
    h = read_header("Mar 10 11:00:00 x", ARRIVAL_US)
    assert _iso(h.timestamp_us).startswith("2025-03-10") and "year_inferred" in h.tags
    assert _iso(read_header("Mar 20 11:00:00 x", ARRIVAL_US).timestamp_us).startswith("2024-03-20")


def test_missing_date_is_the_arrival_day_or_the_day_before() -> None:
    h = read_header("11:59:00.5 ERROR broke", ARRIVAL_US)
    assert _iso(h.timestamp_us) == "2025-03-10T11:59:00.500000+00:00" and "date_inferred" in h.tags
    assert _iso(read_header("23:00:00 broke", ARRIVAL_US).timestamp_us) == "2025-03-09T23:00:00.000000+00:00"


def test_time_zone_of_the_source() -> None:
    paris = zone("Europe/Paris")
    assert _iso(read_header("2025-02-15 12:00:00 x", ARRIVAL_US, paris).timestamp_us) == (
        "2025-02-15T11:00:00.000000+00:00"
    )
    assert _iso(read_header("2025-07-15 12:00:00 x", ARRIVAL_US, paris).timestamp_us) == (
        "2025-07-15T10:00:00.000000+00:00"
    )
    # An explicit offset wins over the configured zone.
    assert _iso(read_header("2025-02-15 12:00:00Z x", ARRIVAL_US, paris).timestamp_us) == (
        "2025-02-15T12:00:00.000000+00:00"
    )
    with pytest.raises(ValueError, match="Mars/Olympus"):
        zone("Mars/Olympus")


def test_not_a_timestamp() -> None:
    for line in ("just words", "2025-13-45 25:61:00 nope", "12345 items left", "9999999999 far"):
        h = read_header(line, ARRIVAL_US)
        assert h.timestamp_us is None and h.message_start == 0, line


def test_two_timestamps_far_apart_are_tagged() -> None:
    h = read_header("2025-02-15 12:00:00 job 2019-05-05 10:00:00 replayed", ARRIVAL_US)
    assert _iso(h.timestamp_us).startswith("2025-02-15")
    assert "ambiguous_timestamp" in h.tags and h.attributes["timestamp_alternative"] == "2019-05-05 10:00:00"


def test_the_full_timestamp_wins_over_an_epoch_and_a_date() -> None:
    line = "- 1117838570 2005.06.03 R02-M1 2005-06-03-15.42.50.675872 R02-M1 RAS KERNEL INFO ok"
    h = read_header(line, ARRIVAL_US)
    assert _iso(h.timestamp_us) == "2005-06-03T15:42:50.675872+00:00"
    assert h.attributes["header_prefix"] == "- 1117838570 2005.06.03 R02-M1"


def test_a_source_shape_is_learned_and_left_when_lines_change() -> None:
    reader = HeaderReader()
    src = ("t", "svc")
    first = reader.read("- 1117838570 2005.06.03 R02 2005-06-03-15.42.50.1 x", src, ARRIVAL_US)
    assert (first.kind, first.token_index) == ("ymd_dotted_time", 4)
    again = read_header(
        "- 1117838570 2005.06.03 R03 2005-06-03-15.42.51.1 y", ARRIVAL_US, hint=("ymd_dotted_time", 4)
    )
    assert _iso(again.timestamp_us) == "2005-06-03T15:42:51.100000+00:00"
    other = reader.read("2025-02-15 12:00:00 changed", src, ARRIVAL_US)
    assert _iso(other.timestamp_us) == "2025-02-15T12:00:00.000000+00:00"
    assert reader.read("2025-02-15 12:00:01 again", src, ARRIVAL_US).kind == "iso"


def test_pipeline_reads_headers_of_unknown_lines() -> None:
    pipeline = RecordPipeline()
    lines = [
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
        "081109 203807 222 INFO dfs.DataNode$PacketResponder: PacketResponder 0 terminating",
    ]
    records = [pipeline.process_line(line, tenant="t", service="hdfs", received_at=ARRIVAL) for line in lines]
    assert all(isinstance(r, Record) for r in records)
    a, b = records
    assert isinstance(a, Record) and isinstance(b, Record)
    assert a.timestamp == datetime(2008, 11, 9, 20, 36, 15, tzinfo=UTC)
    assert a.level is Level.INFO and a.source_format == "text"
    assert a.message == "PacketResponder 1 terminating"
    assert a.attributes["component"] == "dfs.DataNode$PacketResponder" and a.attributes["pid"] == "148"
    assert a.pattern_id == b.pattern_id and "no_timestamp" not in a.tags


def test_pipeline_time_zone_per_service() -> None:
    config = PipelineConfig.model_validate({"services": {"paris-app": {"timezone": "Europe/Paris"}}})
    pipeline = RecordPipeline(config)
    r = pipeline.process_line("2025-02-15 12:00:00 x", tenant="t", service="paris-app", received_at=ARRIVAL)
    assert isinstance(r, Record) and r.timestamp == datetime(2025, 2, 15, 11, tzinfo=UTC)
    r = pipeline.process_line("2025-02-15 12:00:00 x", tenant="t", service="other", received_at=ARRIVAL)
    assert isinstance(r, Record) and r.timestamp == datetime(2025, 2, 15, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="Nowhere/City"):
        PipelineConfig.model_validate({"timezone": "Nowhere/City"})


def test_explicit_raw_format_keeps_the_whole_line() -> None:
    r = RecordPipeline().process_line("250215 120000 x happened", tenant="t", fmt="raw", received_at=ARRIVAL)
    assert isinstance(r, Record) and r.message == "250215 120000 x happened" and "no_timestamp" in r.tags


def test_pipe_separated_header_fields() -> None:
    line = "20250215-12:00:00:123|Step_LSC|30002312|onStandStepChanged 3579"
    h = read_header(line, ARRIVAL_US)
    assert (h.attributes["component"], h.attributes["pid"]) == ("Step_LSC", "30002312")
    assert line[h.message_start :] == "onStandStepChanged 3579"
    line = "2025-02-15 12:00:00 | WARNING | billing.jobs | retry 3 of 5"
    h = read_header(line, ARRIVAL_US)
    assert (h.level, h.attributes["component"], line[h.message_start :]) == (
        "WARN",
        "billing.jobs",
        "retry 3 of 5",
    )


def test_program_before_a_dash_and_fields_before_a_level() -> None:
    line = "[02.15 12:00:00] chrome.exe - proxy.example.com:5070 open through proxy"
    h = read_header(line, ARRIVAL_US)
    assert h.attributes["component"] == "chrome.exe"
    assert line[h.message_start :] == "proxy.example.com:5070 open through proxy"
    line = "2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL FATAL data storage interrupt"
    h = read_header(line, ARRIVAL_US)
    assert (h.level, h.attributes["header_fields"]) == ("FATAL", "R02-M1-N0 RAS KERNEL")
    assert line[h.message_start :] == "data storage interrupt"


def test_a_year_less_time_takes_the_year_of_a_date_in_the_same_header() -> None:
    line = "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed"
    h = read_header(line, ARRIVAL_US)
    assert _iso(h.timestamp_us) == "2005-11-09T12:01:01.000000+00:00" and "year_inferred" not in h.tags
    assert (h.host, h.process, h.attributes["pid"]) == ("dn228/dn228", "crond(pam_unix)", "2915")
    assert line[h.message_start :] == "session closed"


def test_a_learned_layout_reads_the_same_fields_as_the_token_by_token_reading() -> None:
    reader = HeaderReader()
    lines = [
        "2025-02-15 12:00:00,001 INFO [main] com.acme.Api: started on 8080",
        "2025-02-15 12:00:01,002 WARN [pool-2] com.acme.Db: slow query 35ms",
        "2025-02-15 12:00:02,003 ERROR [main] [req 7] com.acme.Api: failed",  # one more field
        "2025-02-15 12:00:03,004 nonsense without the fields",
        "2025-02-15 12:00:04,005 DEBUG [main] com.acme.Api: back to the usual shape",
    ]
    for line in lines:
        learned = reader.read(line, ("t", "api"), ARRIVAL_US)
        fresh = read_header(line, ARRIVAL_US)
        assert (learned.level, learned.attributes, learned.message_start) == (
            fresh.level,
            fresh.attributes,
            fresh.message_start,
        ), line
        assert learned.timestamp_us == fresh.timestamp_us


def test_plain_lines_lose_their_logger_from_the_message_and_keep_their_fields() -> None:
    pipeline = RecordPipeline()
    r = pipeline.process_line(
        "2025-02-15 12:00:00,001 INFO [main] com.acme.Api: started on 8080", tenant="t", received_at=ARRIVAL
    )
    assert isinstance(r, Record) and r.source_format == "plain"
    assert (r.message, r.service, r.attributes["component"]) == ("started on 8080", "main", "com.acme.Api")
    r = pipeline.process_line("2025-02-15 12:00:00 WARN disk at 91%", tenant="t", received_at=ARRIVAL)
    assert isinstance(r, Record) and r.message == "disk at 91%" and r.attributes == {}


@pytest.mark.parametrize(
    ("line", "level", "fields", "message"),
    [
        ("I0215 12:00:00.123456    1 controller.go:123] Starting", "INFO",
         {"pid": "1", "source_location": "controller.go:123"}, "Starting"),
        ("WARN  [main] 2025-02-15 12:00:00,123 Daemon.java:42 - Startup slow", "WARN",
         {"header_prefix": "WARN  [main]", "source_location": "Daemon.java:42"}, "Startup slow"),
        ("[2025-02-15T12:00:00,123][INFO ][o.e.n.Node      ] [node-1] started", "INFO",
         {"thread": "o.e.n.Node", "context": "node-1"}, "started"),
        ("2025-02-15T12:00:00.123456Z 0 [Note] [MY-010311] [Server] socket created", "INFO",
         {"pid": "0", "thread": "MY-010311", "context": "Server"}, "socket created"),
        ("2025-02-15 12:00:00,123 - app.jobs - ERROR - retry failed", "ERROR",
         {"component": "app.jobs"}, "retry failed"),
    ],
)  # fmt: skip
def test_common_server_headers(line: str, level: str, fields: dict[str, str], message: str) -> None:
    h = read_header(line, ARRIVAL_US)
    assert _iso(h.timestamp_us).startswith("2025-02-15T12:00:00")
    assert (h.level, h.attributes, line[h.message_start :]) == (level, fields, message)
