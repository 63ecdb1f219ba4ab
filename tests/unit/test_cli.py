"""`strata parse`: records to stdout, rejections and the summary to stderr."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from infra.cli.main import main

pytestmark = pytest.mark.unit


def test_parse_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        b"2025-02-15 12:00:00.123 ERROR [payment-service] Payment failed req_id=abc123\n"
        b'{"msg": "json line", "level": "warn"}\n'
        b"\n"
        b'{"level": "info"}\n'
    )
    assert main(["parse", "--tenant", "acme", str(log)]) == 0
    out, err = capsys.readouterr()
    records = [orjson.loads(line) for line in out.splitlines()]
    assert [r["level"] for r in records] == ["ERROR", "WARN"]
    assert all(r["tenant"] == "acme" for r in records)
    assert "line 3: rejected EMPTY" in err and "line 4: rejected MISSING_MESSAGE" in err
    assert "2 records, 2 rejected (EMPTY: 1, MISSING_MESSAGE: 1)" in err


def test_parse_with_format_service_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("services:\n  api: {metadata: {environment: prod}}\n", encoding="utf-8")
    log = tmp_path / "a.log"
    log.write_text("level=info msg=hello\nnot logfmt\n", encoding="utf-8")
    assert main(["parse", "--format", "logfmt", "--service", "API", "--config", str(config), str(log)]) == 0
    out, err = capsys.readouterr()
    (record,) = [orjson.loads(line) for line in out.splitlines()]
    assert record["service"] == "api" and record["environment"] == "prod"
    assert "NO_MATCH" in err


def test_parse_envelopes_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import sys

    data = b'{"tenant": "t", "received_at": "2025-02-15T12:00:00Z", "line": "hi"}\nnope\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["parse", "--envelopes", "-"]) == 0
    out, err = capsys.readouterr()
    assert orjson.loads(out)["message"] == "hi" and "MALFORMED_ENVELOPE" in err


def test_missing_file_and_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(tmp_path / "missing.log")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"max_message_bytes": "lots"}', encoding="utf-8")
    assert main(["parse", "--config", str(bad), "-"]) == 2


TRACE = (
    b"2025-02-15 12:00:00,001 ERROR [main] com.acme.Api: request failed\n"
    b"\tat com.acme.Api.handle(Api.java:42)\n"
    b"Caused by: java.io.IOException: closed\n"
    b"\t... 12 more\n"
    b"2025-02-15 12:00:01,002 INFO [main] com.acme.Api: next request\n"
)


def test_parse_joins_a_stack_trace_into_one_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "api.log"
    log.write_bytes(TRACE)
    assert main(["parse", "--service", "api", str(log)]) == 0
    out, err = capsys.readouterr()
    first, second = [orjson.loads(line) for line in out.splitlines()]
    assert first["message"] == (
        "request failed\n\tat com.acme.Api.handle(Api.java:42)\n"
        "Caused by: java.io.IOException: closed\n\t... 12 more"
    )
    assert first["level"] == "ERROR" and "multiline" in first["tags"]
    assert first["pattern"] == "request failed"
    assert first["timestamp"].startswith("2025-02-15T12:00:00.001")
    assert second["message"] == "next request" and "multiline" not in second["tags"]
    assert "2 records, 0 rejected" in err

    assert main(["parse", "--service", "api", "--no-multiline", str(log)]) == 0
    out, _ = capsys.readouterr()
    assert len(out.splitlines()) == 5


def test_parse_from_a_live_pipe_emits_a_pending_event_after_the_quiet_timeout(tmp_path: Path) -> None:
    import os
    import select
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    code = "import sys; from infra.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "parse", "--multiline-timeout", "0.3", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"2025-02-15 12:00:00 ERROR boom\n\tat frame(A.java:1)\n")
        proc.stdin.flush()
        # The stream stays open: the record must come from the quiet timeout, not from the end.
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no record while the producer was quiet"
        record = orjson.loads(proc.stdout.readline())
        assert record["message"] == "boom\n\tat frame(A.java:1)"
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
