"""The one Kafka producer setup every Strata writer shares.

``producer_config`` holds the delivery guarantees (acks=all, idempotence, compression, batching);
``java_producer_properties`` is the same thing for a JVM client such as Flink's KafkaSink.
``Producer`` wraps confluent-kafka (librdkafka) for asyncio code: ``await producer.send(topic, batch,
timeout=…)`` returns only when the broker has acknowledged every message of the batch, and raises
``KafkaUnavailable`` otherwise, so a caller never reports success for a message Kafka does not have.

    producer = Producer(producer_config(settings))
    producer.start()
    await producer.send("raw_logs", [(b"acme/api", b'{"...": 1}')], timeout=10)
    producer.close()

Why librdkafka and not kafka-python: see docs/collectors.md (it is several times faster per message,
which is most of the collector's CPU budget on two cores).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import confluent_kafka

from connectors.kafka.security import java_security, librdkafka_security
from infra.settings import Settings

log = logging.getLogger(__name__)

# Compression is paid on the API's CPU; lz4 costs a fraction of zstd's there and still shrinks
# JSON log lines several times over on the wire and on the broker's disk.
COMPRESSION = "lz4"


def producer_config(
    settings: Settings,
    *,
    delivery_timeout_s: float | None = None,
    client_id: str = "strata-collector",
    **overrides: Any,
) -> dict[str, Any]:
    """librdkafka settings for a Strata producer.

    ``delivery_timeout_s`` bounds how long a message may wait for the broker (queueing and retries
    included) before its delivery fails; ``None`` takes ``kafka_ack_timeout_s``. ``0`` waits forever.
    """
    timeout_s = settings.kafka_ack_timeout_s if delivery_timeout_s is None else delivery_timeout_s
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_servers,
        "client.id": client_id,
        # Idempotence implies acks=all and in-order retries without duplicates per partition.
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": COMPRESSION,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "message.max.bytes": max(settings.ingest_max_record_bytes + 64 * 1024, 1_000_000),
        "message.timeout.ms": int(timeout_s * 1000),
        "queue.buffering.max.kbytes": 262_144,
        "queue.buffering.max.messages": 500_000,
        "socket.keepalive.enable": True,
        # Keep reconnect attempts frequent so a broker that is back is used within a second.
        "reconnect.backoff.max.ms": 1000,
        **librdkafka_security(settings),
    }
    config.update(overrides)
    return config


def java_producer_properties(settings: Settings) -> dict[str, str]:
    """The same guarantees for a JVM producer (Flink's KafkaSink, Kafka tools)."""
    return {
        "bootstrap.servers": settings.kafka_servers,
        "enable.idempotence": "true",
        "acks": "all",
        "compression.type": COMPRESSION,
        "linger.ms": "5",
        "batch.size": "1000000",
        "max.request.size": str(max(settings.ingest_max_record_bytes + 64 * 1024, 1_048_576)),
        "delivery.timeout.ms": "120000",
        **java_security(settings),
    }


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge every message in time; nothing may be reported as accepted."""


class _Batch:
    """Counts a batch's delivery reports; completed on the event loop when the last one arrives."""

    __slots__ = ("error", "future", "loop", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.remaining = count
        self.error: str | None = None

    # Runs on the poll thread.
    def on_delivery(self, err: Any, _msg: Any) -> None:
        self.remaining -= 1
        if err is not None and self.error is None:
            self.error = str(err)
            # The first failure decides the answer; the rest need not be waited for.
            self.loop.call_soon_threadsafe(self._finish)
        elif self.remaining == 0:
            self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if self.future.done():
            return
        if self.error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(KafkaUnavailable(self.error))


class Producer:
    """A confluent-kafka producer with a poll thread, usable from asyncio and from plain threads."""

    def __init__(self, config: dict[str, Any], *, on_error: Callable[[str], None] | None = None) -> None:
        self._config = dict(config)
        self._on_error = on_error
        self._producer = confluent_kafka.Producer({**self._config, "error_cb": self._error_cb})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def _error_cb(self, err: Any) -> None:
        self.last_error = str(err)
        if self._on_error is not None:
            self._on_error(err.name() if hasattr(err, "name") else "error")
        if hasattr(err, "fatal") and err.fatal():
            log.error("Kafka producer fatal error: %s", err)
        else:
            log.warning("Kafka producer: %s", err)

    def start(self) -> Producer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
            self._thread.start()
        return self

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(
        self, topic: str, messages: Sequence[tuple[bytes | None, bytes]], *, timeout: float
    ) -> None:
        """Produce the messages and wait until the broker has acknowledged them all.

        Raises ``KafkaUnavailable`` when any of them was not acknowledged within ``timeout`` seconds
        (set the config's delivery timeout to the same value so the producer gives up too).
        """
        if not messages:
            return
        loop = asyncio.get_running_loop()
        batch = _Batch(loop, len(messages))
        deadline = loop.time() + timeout
        produce = self._producer.produce
        callback = batch.on_delivery
        for key, value in messages:
            while True:
                try:
                    produce(topic, value, key, on_delivery=callback)
                    break
                except BufferError:
                    # The local queue is full (Kafka slow or gone): wait for room, up to the deadline.
                    if loop.time() >= deadline:
                        raise KafkaUnavailable("the producer's local queue stayed full") from None
                    await asyncio.sleep(0.01)
                except confluent_kafka.KafkaException as exc:
                    raise KafkaUnavailable(str(exc)) from exc
        # The grace covers delivery reports that arrive a little after librdkafka's own timeout.
        remaining = max(deadline - loop.time(), 0.0) + 2.0
        try:
            await asyncio.wait_for(asyncio.shield(batch.future), remaining)
        except TimeoutError:
            raise KafkaUnavailable(f"no acknowledgement from Kafka within {timeout:g}s") from None

    def produce(
        self, topic: str, key: bytes | None, value: bytes, on_delivery: Callable[[Any, Any], None]
    ) -> bool:
        """Queue one message without waiting; False when the local queue is full."""
        try:
            self._producer.produce(topic, value, key, on_delivery=on_delivery)
        except BufferError:
            return False
        return True

    def queued(self) -> int:
        """Messages not yet acknowledged."""
        return len(self._producer)

    def flush(self, timeout: float) -> int:
        """Wait for everything queued; returns how many messages are still not acknowledged."""
        return int(self._producer.flush(timeout))

    def check(self, topic: str, timeout: float = 3.0) -> None:
        """Raise ``KafkaUnavailable`` unless a broker answers and ``topic`` exists (blocking)."""
        try:
            metadata = self._producer.list_topics(topic, timeout=timeout)
        except confluent_kafka.KafkaException as exc:
            raise KafkaUnavailable(str(exc)) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise KafkaUnavailable(f"topic {topic!r} is not available: {found.error if found else 'missing'}")

    def close(self, timeout: float = 10.0) -> int:
        """Flush, stop the poll thread; returns how many messages were left unacknowledged."""
        left = self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        return left
