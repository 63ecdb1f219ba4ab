"""Elasticsearch ``_bulk`` bodies into Kafka messages (pure: no I/O, unit-tested).

What real shippers send, and how Elasticsearch reads it:

- An action line is an object whose first known key (``index``, ``create``, ``update``,
  ``delete``) is the action; other top-level keys are ignored, as Elasticsearch ignores them
  (winston-elasticsearch adds ``"attempts": 0``), and so are unknown or null metadata keys
  (``"pipeline": null``).
- The service is the document's own (``service.name``), else its dataset, else the index name
  without what changes on its own (agent version, date, rollover generation), so upgrading an
  agent or a new day does not create a new service.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

import orjson

from api.collector.batch import Outcome, check_json_work
from api.collector.encoder import EnvelopeEncoder
from schemas.rejection import RejectReason

ACTIONS = ("index", "create", "update", "delete")

# Elasticsearch's default dataset of a data stream: says nothing about where the log came from.
_GENERIC_DATASET = "generic"
_ROLLOVER = re.compile(r"-\d{6}$")  # .ds-logs-app-default-2026.11.28-000001, filebeat-7.17.0-000001
_DATE = re.compile(r"[-_.]\d{4}(?:[-_.]\d{2}){1,2}$|[-_.]\d{8}$")  # -2026.11.28, -2026-11, _20261128
_VERSION = re.compile(r"-v?\d+\.\d+(?:\.\d+)?(?:-[a-z0-9]+)?$")  # filebeat-8.1.3, -8.1.3-snapshot
# A data stream's name: <type>-<dataset>-<namespace>.
_DATA_STREAM = re.compile(r"^(?:logs|metrics|traces|synthetics)-(?P<dataset>.+)-(?P<namespace>[^-]+)$")


class BulkFormatError(ValueError):
    """The body cannot be read past some line (400 for the whole request, as Elasticsearch)."""


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _dotted(doc: dict[str, Any], outer: str, inner: str) -> Any:
    """``doc[outer][inner]`` (ECS nested) or ``doc["outer.inner"]`` (dotted keys)."""
    nested = doc.get(outer)
    if isinstance(nested, dict) and inner in nested:
        return nested[inner]
    return doc.get(f"{outer}.{inner}")


def service_from_index(index: str) -> str:
    """The stable part of an index or data stream name.

    >>> [service_from_index(i) for i in ("filebeat-8.1.3-2026.11.28", "logs-2026.11.28",
    ...                                  ".ds-logs-app-default-2026.11.28-000001", "web")]
    ['filebeat', 'logs', 'app', 'web']
    """
    name = index.strip().lower()
    if name.startswith(".ds-"):
        name = name[len(".ds-") :]
    # Suffixes come in the order an agent appends them: version, then date, then generation.
    for suffix in (_ROLLOVER, _DATE, _VERSION):
        stripped = suffix.sub("", name)
        name = stripped or name
    stream = _DATA_STREAM.match(name)
    if stream and stream.group("dataset") != _GENERIC_DATASET:
        return stream.group("dataset")
    if stream:
        return name.split("-", 1)[0]  # logs-generic-default: only the type is left
    return name or index


def service_of(doc: dict[str, Any], index: str) -> str:
    """The service a _bulk document belongs to: ``service.name``, then ``data_stream.dataset`` or
    ``event.dataset``, then the fields other agents name their program by, then the index name
    (:func:`service_from_index`)."""
    named = _text(_dotted(doc, "service", "name"))
    if named is None:
        service = doc.get("service")
        named = _text(service) if isinstance(service, str) else None
    if named:
        return named
    for outer in ("data_stream", "event"):
        dataset = _text(_dotted(doc, outer, "dataset"))
        if dataset and dataset != _GENERIC_DATASET:
            return dataset
    for key in ("app", "program", "PROGRAM"):
        if program := _text(doc.get(key)):
            return program
    kubernetes = doc.get("kubernetes")
    container = kubernetes.get("container") if isinstance(kubernetes, dict) else None
    if isinstance(container, dict) and (name := _text(container.get("name"))):
        return name
    return service_from_index(index)


def host_of(doc: dict[str, Any]) -> str | None:
    host = doc.get("host")
    if isinstance(host, dict):
        host = host.get("name") or host.get("hostname")
    if not isinstance(host, str):
        host = doc.get("host.name") or doc.get("hostname") or doc.get("HOST")
    return _text(host)


def parse_action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    """The action and its metadata from an action line (``number`` counts from 1 for messages)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BulkFormatError(f"malformed action/metadata line [{number}]: not JSON") from None
    if not isinstance(doc, dict) or not doc:
        raise BulkFormatError(f"malformed action/metadata line [{number}]: expected an object")
    action = next((key for key in doc if key in ACTIONS), None)
    if action is None:
        raise BulkFormatError(f"unknown action [{next(iter(doc))}] at line [{number}]")
    meta = doc[action]
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise BulkFormatError(f"malformed action/metadata line [{number}]: [{action}] must be an object")
    return action, meta


