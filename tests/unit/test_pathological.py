"""Long adversarial lines cost one scan, not one per character (no quadratic regex backtracking).

A 60 KB line of one long run once took 15-35 s in several regexes; a Flink subtask stuck that long
stalls its partition. The bound here is loose (machines are shared), the regression it catches is
three orders of magnitude.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from core.records.pipeline import RecordPipeline
from schemas import Record, Rejected

pytestmark = pytest.mark.unit

N = 60_000
CASES = {
    "email-run": "a" * N + " @",
    "logfmt-run": "x=1 " + "a" * N,
    "no-digit-run": "word " + "abcdefghij" * (N // 10),
    "dotted-domain": "a@" + "b." * (N // 2),
    "kv-run": "k=v " + "a" * N + " =",
    "colons": ":" * N,
    "brackets": "[" * N,
    "escaped-quotes": '{"msg":"' + '\\"' * (N // 2),
    "digit-dashes": "1-" * (N // 2),
    "hex-colons": "a:" * (N // 2),
    "secret-keys": "password" * (N // 8) + "=",
    "plain-header": "2025-02-15 12:00:00 " + "[a" * (N // 2),
    "unclosed-quotes": 'k="' * (N // 3),
    "digit-commas": "1," * (N // 2) + "a",
    "repeated-dates": "2025-02-15 " * (N // 11),
    "repeated-syslog-times": "Feb 15 12:00:00 " * (N // 16),
    "open-brackets-after-time": "2025-02-15 12:00:00 " + "[" * N,
    "colon-tokens": "2025-02-15 12:00:00 " + "a: " * (N // 3),
}


@pytest.mark.parametrize("fmt", [None, "logfmt", "plain", "json", "syslog", "apache", "nginx"])
def test_long_adversarial_lines_are_fast(fmt: str | None) -> None:
    pipeline = RecordPipeline()
    arrival = datetime(2025, 1, 1, tzinfo=UTC)
    for name, text in CASES.items():
        start = time.process_time()
        result = pipeline.process_line(text, tenant="t", fmt=fmt, received_at=arrival)
        elapsed = time.process_time() - start
        assert isinstance(result, Record | Rejected)
        assert elapsed < 1.0, f"{name} with format {fmt}: {elapsed:.2f}s"
