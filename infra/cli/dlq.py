"""``strata dlq``: read the dead-letter topic, and get back the exact bytes of its entries.

Each entry shows its reason and a masked preview; its exact bytes are sealed with
``STRATA_DLQ_KEY`` (core/deadletter.py). ``--decrypt`` opens them, for the operator who fixes the
cause and sends the entry again (``--raw`` writes the bytes alone, one entry per line, ready for
``kcat -P -t raw_logs``)::

    strata dlq show --limit 20
    strata dlq show --decrypt --reason MALFORMED_ENVELOPE
    strata dlq show --decrypt --raw > fixed.ndjson
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import orjson

from infra.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="print entries of the dead-letter topic, oldest first")
    show.add_argument("--topic", help="the dead-letter topic (default: STRATA_DLQ_TOPIC)")
    show.add_argument("--limit", type=int, default=100, help="at most this many entries (default 100)")
    show.add_argument("--reason", help="only entries with this reason code")
    show.add_argument("--tenant", help="only entries of this tenant")
    show.add_argument(
        "--decrypt",
        action="store_true",
        help="open the sealed original with STRATA_DLQ_KEY (as `original_exact`)",
    )
    show.add_argument("--raw", action="store_true", help="with --decrypt: print only the original bytes")
    show.add_argument(
        "--timeout", type=float, default=5.0, help="stop after this many seconds without a message"
    )


def decrypt_entry(entry: dict[str, Any], cipher: Any) -> dict[str, Any]:
    """The entry with ``original_exact`` (its bytes, as text) opened from ``original_sealed``."""
    sealed = entry.get("original_sealed")
    if not isinstance(sealed, str):
        return entry
    return {**entry, "original_exact": cipher.open(sealed).decode("utf-8", "replace")}


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from connectors.kafka.security import librdkafka_security
    from core.deadletter import DeadLetterCipher, DeadLetterKeyError, dlq_secret

    settings = get_settings()
    topic = args.topic or settings.dlq_topic
    cipher = None
    if args.decrypt:
        try:
            cipher = DeadLetterCipher(dlq_secret(settings.dlq_key, local_stack=settings.uses_local_stack))
        except DeadLetterKeyError as exc:
            print(f"strata dlq: {exc}", file=sys.stderr)
            return 2
    elif args.raw:
        print("strata dlq: --raw needs --decrypt", file=sys.stderr)
        return 2
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_servers,
            "group.id": f"strata-dlq-show-{uuid.uuid4().hex}",  # reads without moving anyone's offsets
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **librdkafka_security(settings),
        }
    )
    shown = failed = 0
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            print(f"strata dlq: no topic {topic!r}", file=sys.stderr)
            return 1
        consumer.assign([TopicPartition(topic, p, -2) for p in meta.partitions])  # -2: the beginning
        while shown < args.limit:
            message = consumer.poll(args.timeout)
            if message is None:
                break
            value = message.value()
            if message.error() or value is None:
                continue
            try:
                entry = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if args.reason and entry.get("reason_code") != args.reason:
                continue
            if args.tenant and entry.get("tenant") != args.tenant:
                continue
            if cipher is not None:
                try:
                    entry = decrypt_entry(entry, cipher)
                except DeadLetterKeyError as exc:
                    failed += 1
                    print(f"strata dlq: offset {message.offset()}: {exc}", file=sys.stderr)
                    continue
            if args.raw:
                sys.stdout.write(str(entry.get("original_exact", "")) + "\n")
            else:
                entry["offset"] = {"partition": message.partition(), "offset": message.offset()}
                sys.stdout.write(orjson.dumps(entry).decode() + "\n")
            shown += 1
    except KafkaException as exc:
        print(f"strata dlq: cannot read {topic!r} ({exc}); is the stack up?", file=sys.stderr)
        return 2
    finally:
        consumer.close()
    print(f"{shown} entries" + (f", {failed} not opened" if failed else ""), file=sys.stderr)
    return 1 if failed else 0
