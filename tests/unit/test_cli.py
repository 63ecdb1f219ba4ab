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
