"""Offline files (``.log``, ``.ndjson``, ``.gz``, ``.zst``) streamed to Kafka in the background.

The file is read in chunks of at most a few MiB, each chunk is acknowledged by Kafka before the
next is read, so memory stays bounded whatever the file's size. Progress and counts go to the
``upload_jobs`` table, so any API worker can answer ``GET /v1/logs/upload/{id}``.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
from datetime import UTC, datetime
from typing import IO, Any

import zstandard

from api import metrics
from api.collector.batch import MAX_LISTED_ERRORS, Outcome, decode_lines, decode_ndjson
from api.collector.encoder import EnvelopeEncoder, request_identity
from api.deps import AppState
from connectors.kafka.producer import KafkaUnavailable
from connectors.postgres import uploads
from schemas.rejection import RejectReason

log = logging.getLogger(__name__)

ROUTE = "upload"
CHUNK_BYTES = 4 * 1024 * 1024
CHUNK_LINES = 5000
# A broker restart should not fail an upload of hours: keep retrying a chunk for this long.
KAFKA_RETRY_S = 300.0
KEPT_ERRORS = 100
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".json")


def is_ndjson(filename: str, fmt: str | None) -> bool:
    if fmt:
        return fmt in ("ndjson", "jsonl")
    name = filename.lower()
    for suffix in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(suffix)
    return name.endswith(NDJSON_SUFFIXES)


def open_decompressed(raw: IO[bytes]) -> Any:
    """The file's content, decompressing gzip or zstd by its magic bytes (the name may lie)."""
    head = raw.read(4)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head == b"\x28\xb5\x2f\xfd":
        # zstandard's reader has no readline; the buffered wrapper adds it.
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
    return raw


class LineChunks:
    """Reads a byte stream as chunks of whole lines; a line over ``max_line`` is skipped and reported."""

    def __init__(self, stream: Any, max_line: int, max_lines: int = CHUNK_LINES) -> None:
        # Every stream open_decompressed returns has readline(limit).
        self._stream = stream
        self._max_line = max_line
        self._max_lines = max(min(max_lines, CHUNK_LINES), 1)  # a chunk is one request's worth
        self.line_no = 0
        self.too_long: list[int] = []

    def next_chunk(self) -> list[bytes]:
        lines: list[bytes] = []
        size = 0
        while len(lines) < self._max_lines and size < CHUNK_BYTES:
            line = self._stream.readline(self._max_line + 1)
            if not line:
                break
            self.line_no += 1
            if len(line) > self._max_line and not line.endswith(b"\n"):
                # Drain the rest of the long line without holding it.
                while True:
                    rest = self._stream.readline(1 << 20)
                    if not rest or rest.endswith(b"\n"):
                        break
                self.too_long.append(self.line_no - 1)
                lines.append(b"")  # keeps line numbering; refused below
                continue
            lines.append(line.rstrip(b"\n"))
            size += len(line)
        return lines


async def _send_with_retry(state: AppState, outcome: Outcome) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KAFKA_RETRY_S
    while True:
        try:
            await state.producer.send(
                state.settings.raw_topic, outcome.messages, timeout=state.settings.kafka_ack_timeout_s
            )
            return
        except KafkaUnavailable:
            metrics.KAFKA_ERRORS.labels("upload_chunk_retry").inc()
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(2.0)


async def process_upload(
    state: AppState,
    job_id: str,
    tenant: str,
    service: str,
    filename: str,
    fmt: str | None,
    raw: IO[bytes],
) -> None:
    """Stream one uploaded file to Kafka, recording progress in ``upload_jobs``."""
    totals = {"lines": 0, "accepted": 0, "rejected": 0}
    errors: list[dict[str, Any]] = []
    ndjson = is_ndjson(filename, fmt)
    max_line = state.settings.ingest_max_record_bytes

    async def update(**fields: Any) -> None:
        async with state.pool.connection() as conn:
            await uploads.update_upload_job(conn, job_id, **fields)

    try:
        await update(state="running")
        reader = LineChunks(open_decompressed(raw), max_line, state.settings.ingest_max_entries)
        while True:
            first_line = reader.line_no
            lines = await asyncio.to_thread(reader.next_chunk)
            if not lines:
                break
            outcome = Outcome(max_record_bytes=max_line)
            body = b"\n".join(lines)
            # Chunks are cut the same way every time, so a file sent again names its lines again:
            # entries without a timestamp land on the records of the first upload.
            encoder = EnvelopeEncoder(
                tenant,
                source="file",
                format=None if ndjson else fmt,
                attributes={"file": filename},
                request_id=f"{request_identity(body)}@{first_line}",
            )
            if ndjson:
                decode_ndjson(body, outcome, encoder, service=service, host=None)
            else:
                decode_lines(body, outcome, encoder, service=service, host=None)
            for index in reader.too_long:
                outcome.reject(index - first_line, str(RejectReason.TOO_LARGE), f"over {max_line} bytes")
            reader.too_long.clear()
            if outcome.messages:
                await _send_with_retry(state, outcome)
            metrics.ACCEPTED.labels(ROUTE).inc(outcome.accepted)
            for reason, count in outcome.rejected_by_reason.items():
                metrics.REJECTED.labels(ROUTE, reason).inc(count)
            for error in outcome.errors:
                if len(errors) < KEPT_ERRORS:
                    errors.append({**error, "line": first_line + error["index"] + 1})
            totals["lines"] = reader.line_no
            totals["accepted"] += outcome.accepted
            totals["rejected"] += outcome.rejected
            await update(bytes_read=raw.tell(), errors=errors[:MAX_LISTED_ERRORS], **totals)
        await update(state="done", bytes_read=raw.tell(), finished_at=datetime.now(UTC), **totals)
    except asyncio.CancelledError:
        await asyncio.shield(
            update(state="failed", error="the server stopped during the upload; resend the file", **totals)
        )
        raise
    except Exception as exc:
        log.exception("upload %s failed", job_id)
        detail = "Kafka stayed unavailable" if isinstance(exc, KafkaUnavailable) else "processing failed"
        await update(
            state="failed",
            error=f"{detail} after {totals['accepted']} accepted lines: {exc}",
            finished_at=datetime.now(UTC),
            **totals,
        )
    finally:
        raw.close()
