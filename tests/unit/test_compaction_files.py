"""The files a compaction writes, without S3: each record once, sorted, in the archive's own
Parquet layout, with the group's metadata, column statistics and page indexes."""

from __future__ import annotations

import io
import struct
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.s3.compaction import conform, encode_group, file_schema, merge_rows, not_found
from core.compaction import (
    META_KEY,
    GroupMeta,
    output_name,
    parse_summary,
    single_group,
    summary_name,
    summary_prefix,
)

pytestmark = pytest.mark.unit


def rows(n: int, start: int = 0) -> pa.Table:
    t0 = datetime(2026, 11, 1, 10)
    data = [
        {
            "log_id": f"{i:032x}",
            "timestamp": t0 + timedelta(seconds=(i * 7919) % 3600),
            "ingested_at": t0,
            "level": "INFO",
            "service": f"svc-{i % 3}",
            "host": "h",
            "message": f"line {i}",
            "tags": ["a"] if i % 2 else [],
            "source_format": "json",
            "attributes": "{}",
        }
        for i in range(start, start + n)
    ]
    return pa.Table.from_pylist(data, schema=file_schema())


def footer_columns(data: bytes) -> list[dict[int, Any]]:
    """Each column chunk of a Parquet footer, its Thrift fields by id, read by a minimal decoder of
    Thrift's compact protocol (pyarrow 11 does not say whether a page index was written)."""
    size = struct.unpack("<I", data[-8:-4])[0]
    buf, pos = data[-8 - size : -8], 0

    def byte() -> int:
        nonlocal pos
        pos += 1
        return buf[pos - 1]

    def varint() -> int:
        shift = out = 0
        while True:
            b = byte()
            out |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return out

    def value(t: int) -> Any:
        nonlocal pos
        if t in (1, 2):
            return t == 1
        if t == 3:
            return byte()
        if t in (4, 5, 6):
            n = varint()
            return (n >> 1) ^ -(n & 1)
        if t == 7:
            pos += 8
            return None
        if t == 8:
            n = varint()
            pos += n
            return buf[pos - n : pos]
        if t in (9, 10):
            head = byte()
            n = head >> 4 if head >> 4 != 15 else varint()
            return [value(head & 15) for _ in range(n)]
        if t == 11:
            n = varint()
            kinds = byte() if n else 0
            return [(value(kinds >> 4), value(kinds & 15)) for _ in range(n)]
        if t == 12:
            return struct_()
        raise ValueError(f"thrift type {t}")

    def struct_() -> dict[int, Any]:
        out: dict[int, Any] = {}
        last = 0
        while True:
            head = byte()
            if head == 0:
                return out
            delta, t = head >> 4, head & 15
            if delta:
                last += delta
            else:
                n = varint()
                last = (n >> 1) ^ -(n & 1)
            out[last] = value(t)

    meta = struct_()
    return [chunk for group in meta[4] for chunk in group[1]]  # row_groups -> columns


def test_merged_rows_are_deduplicated_and_sorted_by_service_then_time() -> None:
    table = pa.concat_tables([rows(50), rows(20)])  # the first 20 records twice
    frame = merge_rows(table)
    assert frame.height == 50
    keys = list(zip(frame["service"].to_list(), frame["timestamp"].to_list(), strict=True))
    assert keys == sorted(keys)


def test_group_files_keep_the_archive_layout_and_carry_metadata_statistics_and_page_indexes() -> None:
    frame = merge_rows(rows(300))
    meta = GroupMeta("c" * 32, tuple(output_name("c" * 32, k, 2) for k in (1, 2)), ("part-a.parquet",), 300)
    files = encode_group(frame, meta, row_group_rows=100)
    assert len(files) == 2
    total = 0
    for data in files:
        f = pq.ParquetFile(io.BytesIO(data))
        assert GroupMeta.from_json(f.metadata.metadata[META_KEY.encode()]) == meta
        assert f.metadata.num_row_groups >= 1
        chunk = f.metadata.row_group(0).column(0)
        assert chunk.is_stats_set and chunk.statistics.has_min_max
        # the same Parquet schema as the ingest job's files: the cold reader casts them alike
        assert conform(f.read(), file_schema()).schema == file_schema()
        assert f.schema.column(12).path == "tags.list.element"
        for column in footer_columns(data):
            assert column.get(4) is not None and column.get(6) is not None  # offset and column index
        total += f.metadata.num_rows
    assert total == 300


def test_a_missing_object_is_told_apart_from_other_errors() -> None:
    from botocore.exceptions import ClientError

    gone = ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
    assert not_found(gone)
    try:
        try:
            raise gone
        except ClientError as exc:
            raise RuntimeError("arrow_scan: get_next failed(): Python exception: NoSuchKey") from exc
    except RuntimeError as wrapped:
        assert not_found(wrapped)
    assert not_found(FileNotFoundError("x"))
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")
    assert not not_found(denied)
    assert not not_found(ValueError("bad parquet"))


def test_an_hour_is_one_group_only_when_it_holds_that_complete_group_and_nothing_else() -> None:
    g, h = "a" * 32, "b" * 32
    assert single_group([output_name(g, 1, 2), output_name(g, 2, 2)]) == g
    assert single_group([output_name(g, 1, 1), "_SUCCESS", ".part-x.inprogress"]) == g
    assert single_group([output_name(g, 1, 2)]) is None  # incomplete
    assert single_group([output_name(g, 1, 1), "part-1-0-0.parquet"]) is None  # late part file
    assert single_group([output_name(g, 1, 1), output_name(h, 1, 1)]) is None  # mid-swap
    assert single_group(["part-1-0-0.parquet"]) is None


def test_a_summary_name_carries_its_group_and_record_count() -> None:
    g = "c" * 32
    assert parse_summary(summary_name(g, 1234)) == (g, 1234)
    assert parse_summary("notes.json") is None
    assert summary_prefix("archive/logs/") == "archive/logs-summaries"
