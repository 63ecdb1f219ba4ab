"""``strata send``: ship log files to the API in batches, resuming where it stopped.

It remembers, per file, the byte offset after the last line the API acknowledged (202), so a
restart resumes there without sending a line twice. When the API is unreachable (or keeps
answering 503/429), batches go to a local spool on disk and the offset moves on; the spool is
sent first, in order, as soon as the API answers again. ``--follow`` keeps tailing the files and
notices rotation (a new inode) and truncation.

The one window for a duplicate is a crash between the API's 202 and the state file's update; the
pipeline's ``log_id`` makes such a resend land on the same record in every tier.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from infra.settings import get_settings

DEFAULT_BATCH_LINES = 1000
DEFAULT_BATCH_BYTES = 1024 * 1024
RETRY_STATUSES = {429, 502, 503, 504}


class FatalSendError(Exception):
    """The API refused the batch for a reason retrying cannot fix (bad key, too large…)."""


class Unreachable(Exception):
    """The API could not take the batch now."""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class State:
    """Offsets per file, kept in ``state.json``; each entry knows its file's inode, so a rotated or
    replaced file starts again at 0."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "state.json"
        self.files: dict[str, dict[str, int]] = {}
        if self.path.exists():
            self.files = orjson.loads(self.path.read_bytes())

    def offset(self, path: Path) -> int:
        entry = self.files.get(str(path))
        try:
            stat = path.stat()
        except FileNotFoundError:
            return 0
        if entry is None or entry.get("inode") != stat.st_ino or entry.get("dev") != stat.st_dev:
            return 0
        if stat.st_size < entry["offset"]:
            return 0  # truncated in place: start over
        return int(entry["offset"])

    def advance(self, path: Path, offset: int) -> None:
        stat = path.stat()
        self.files[str(path)] = {"inode": stat.st_ino, "dev": stat.st_dev, "offset": offset}
        _atomic_write(self.path, orjson.dumps(self.files))


@dataclass
class Batch:
    service: str
    fmt: str | None
    body: bytes  # raw lines joined by \n, not compressed
    lines: int
    # The file (device, inode) and byte offset the batch starts at: sent as Idempotency-Key, so a
    # batch resent after a crash names its lines as the first send did, even if it now holds more.
    key: str | None = None


