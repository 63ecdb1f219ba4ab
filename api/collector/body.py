"""Reading request bodies within limits: size before and after decompression."""

from __future__ import annotations

import zlib

import zstandard
from starlette.requests import Request

CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The body (or what it decompresses to) is over the limit: 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit} bytes; send smaller batches")
        self.limit = limit


class UnsupportedEncoding(Exception):
    """415: a Content-Encoding we do not decode."""


class BadBody(Exception):
    """400: the body cannot be read at all (corrupt compression, wrong framing)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw (still compressed) body; raises :class:`BodyTooLarge` without reading past the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Decode ``gzip``/``x-gzip``/``deflate``/``zstd`` bodies, refusing to inflate past ``limit``
    (a few KiB of gzip can expand to gigabytes)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS, limit)
    if encoding == "deflate":
        try:
            return _inflate(body, zlib.MAX_WBITS, limit)
        except BadBody:
            return _inflate(body, -zlib.MAX_WBITS, limit)  # some clients send raw deflate
    if encoding == "zstd":
        return _unzstd(body, limit)
    raise UnsupportedEncoding(
        f"Content-Encoding {content_encoding!r} is not supported; use gzip, deflate or zstd"
    )


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    data = body
    try:
        # A gzip stream may hold several members (concatenated files); each needs its own decoder.
        while data:
            decoder = zlib.decompressobj(wbits)
            pending = data
            while pending:
                piece = decoder.decompress(pending, CHUNK * 16)
                size += len(piece)
                if size > limit:
                    raise BodyTooLarge(limit)
                out.append(piece)
                pending = decoder.unconsumed_tail
            if not decoder.eof:
                raise BadBody("the compressed body is truncated")
            data = decoder.unused_data
    except zlib.error as exc:
        raise BadBody(f"the body is not valid compressed data: {exc}") from exc
    return b"".join(out)


def _unzstd(body: bytes, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
        while True:
            piece = reader.read(CHUNK * 16)
            if not piece:
                break
            size += len(piece)
            if size > limit:
                raise BodyTooLarge(limit)
            out.append(piece)
    except zstandard.ZstdError as exc:
        raise BadBody(f"the body is not valid zstd data: {exc}") from exc
    return b"".join(out)
