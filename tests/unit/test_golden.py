"""Golden files: every line of golden/<format>/*.log against the expected record in the .jsonl beside it.

Regenerate after an intended change with ``STRATA_UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py``
and review the diff like code.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from core.records.pipeline import RecordPipeline
from schemas.rejection import Rejected

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
ARRIVAL = datetime(2025, 2, 15, 12, 0, 30, tzinfo=UTC)
CASES = sorted(GOLDEN.glob("*/*.log"))


def render(log_file: Path) -> list[dict[str, object]]:
    fmt = log_file.parent.name
    pipeline = RecordPipeline()
    out: list[dict[str, object]] = []
    for raw in log_file.read_bytes().split(b"\n")[:-1]:
        result = pipeline.process_line(raw, tenant="golden", received_at=ARRIVAL, fmt=fmt)
        out.append({"rejected": result.to_dict()} if isinstance(result, Rejected) else result.to_dict())
    return out


@pytest.mark.parametrize("log_file", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden(log_file: Path) -> None:
    expected_file = log_file.with_suffix(".jsonl")
    actual = render(log_file)
    if os.environ.get("STRATA_UPDATE_GOLDEN"):
        expected_file.write_bytes(
            b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in actual)
        )
    expected = [orjson.loads(line) for line in expected_file.read_bytes().splitlines()]
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True), start=1):
        assert a == e, f"{log_file.name} line {i}"


def test_every_format_has_a_golden_file() -> None:
    assert {p.parent.name for p in CASES} >= {"json", "logfmt", "syslog", "apache", "nginx", "plain", "auto"}
