"""How a collector wraps what it received for Kafka ``raw_logs``: the one place that encodes it.

The envelope itself is defined in :mod:`schemas.envelope`; this module stamps the tenant (always
the one the server authenticated, never one the client wrote) and the message key
``tenant/service``, which keeps one service's lines in one partition and so in order.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.envelope import RawEnvelope

UNKNOWN_SERVICE = "unknown"


MAX_IDEMPOTENCY_KEY_CHARS = 256


# orjson writes at most this many levels of nesting (its reader takes 1024), so an entry deeper
# than this cannot be put on Kafka as JSON.
MAX_DEPTH = 254


class EntryTooDeep(ValueError):
    """An entry nested too deep to encode; refused as that entry (``TOO_DEEP``), not the request."""


def message_key(tenant: str, service: str | None) -> bytes:
    return f"{tenant}/{service or UNKNOWN_SERVICE}".encode()


def request_identity(body: bytes, idempotency_key: str | None = None) -> str:
    """What names a request across a client's retries: its ``Idempotency-Key`` when it sent one,
    else a hash of its (decompressed) body. Entry ``i`` of the request is then ``<this>/i``.

    Without a key, two deliberate sends of byte-identical batches are one batch: their entries
    that carry no timestamp get the same ids. A client that means to send the same lines twice
    sends a different ``Idempotency-Key`` each time.

    >>> request_identity(b"x", "retry-42")
    'key:retry-42'
    """
    if idempotency_key is not None and idempotency_key.strip():
        return "key:" + idempotency_key.strip()
    return "body:" + hashlib.blake2b(body, digest_size=16).hexdigest()


class EnvelopeEncoder:
    """Encodes the entries of one request: the fields they share are built once, not per entry.

    >>> enc = EnvelopeEncoder("acme", source="http")
    >>> key, value = enc.entry({"message": "hi"}, service="api")
    >>> key
    b'acme/api'
    """

    def __init__(
        self,
        tenant: str,
        *,
        source: str,
        received_at: datetime | None = None,
        format: str | None = None,
        attributes: dict[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.tenant = tenant
        self._request_id = request_id
        self._received_at = received_at or datetime.now(UTC)
        self._format = format
        self._attributes = attributes or {}
        base = RawEnvelope(
            tenant=tenant,
            received_at=self._received_at,
            source=source,
            format=format,
            attributes=self._attributes,
        ).to_dict()
        self._base = base

    def entry_id(self, position: int) -> str | None:
        """The stable id of the request's entry at ``position`` (see :func:`request_identity`)."""
        return None if self._request_id is None else f"{self._request_id}/{position}"

    def entry(
        self,
        entry: dict[str, Any],
        *,
        service: str | None,
        host: str | None = None,
        attributes: dict[str, str] | None = None,
        entry_id: str | None = None,
    ) -> tuple[bytes, bytes]:
        """``(key, value)`` for a structured entry. A ``tenant`` field inside it is dropped: the
        tenant is the key's, and a client must not be able to claim another one."""
        if "tenant" in entry:
            entry = {k: v for k, v in entry.items() if k != "tenant"}
        return self._encode("entry", entry, service, host, attributes, entry_id)

    def line(
        self,
        raw: bytes | str,
        *,
        service: str | None,
        host: str | None = None,
        attributes: dict[str, str] | None = None,
        entry_id: str | None = None,
    ) -> tuple[bytes, bytes]:
        """``(key, value)`` for a raw line the ingest job will parse (bytes that are not UTF-8 are
        carried as base64, so nothing is mangled on the way)."""
        if isinstance(raw, bytes):
            envelope = RawEnvelope.for_bytes(
                raw,
                tenant=self.tenant,
                received_at=self._received_at,
                source=self._base["source"],
                service=service or None,
                host=host or None,
                format=self._format,
                attributes={**self._attributes, **(attributes or {})},
                entry_id=entry_id,
            )
            return message_key(self.tenant, service), envelope.encode()
        return self._encode("line", raw, service, host, attributes, entry_id)

    def _encode(
        self,
        kind: str,
        payload: Any,
        service: str | None,
        host: str | None,
        attributes: dict[str, str] | None,
        entry_id: str | None,
    ) -> tuple[bytes, bytes]:
        """The envelope of an ``entry`` or a ``line``: this request's base, the per-item overrides."""
        out = dict(self._base)
        if service:
            out["service"] = service
        if host:
            out["host"] = host
        if attributes:
            out["attributes"] = {**self._attributes, **attributes}
        if entry_id is not None:
            out["entry_id"] = entry_id
        out[kind] = payload
        try:
            return message_key(self.tenant, service), orjson.dumps(out)
        except orjson.JSONEncodeError as exc:  # nesting past orjson's limit (its decoder took it)
            raise EntryTooDeep(
                f"the entry nests deeper than {MAX_DEPTH} levels; flatten it or send it as a line"
            ) from exc