def decode_bulk(
    body: bytes,
    encoder: EnvelopeEncoder,
    *,
    default_index: str | None,
    max_record_bytes: int,
    max_entries: int = 0,
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Parse a bulk body into messages and one result slot per action, in order.

    Slots of accepted items are completed after Kafka acknowledges them; refused ones already carry
    their error. An action line that is not JSON makes the rest unreadable, as in Elasticsearch.
    """
    check_json_work(body, max_entries)
    out = Outcome(max_record_bytes=max_record_bytes, max_entries=max_entries)
    items: list[dict[str, Any]] = []
    lines = iter(body.split(b"\n"))
    line_number = 0
    for raw_action in lines:
        line_number += 1
        if not raw_action.strip():
            continue
        position = len(items)
        out.received += 1
        action, meta = parse_action(raw_action, line_number)
        index = str(meta.get("_index") or default_index or "")
        client_id = meta.get("_id")
        doc_id = str(client_id or uuid.uuid4().hex)
        item: dict[str, Any] = {"_index": index, "_id": doc_id}
        items.append({action: item})
        source: bytes | None = None
        if action in ("index", "create", "update"):
            source = next(lines, None)
            line_number += 1
            if source is None or not source.strip():
                raise BulkFormatError(f"the {action} action at line [{line_number - 1}] has no document line")
        if action in ("update", "delete"):
            _item_error(
                out,
                item,
                position,
                "action_not_supported",
                f"{action} is not supported: logs are append-only",
            )
            continue
        if not index:
            _item_error(out, item, position, "action_request_validation_exception", "index is missing")
            continue
        assert source is not None
        if len(source) > max_record_bytes:
            _item_error(
                out,
                item,
                position,
                str(RejectReason.TOO_LARGE),
                f"the document is {len(source)} bytes; the limit is {max_record_bytes}",
            )
            continue
        try:
            doc = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            _item_error(
                out, item, position, str(RejectReason.MALFORMED_JSON), f"the document is not JSON: {exc}"
            )
            continue
        if not isinstance(doc, dict) or not doc:
            _item_error(out, item, position, "NOT_AN_OBJECT", "the document must be a non-empty JSON object")
            continue
        # The client's _id names the document across retries, as in Elasticsearch (per index).
        entry_id = f"_id:{index}/{client_id}" if client_id else encoder.entry_id(position)

        message = functools.partial(
            encoder.entry,
            doc,
            service=service_of(doc, index),
            host=host_of(doc),
            attributes={"index": index},
            entry_id=entry_id,
        )
        if not out.encode(position, message):
            error = out.errors[-1] if out.errors and out.errors[-1]["index"] == position else None
            item.update(
                status=400,
                error={
                    "type": error["reason"] if error else str(RejectReason.TOO_LARGE),
                    "reason": error["detail"] if error else "too large",
                },
            )
    return out, items


def _item_error(out: Outcome, item: dict[str, Any], position: int, reason: str, detail: str) -> None:
    out.reject(position, reason, detail)
    item.update(status=400, error={"type": reason, "reason": detail})