class Spool:
    """Batches waiting for the API, one file each, sent in the order they were written."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*.batch"))

    def __len__(self) -> int:
        return len(self._files())

    def put(self, batch: Batch) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}.batch"
        header = orjson.dumps(
            {"service": batch.service, "format": batch.fmt, "lines": batch.lines, "key": batch.key}
        )
        _atomic_write(self.dir / name, header + b"\n" + gzip.compress(batch.body, 1))

    def items(self) -> Iterator[tuple[Path, Batch]]:
        for path in self._files():
            header, _, body = path.read_bytes().partition(b"\n")
            meta = orjson.loads(header)
            yield (
                path,
                Batch(meta["service"], meta["format"], gzip.decompress(body), meta["lines"], meta.get("key")),
            )


class Shipper:
    def __init__(
        self, url: str, key: str, *, retry_s: float = 30.0, timeout: float = 60.0, verify: Any = True
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # verify: an SSLContext for an HTTPS API (api.tls.client_context), which may carry a client
        # certificate that stands for the key.
        self.client = httpx.Client(base_url=url, headers=headers, timeout=timeout, verify=verify)
        self.retry_s = retry_s

    def post(self, batch: Batch) -> dict[str, Any]:
        """Send until 202; raises Unreachable after ``retry_s`` of refusals, FatalSendError on 4xx."""
        params = {"service": batch.service}
        if batch.fmt:
            params["format"] = batch.fmt
        body = gzip.compress(batch.body, 1)
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        if batch.key:
            headers["Idempotency-Key"] = batch.key
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                answer = self.client.post(
                    "/v1/logs/ingest",
                    params=params,
                    content=body,
                    headers=headers,
                )
            except httpx.TransportError as exc:
                raise Unreachable(f"the API is unreachable: {exc}") from exc
            if answer.status_code == 202:
                result: dict[str, Any] = answer.json()
                return result
            if answer.status_code not in RETRY_STATUSES:
                raise FatalSendError(f"the API answered {answer.status_code}: {answer.text[:500]}")
            wait = float(answer.headers.get("retry-after", "1") or 1)
            if time.monotonic() + wait > deadline:
                raise Unreachable(f"the API keeps answering {answer.status_code}")
            time.sleep(wait)


# Lines that may continue the event before them (see core.records.multiline): a batch is not cut
# just before one, so the collector can join a stack trace that straddles a batch limit.
_CONTINUATION_STARTS = (b" ", b"\t", b"Caused by:", b"Suppressed:", b"--- End of ", b"... ")


def read_batches(
    path: Path, start: int, *, max_lines: int, max_bytes: int, final: bool
) -> Iterator[tuple[bytes, int, int]]:
    """``(lines, line count, end offset)`` of the complete lines after ``start``. A last line without
    a newline is only taken when ``final`` (the file is not being written any more). A full batch
    takes in the continuation lines that follow it, up to twice its limits."""
    with open(path, "rb") as handle:
        handle.seek(start)
        offset = start
        lines: list[bytes] = []
        size = 0
        full = False
        while True:
            line = handle.readline()
            if not line:
                break
            if not line.endswith(b"\n") and not final:
                break  # a line still being written
            stripped = line.rstrip(b"\r\n")
            if full and (
                not stripped.startswith(_CONTINUATION_STARTS)
                or len(lines) >= 2 * max_lines
                or size >= 2 * max_bytes
            ):
                yield b"\n".join(lines), len(lines), offset
                lines, size, full = [], 0, False
            offset += len(line)
            if stripped.strip():
                lines.append(stripped)
                size += len(stripped) + 1
            if len(lines) >= max_lines or size >= max_bytes:
                full = True
        if lines or offset != start:
            yield b"\n".join(lines), len(lines), offset


class Progress:
    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.total = max(total_bytes, 1)
        self.done = 0
        self.lines = 0
        self.spooled = 0
        self.started = time.monotonic()
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._text = ""

    def update(self, nbytes: int, lines: int, *, force: bool = False) -> None:
        self.done += nbytes
        self.lines += lines
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < (0.2 if self.tty else 5.0)):
            return
        self._last = now
        fraction = min(self.done / self.total, 1.0)
        rate = self.lines / max(now - self.started, 1e-6)
        bar = "#" * int(fraction * 30)
        text = (
            f"[{bar:<30}] {fraction * 100:5.1f}% {self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB "
            f"{self.lines:,} lines {rate:,.0f} lines/s"
            + (f" spooled batches: {self.spooled}" if self.spooled else "")
        )
        if text == self._text:
            return
        self._text = text
        sys.stderr.write(("\r" + text) if self.tty else (text + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        self.update(0, 0, force=True)
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def drain_spool(spool: Spool, shipper: Shipper) -> bool:
    """Send spooled batches in order; False when the API is still unreachable."""
    for path, batch in spool.items():
        try:
            shipper.post(batch)
        except Unreachable:
            return False
        path.unlink()
    return True


def ship(args: argparse.Namespace) -> int:
    settings = get_settings()
    state_dir = Path(args.state_dir or settings.home / "send")
    state_dir.mkdir(parents=True, exist_ok=True)
    state = State(state_dir)
    spool = Spool(state_dir / "spool")
    from api.tls import client_context

    try:
        verify = client_context(settings)
    except (ValueError, OSError) as exc:  # OSError: a certificate file that cannot be read
        print(f"strata send: {exc}", file=sys.stderr)
        return 2
    shipper = Shipper(
        args.url or settings.api_endpoint, args.key or settings.api_key, retry_s=args.retry, verify=verify
    )
    paths = [Path(p).resolve() for p in args.files]
    for path in paths:
        if not path.is_file():
            print(f"strata send: {path} is not a file", file=sys.stderr)
            return 2
    total = sum(max(p.stat().st_size - state.offset(p), 0) for p in paths)
    progress = Progress(total, enabled=not args.quiet)
    api_down = not drain_spool(spool, shipper)
    try:
        while True:
            for path in paths:
                if not path.exists():
                    continue
                service = args.service or path.name.split(".", 1)[0]
                start = state.offset(path)
                stat = path.stat()
                for body, count, end in read_batches(
                    path, start, max_lines=args.batch_lines, max_bytes=args.batch_bytes, final=not args.follow
                ):
                    if count:
                        key = f"file:{stat.st_dev}-{stat.st_ino}@{start}"
                        batch = Batch(service, args.format, body, count, key)
                        if not api_down:
                            api_down = not drain_spool(spool, shipper)
                        if api_down:
                            spool.put(batch)
                            progress.spooled += 1
                        else:
                            try:
                                shipper.post(batch)
                            except Unreachable:
                                api_down = True
                                spool.put(batch)
                                progress.spooled += 1
                    state.advance(path, end)
                    progress.update(end - start, count)
                    start = end
            if not args.follow:
                break
            time.sleep(args.poll)
            if api_down:
                api_down = not drain_spool(spool, shipper)
    except FatalSendError as exc:
        progress.close()
        print(f"strata send: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.close()
        return 130
    if api_down:
        api_down = not drain_spool(spool, shipper)
    progress.close()
    if api_down:
        print(
            f"strata send: the API is unreachable; {len(spool)} batch(es) wait in {spool.dir} and are sent "
            "first by the next `strata send` with the same --state-dir",
            file=sys.stderr,
        )
        return 3
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--service", help="service of the lines (default: the file name up to its first dot)")
    parser.add_argument(
        "--format", default=None, help="parser hint for the ingest job: auto, json, logfmt, syslog, apache, …"
    )
    parser.add_argument("--follow", "-f", action="store_true", help="keep tailing the files (Ctrl-C stops)")
    parser.add_argument("--url", default=None, help="API address (STRATA_API_URL; default: the local API)")
    parser.add_argument("--key", default=None, help="API key (STRATA_API_KEY)")
    parser.add_argument("--state-dir", default=None, help="offsets and spool (default: $STRATA_HOME/send)")
    parser.add_argument("--batch-lines", type=int, default=DEFAULT_BATCH_LINES)
    parser.add_argument("--batch-bytes", type=int, default=DEFAULT_BATCH_BYTES)
    parser.add_argument(
        "--retry", type=float, default=30.0, help="seconds of 429/503 answers before spooling to disk"
    )
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between checks in --follow mode")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    with contextlib.suppress(BrokenPipeError):
        return ship(args)
    return 1
