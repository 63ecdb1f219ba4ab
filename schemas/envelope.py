"""The message collectors put on Kafka ``raw_logs``: one JSON object per log line or entry.

Two shapes share one envelope. A raw line to be parsed::

    {"v": 1, "tenant": "acme", "received_at": "2025-02-15T12:00:01.000000Z", "source": "syslog",
     "service": "checkout", "host": "web-1", "format": "auto", "line": "<34>1 2025-02-15T..."}

or an entry that is already structured (HTTP JSON, OTLP, ``_bulk``)::

    {"v": 1, "tenant": "acme", "received_at": "...", "source": "http",
     "entry": {"timestamp": "...", "level": "error", "message": "...", "traceId": "...", "metadata": {}}}

``line_encoding`` is ``"base64"`` when the collector received bytes that are not valid UTF-8, so
the pipeline can replace them and tag the record instead of the collector silently mangling them.
``attributes`` carries collector-side labels (OTLP resource attributes, syslog peer, file name).
``entry_id`` is the collector's stable name for the entry (the client's ``Idempotency-Key`` or
``_id``, else a hash of the request body and the entry's position in it): a retry of the same
request carries the same one, and ``log_id`` uses it in place of the arrival time for an entry that
has no timestamp of its own, so the retry lands on the same record.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from schemas.record import format_ts, parse_ts

ENVELOPE_VERSION = 1


class EnvelopeError(ValueError):
    """The bytes are not a valid envelope."""


@dataclass(slots=True)
class RawEnvelope:
    tenant: str
    received_at: datetime
    source: str = "http"  # http, bulk, otlp, syslog, file, ...
    line: str | None = None
    entry: dict[str, Any] | None = None
    service: str | None = None
    host: str | None = None
    format: str | None = None  # a hint: auto, json, logfmt, syslog, apache, nginx, plain or a pattern name
    line_encoding: str = "utf-8"  # or "base64"
    attributes: dict[str, str] = field(default_factory=dict)
    entry_id: str | None = None

    def line_bytes(self) -> bytes | None:
        """The raw line as bytes (decoding base64 when the collector had to use it)."""
        if self.line is None:
            return None
        if self.line_encoding == "base64":
            return base64.b64decode(self.line)
        return self.line.encode("utf-8", "surrogatepass")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": ENVELOPE_VERSION,
            "tenant": self.tenant,
            "received_at": format_ts(self.received_at),
            "source": self.source,
        }
        for key in ("service", "host", "format"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.line is not None:
            out["line"] = self.line
            if self.line_encoding != "utf-8":
                out["line_encoding"] = self.line_encoding
        if self.entry is not None:
            out["entry"] = self.entry
        if self.attributes:
            out["attributes"] = self.attributes
        if self.entry_id is not None:
            out["entry_id"] = self.entry_id
        return out

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def for_bytes(cls, raw: bytes, *, tenant: str, received_at: datetime, **kwargs: Any) -> RawEnvelope:
        """An envelope for a raw line that may not be valid UTF-8 (what a collector should call)."""
        try:
            return cls(tenant=tenant, received_at=received_at, line=raw.decode("utf-8"), **kwargs)
        except UnicodeDecodeError:
            return cls(
                tenant=tenant,
                received_at=received_at,
                line=base64.b64encode(raw).decode("ascii"),
                line_encoding="base64",
                **kwargs,
            )

    @classmethod
    def from_dict(cls, data: Any) -> RawEnvelope:
        if not isinstance(data, dict):
            raise EnvelopeError("an envelope must be a JSON object")
        tenant = data.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise EnvelopeError("missing tenant")
        line, entry = data.get("line"), data.get("entry")
        if (line is None) == (entry is None):
            raise EnvelopeError("exactly one of 'line' and 'entry' is required")
        if line is not None and not isinstance(line, str):
            raise EnvelopeError("'line' must be a string")
        if entry is not None and not isinstance(entry, dict):
            raise EnvelopeError("'entry' must be an object")
        encoding = data.get("line_encoding") or "utf-8"
        if encoding not in ("utf-8", "base64"):
            raise EnvelopeError(f"unknown line_encoding {encoding!r}")
        if encoding == "base64" and line is not None:
            try:
                base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise EnvelopeError("line is not valid base64") from exc
        try:
            received_at = parse_ts(data["received_at"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError("missing or invalid received_at") from exc
        attributes = data.get("attributes")
        if attributes:
            if not isinstance(attributes, dict):
                raise EnvelopeError("'attributes' must be an object")
            attributes = {str(k): str(v) for k, v in attributes.items()}
        else:
            attributes = {}
        return cls(
            tenant=tenant,
            received_at=received_at,
            source=str(data.get("source") or "unknown"),
            line=line,
            entry=entry,
            service=_opt_str(data.get("service")),
            host=_opt_str(data.get("host")),
            format=_opt_str(data.get("format")),
            line_encoding=encoding,
            attributes=attributes,
            entry_id=_opt_str(data.get("entry_id")),
        )

    @classmethod
    def decode(cls, data: bytes | str) -> RawEnvelope:
        """Parse a ``raw_logs`` message; raises :class:`EnvelopeError` (a ValueError) when invalid."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"not JSON: {exc}") from exc
        return cls.from_dict(obj)


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
