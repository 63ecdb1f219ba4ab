"""Live tail: the processed ``logs`` topic, kept in a short buffer and fanned out to subscribers.

Each API process runs one Kafka consumer (no consumer group: it assigns itself every partition, so
every process sees every record) that starts ``tail_buffer_s`` back in time. A WebSocket
subscriber gets each new record that is its tenant's and matches its filter; a poller reads the
buffer from a position token, which is per Kafka partition and so means the same in any process.
Never the raw topic: it holds unmasked lines.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import orjson

from core.query import Node, QueryError, matches
from infra.settings import Settings
from schemas.record import Record

log = logging.getLogger("strata.tail")

_QUEUE_MAX = 5_000


@dataclass(frozen=True, slots=True)
class Entry:
    partition: int
    offset: int
    arrived_ms: int  # the Kafka message timestamp
    record: Record


@dataclass(eq=False)
class Subscriber:
    tenant: str
    ast: Node
    queue: asyncio.Queue[Entry] = field(default_factory=lambda: asyncio.Queue(_QUEUE_MAX))
    dropped: int = 0


def encode_position(offsets: dict[int, int]) -> str:
    data = orjson.dumps({str(p): o for p, o in sorted(offsets.items())})
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_position(token: str) -> dict[int, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return {int(p): int(o) for p, o in data.items()}
    except (binascii.Error, ValueError, AttributeError, orjson.JSONDecodeError):
        raise QueryError("'since' is neither a time nor a position this API returned") from None


class TailHub:
    """One process's view of the ``logs`` topic: a consumer thread, a buffer, the subscribers."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.settings = settings
        self.topic = topic or settings.logs_topic
        self.buffer: deque[Entry] = deque(maxlen=settings.tail_buffer_records)
        self.subscribers: set[Subscriber] = set()
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: str | None = None
        self.high: dict[int, int] = {}  # next offset per partition, as consumed

    def start(self) -> None:
        """Starts the consumer once; call from the event loop that serves the subscribers."""
        if self.thread is not None:
            return
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._consume, name="strata-tail", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    async def wait_ready(self, timeout_s: float = 10.0) -> bool:
        return await asyncio.to_thread(self.ready.wait, timeout_s)

    # -- the consumer thread ---------------------------------------------------------------------

    def _consume(self) -> None:
        from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

        from connectors.kafka.security import librdkafka_security

        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_servers,
                "group.id": f"strata-tail-{uuid.uuid4().hex}",  # required, never joined: we assign
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 100,
                **librdkafka_security(self.settings),
            }
        )
        try:
            while not self.stopping.is_set():
                try:
                    meta = consumer.list_topics(self.topic, timeout=5)
                    topic_meta = meta.topics.get(self.topic)
                    if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
                        raise KafkaException(f"topic {self.topic!r} not found")
                    since_ms = int((time.time() - self.settings.tail_buffer_s) * 1000)
                    wanted = [TopicPartition(self.topic, p, since_ms) for p in topic_meta.partitions]
                    found = consumer.offsets_for_times(wanted, timeout=10)
                    consumer.assign(
                        [
                            TopicPartition(
                                self.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END
                            )
                            for tp in found
                        ]
                    )
                    self.error = None
                    break
                except KafkaException as exc:
                    self.error = str(exc)
                    log.warning("live tail cannot read %s yet: %s", self.topic, exc)
                    self.stopping.wait(2.0)
            self.ready.set()
            while not self.stopping.is_set():
                messages = consumer.consume(num_messages=500, timeout=0.2)
                fresh: list[Entry] = []
                for message in messages:
                    value = message.value()
                    if message.error() or value is None:
                        continue
                    try:
                        record = Record.from_json(value)
                    except (ValueError, KeyError, TypeError):
                        continue  # not a record: nothing a tail can show
                    ts_type, ts_ms = message.timestamp()
                    entry = Entry(
                        int(message.partition() or 0),
                        int(message.offset() or 0),
                        ts_ms if ts_type else int(time.time() * 1000),
                        record,
                    )
                    fresh.append(entry)
                if fresh:
                    with self.lock:
                        self.buffer.extend(fresh)
                        for e in fresh:
                            self.high[e.partition] = e.offset + 1
                    if self.loop is not None and not self.loop.is_closed():
                        self.loop.call_soon_threadsafe(self._fan_out, fresh)
        finally:
            consumer.close()

    def _fan_out(self, entries: list[Entry]) -> None:
        for sub in list(self.subscribers):
            for entry in entries:
                if entry.record.tenant != sub.tenant or not matches(sub.ast, entry.record):
                    continue
                try:
                    sub.queue.put_nowait(entry)
                except asyncio.QueueFull:
                    sub.dropped += 1

    # -- subscribers and pollers -----------------------------------------------------------------

    def subscribe(self, tenant: str, ast: Node) -> Subscriber:
        self.start()
        sub = Subscriber(tenant, ast)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def poll(
        self, tenant: str, ast: Node, *, since_ms: int | None, position: dict[int, int] | None, limit: int
    ) -> tuple[list[Entry], dict[int, int], bool]:
        """Buffered matches after ``position`` (or that arrived at or after ``since_ms``), oldest
        first; the position to poll from next; and whether records were lost before the buffer."""
        with self.lock:
            entries = list(self.buffer)
            high = dict(self.high)
        gap = False
        if position is not None:
            first: dict[int, int] = {}
            for e in entries:
                first.setdefault(e.partition, e.offset)
            gap = any(position.get(p, 0) < o for p, o in first.items() if p in position)
            picked = [e for e in entries if e.offset >= position.get(e.partition, 0)]
        else:
            floor = since_ms if since_ms is not None else 0
            picked = [e for e in entries if e.arrived_ms >= floor]
        picked = [e for e in picked if e.record.tenant == tenant and matches(ast, e.record)]
        picked.sort(key=lambda e: (e.arrived_ms, e.partition, e.offset))
        nxt = dict(position or {})
        nxt.update(high)
        if len(picked) > limit:
            picked = picked[:limit]
            # resume just after what was returned, per partition
            nxt = dict(position or {})
            for e in picked:
                nxt[e.partition] = max(nxt.get(e.partition, 0), e.offset + 1)
            for e in entries:
                nxt.setdefault(e.partition, e.offset)
        return picked, nxt, gap
