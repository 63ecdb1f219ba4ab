"""The shipper's file reading, offsets and spool (no services)."""

from __future__ import annotations

import os

import pytest

from infra.cli.send import Batch, Spool, State, read_batches

pytestmark = pytest.mark.unit


def test_batches_hold_whole_lines_and_end_offsets(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b"a\nbb\n\nccc\npartial")
    batches = list(read_batches(path, 0, max_lines=2, max_bytes=1 << 20, final=False))
    assert [(body, count) for body, count, _ in batches] == [(b"a\nbb", 2), (b"ccc", 1)]
    assert batches[-1][2] == len(b"a\nbb\n\nccc\n")  # the partial line waits for its newline
    final = list(read_batches(path, batches[-1][2], max_lines=10, max_bytes=1 << 20, final=True))
    assert final == [(b"partial", 1, path.stat().st_size)]
    assert list(read_batches(path, path.stat().st_size, max_lines=10, max_bytes=100, final=True)) == []


def test_byte_cap_splits_batches(tmp_path):
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"x" * 99 + b"\n" for _ in range(10)))
    batches = list(read_batches(path, 0, max_lines=1000, max_bytes=300, final=True))
    assert [count for _, count, _ in batches] == [3, 3, 3, 1]


def test_offsets_survive_a_restart_and_reset_on_rotation_or_truncation(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b"one\ntwo\n")
    state = State(tmp_path)
    state.advance(path, 4)
    assert State(tmp_path).offset(path) == 4
    path.write_bytes(b"")  # truncated in place
    assert State(tmp_path).offset(path) == 0
    path.write_bytes(b"one\ntwo\n")
    state.advance(path, 8)
    rotated = tmp_path / "app.log.1"
    os.rename(path, rotated)
    path.write_bytes(b"new\n")  # a new file under the old name
    assert State(tmp_path).offset(path) == 0


def test_spool_returns_batches_in_order(tmp_path):
    spool = Spool(tmp_path / "spool")
    for i in range(3):
        spool.put(Batch("svc", None, f"line {i}".encode(), 1))
    assert len(spool) == 3
    assert [batch.body for _, batch in spool.items()] == [b"line 0", b"line 1", b"line 2"]
    for path, _ in spool.items():
        path.unlink()
    assert len(spool) == 0


def test_a_batch_is_not_cut_inside_a_stack_trace(tmp_path):
    path = tmp_path / "api.log"
    path.write_bytes(b"one\ntwo\nERROR boom\n\tat a(A.java:1)\n\tat b(B.java:2)\nCaused by: x\nthree\nfour\n")
    batches = list(read_batches(path, 0, max_lines=3, max_bytes=1 << 20, final=True))
    assert [b[0].split(b"\n") for b in batches] == [
        [b"one", b"two", b"ERROR boom", b"\tat a(A.java:1)", b"\tat b(B.java:2)", b"Caused by: x"],
        [b"three", b"four"],
    ]
    assert batches[-1][2] == path.stat().st_size


def test_spooled_batches_keep_their_idempotency_key(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put(Batch("svc", None, b"line", 1, "file:1-2@300"))
    assert [batch.key for _, batch in spool.items()] == ["file:1-2@300"]
