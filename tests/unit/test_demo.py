"""The demo's own pieces: its progress lines, what it plans to send, and a summary whose commands
work when pasted (no services)."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest

from infra.cli import demo
from infra.cli.main import build_parser
from infra.settings import Settings

pytestmark = pytest.mark.unit


def test_a_phase_with_a_total_shows_a_bar_and_counts() -> None:
    line = demo.progress_line(2, 4, "sending logs", done=3000, total=6000, unit="lines", elapsed_s=4)
    assert line.startswith("[2/4] sending logs")
    assert "[############............]" in line and "3,000/6,000 lines" in line


def test_a_finished_phase_says_how_long_it_took() -> None:
    line = demo.progress_line(3, 4, "ingest job", elapsed_s=61.4, finished=True)
    assert line.startswith("[3/4] ingest job") and line.endswith("done in 61 s")


def test_off_a_terminal_each_phase_is_one_line() -> None:
    out = io.StringIO()  # not a TTY: what a pipe or CI sees
    progress = demo.Progress(steps=2, out=out)
    with progress.phase("sending logs", "lines") as update:
        for done in range(0, 5001, 500):
            update(done, 5000)
    with progress.phase("ingest job") as update:
        update(0, None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith("[1/2] sending logs") and lines[0].endswith("(5,000 lines)")
    assert lines[1].startswith("[2/2] ingest job") and "done in" in lines[1]


def test_every_generated_line_is_planned_in_batches_of_at_most_500() -> None:
    batches = demo.planned_batches(2345, datasets=None)
    assert sum(len(lines) for _, _, lines in batches) == 2345
    assert all(0 < len(lines) <= 500 for _, _, lines in batches)
    assert {service for service, _, _ in batches} == {"payment-service", "orders", "db", "web"}


def test_the_summarys_search_line_parses_as_printed_with_a_key_that_can_search(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    key = "strata_abc.def"
    logs = {"API": tmp_path / "api.log", "ingest job": tmp_path / "ingest-job.log"}
    text = demo.summary(settings, key, {"hot (OpenSearch)": 12}, "http://127.0.0.1:8000", logs)
    (search,) = [line.strip() for line in text.splitlines() if "strata search" in line]
    argv = shlex.split(search)
    assert argv[0].endswith("strata")
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.query, args.api_key, args.url) == (
        "search",
        "payment",
        key,
        "http://127.0.0.1:8000",
    )
    assert "search" in demo.KEY_SCOPES.split(",")
    assert "http://127.0.0.1:8000/ui" in text
    assert str(logs["API"]) in text and str(logs["ingest job"]) in text
    assert "hot (OpenSearch)" in text
