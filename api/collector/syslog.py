"""A syslog receiver (RFC 5424 and RFC 3164, UDP, TCP and TLS) writing to
Kafka ``raw_logs``.

Each listener belongs to one tenant (``--tcp 0.0.0.0:6514=acme``; without ``=TENANT`` the
``--tenant`` default). Syslog has no acknowledgements, so nothing is lost on our side in two ways:
the Kafka producer retries without a deadline while the broker is away, and when its local queue
fills up the TCP listeners stop reading, so senders (rsyslog, syslog-ng) queue on their side
instead. UDP cannot push back: datagrams that arrive while the queue is full are counted as dropped.

A TLS listener (RFC 5425, ``--tls``) serves the certificate of ``server_tls_cert_file``. With
client certificates on (``server_tls_client_ca_file``), a sender whose certificate is registered to
a tenant with the ``ingest`` scope (``strata tenant cert-add``) sends as that tenant; a sender with
a certificate that is not registered, revoked or lacks the scope is disconnected with a log line;
one without a certificate (when they are optional) sends as the listener's tenant.

TCP framing follows RFC 6587: octet counting (``123 <34>1 …``) when a frame starts with a digit,
otherwise one message per line (LF, optional CR; a NUL also ends a message).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from api.collector.encoder import EnvelopeEncoder
from connectors.kafka.producer import Producer, producer_config
from core.records.multiline import Event, MultilineJoiner
from core.records.parsers import parse_syslog
from infra.settings import Settings

log = logging.getLogger("strata.syslog")

# Stop reading TCP when this many messages wait for Kafka; resume below the low mark.
HIGH_WATER = 200_000
LOW_WATER = 50_000


class FramingError(ValueError):
    pass


_OCTET_COUNT = re.compile(rb"(\d{1,10}) ")
_DIGITS = re.compile(rb"\d{1,10}")
_SEPARATORS = b"\r\n\0 "


class FrameDecoder:
    """Splits a TCP byte stream into syslog messages (RFC 6587 octet counting or LF/NUL framing).

    Memory stays bounded: an oversized frame or line is skipped as it streams in and counted.
    """

    def __init__(self, max_message: int) -> None:
        self._buf = bytearray()
        self._max = max_message
        self._skip = 0  # bytes still to discard of an oversized octet-counted frame
        self._discarding_line = False
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        while buf:
            if self._skip:
                dropped = min(self._skip, len(buf))
                del buf[:dropped]
                self._skip -= dropped
                continue
            if self._discarding_line:
                end = _line_end(buf)
                if end < 0:
                    buf.clear()
                    break
                del buf[: end + 1]
                self._discarding_line = False
                continue
            if buf[0] in _SEPARATORS:
                del buf[:1]
                continue
            if buf[:1].isdigit():
                match = _OCTET_COUNT.match(buf)
                if match:
                    length, start = int(match.group(1)), match.end()
                    if length > self._max:
                        self.oversized += 1
                        del buf[:start]
                        self._skip = length
                        continue
                    if len(buf) < start + length:
                        break
                    out.append(bytes(buf[start : start + length]).rstrip(b"\r\n"))
                    del buf[: start + length]
                    continue
                if _DIGITS.fullmatch(buf):
                    break  # the length field is not complete yet
            end = _line_end(buf)
            if end < 0:
                if len(buf) > self._max:
                    self.oversized += 1
                    self._discarding_line = True
                    buf.clear()
                break
            line = bytes(buf[:end]).rstrip(b"\r")
            del buf[: end + 1]
            if len(line) > self._max:
                self.oversized += 1
            elif line.strip():
                out.append(line)
        return out

    def flush(self) -> list[bytes]:
        """What is left when the connection closes: a last line without its newline."""
        rest = b"" if self._skip or self._discarding_line else bytes(self._buf).strip(_SEPARATORS)
        self._buf.clear()
        return [rest] if rest and len(rest) <= self._max else []


def _line_end(buf: bytearray) -> int:
    newline, nul = buf.find(b"\n"), buf.find(b"\0")
    if newline < 0:
        return nul
    return newline if nul < 0 else min(newline, nul)


@dataclass
class Listener:
    transport: str  # tcp, tls or udp
    host: str
    port: int
    tenant: str


def parse_listener(text: str, transport: str, default_tenant: str) -> Listener:
    """``HOST:PORT`` or ``HOST:PORT=TENANT``."""
    address, _, tenant = text.partition("=")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT[=TENANT], got {text!r}")
    return Listener(transport, host.strip("[]") or "0.0.0.0", int(port), tenant or default_tenant)


@dataclass
class Stats:
    received: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    oversized: int = 0
    split_bursts: int = 0  # reads holding more messages than STRATA_INGEST_MAX_ENTRIES


# How many senders may have an event waiting for its continuation at once.
MAX_JOINS = 10_000
_TAB_ESCAPE = "#011"


def _unescape(body: str) -> str:
    return "\t" + body[len(_TAB_ESCAPE) :] if body.startswith(_TAB_ESCAPE) else body


@dataclass
class _Line:
    message: bytes
    tenant: str
    transport: str
    peer: str
    service: str | None
    host: str | None
    # When it arrived: a line held for a continuation keeps its own arrival time.
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Join:
    joiner: MultilineJoiner
    lines: list[tuple[_Line, str]] = field(default_factory=list)


class SyslogCollector:
    """Turns syslog messages into envelopes on Kafka; shared by all listeners of one process."""

    def __init__(self, settings: Settings, producer: Producer, service: str | None) -> None:
        self.settings = settings
        self.producer = producer
        self.service = service
        self.stats = Stats()
        self._paused: set[asyncio.Transport] = set()
        # Per (tenant, transport, host, program, pid): the joiner and the messages it holds.
        self._joins: dict[tuple[Any, ...], _Join] = {}
        # Envelopes taken but not yet in Kafka's queue (it was full): sent first, in order.
        self._unsent: deque[tuple[bytes, bytes]] = deque()
        self._tcp: set[asyncio.Transport] = set()
        # Client certificates checked in PostgreSQL, until when each answer is trusted.
        self._cert_infos: dict[str, tuple[Any, float]] = {}

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            log.error("Kafka refused a syslog message: %s", err)

    def handle(self, message: bytes, tenant: str, transport: str, peer: str) -> bool:
        """Take one message; False (nothing taken) while Kafka's queue is full and what was taken
        before still waits for room, so TCP readers pause and UDP counts the datagram dropped.

        A message whose text continues the one before from the same sender, program and process
        (a stack trace logged line by line) joins it: one record, as for every other path.
        """
        if self._unsent and not self._send_unsent():
            return False
        text = message.decode("utf-8", "replace")
        parsed = parse_syslog(text)
        service = self.service or (parsed.service if parsed and parsed.service else None)
        # A message without HOSTNAME (Python's SysLogHandler, "<11>app: msg") is from its sender's
        # address, as rsyslog's fromhost-ip.
        host = parsed.host if parsed and parsed.host else peer or None
        self.stats.received[tenant] += 1
        line = _Line(message, tenant, transport, peer, service, host)
        if parsed is None:  # not syslog: nothing to join it to
            self._send(line.message, line)
            return True
        key = (tenant, transport, host, service, parsed.attributes.get("pid"))
        join = self._joins.get(key)
        if join is None:
            if len(self._joins) >= MAX_JOINS:  # bounded: the oldest source's event goes now
                self._emit(next(iter(self._joins)), flush=True)
            join = self._joins[key] = _Join(MultilineJoiner(flush_after=self.settings.multiline_flush_s))
        # rsyslog writes a tab as "#011" (its control-character escape): a frame's indent.
        body = _unescape(parsed.message or "")
        join.lines.append((line, body))
        self._emit_events(key, join, join.joiner.push(body, time.monotonic()))
        return True

    def poll(self, now: float) -> None:
        """Emit the events of sources that went quiet (their last line may still get a continuation
        until then), and retry what Kafka had no room for."""
        for key in list(self._joins):
            join = self._joins[key]
            self._emit_events(key, join, join.joiner.poll(now))
        if self._unsent:
            self._send_unsent()

    def flush(self) -> None:
        """Everything pending, at shutdown."""
        for key in list(self._joins):
            self._emit(key, flush=True)
        self._send_unsent()

    def _emit(self, key: tuple[Any, ...], *, flush: bool) -> None:
        join = self._joins[key]
        self._emit_events(key, join, join.joiner.flush() if flush else [])

    def _emit_events(self, key: tuple[Any, ...], join: _Join, events: list[Event]) -> None:
        for event in events:
            taken, join.lines = join.lines[: event.lines], join.lines[event.lines :]
            first = taken[0][0]
            if len(taken) == 1 and "multiline_split" not in event.tags:
                self._send(first.message, first)
                continue
            # The first message as it came (its header is the record's), then the later lines.
            text = "\n".join([first.message.decode("utf-8", "replace"), *(body for _, body in taken[1:])])
            self._send(text, first, split="multiline_split" in event.tags)
        if not join.lines and not join.joiner.pending:
            del self._joins[key]

    def _send(self, payload: bytes | str, line: _Line, *, split: bool = False) -> None:
        # The encoder's received_at is per message here: syslog lines arrive one by one.
        encoder = EnvelopeEncoder(line.tenant, source="syslog", format="syslog", received_at=line.received_at)
        attributes = {"peer": line.peer, "transport": line.transport}
        if split:
            attributes["multiline_split"] = "true"
        key, value = encoder.line(payload, service=line.service, host=line.host, attributes=attributes)
        self._unsent.append((key, value))
        self._send_unsent()

    def _send_unsent(self) -> bool:
        """Hand what waits to Kafka in order; False while its queue is still full."""
        while self._unsent:
            key, value = self._unsent[0]
            if not self.producer.produce(self.settings.raw_topic, key, value, self._on_delivery):
                return False
            self._unsent.popleft()
        return True

    def tenant_of(self, ssl_object: Any, listener: Listener, peer: str) -> str | None:
        """The tenant a TLS sender writes as: its registered certificate's, the listener's when it
        presented none; None (disconnect it) for a certificate that may not send."""
        from api.tls import peer_fingerprint

        fp = peer_fingerprint(ssl_object)
        if fp is None:
            return listener.tenant
        info = self._cert_infos.get(fp)
        if info is None or info[1] < time.monotonic():
            import psycopg

            from connectors.postgres.certs import verify_cert_sync

            try:
                # Once per connection, and senders hold their connection: a short block of the
                # loop is cheaper than a pool for this.
                with psycopg.connect(self.settings.postgres_dsn, connect_timeout=5, autocommit=True) as conn:
                    found = verify_cert_sync(conn, fp)
            except psycopg.Error as exc:
                log.error(
                    "cannot check the client certificate of %s in PostgreSQL (%s): disconnected", peer, exc
                )
                return None
            info = (found, time.monotonic() + self.settings.auth_cache_s)
            self._cert_infos[fp] = info
        found = info[0]
        problem = (
            "is not registered to a tenant (strata tenant cert-add)"
            if found is None
            else "has been revoked"
            if found.revoked
            else f"belongs to disabled tenant {found.tenant_id!r}"
            if found.tenant_disabled
            else "lacks the 'ingest' scope"
            if "ingest" not in found.scopes
            else None
        )
        if problem or found is None:
            log.warning("syslog over TLS from %s: client certificate %s %s: disconnected", peer, fp, problem)
            return None
        return found.tenant_id

    def register_tcp(self, transport: asyncio.Transport) -> None:
        self._tcp.add(transport)
        if self._paused:
            transport.pause_reading()
            self._paused.add(transport)

    def holds(self, transport: asyncio.Transport) -> bool:
        """Whether Kafka's backpressure has paused this connection (only it may resume it)."""
        return transport in self._paused

    def unregister_tcp(self, transport: asyncio.Transport) -> None:
        self._tcp.discard(transport)
        self._paused.discard(transport)

    def backpressure(self) -> None:
        """Pause or resume every TCP connection by the depth of the producer's queue."""
        queued = self.producer.queued()
        if queued >= HIGH_WATER and not self._paused:
            log.warning("Kafka is behind (%d queued): pausing TCP reads", queued)
            for transport in self._tcp:
                transport.pause_reading()
                self._paused.add(transport)
        elif queued <= LOW_WATER and self._paused:
            log.info("Kafka caught up: resuming TCP reads")
            for transport in list(self._paused):
                if not transport.is_closing():
                    transport.resume_reading()
            self._paused.clear()


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, collector: SyslogCollector, listener: Listener) -> None:
        self.collector = collector
        self.listener = listener
        self.decoder = FrameDecoder(collector.settings.ingest_max_record_bytes)
        self.peer = ""
        self.tenant = listener.tenant
        self.transport: asyncio.Transport | None = None
        self._backlog: list[bytes] | None = None  # the rest of a burst split at the entry cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        if self.listener.transport == "tls":
            tenant = self.collector.tenant_of(
                transport.get_extra_info("ssl_object"), self.listener, self.peer
            )
            if tenant is None:
                transport.close()
                return
            self.tenant = tenant
        self.transport = transport
        self.collector.register_tcp(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:  # refused in connection_made
            return
        self._deliver(self.decoder.feed(data))

    def _deliver(self, messages: list[bytes]) -> None:
        if self._backlog is not None:  # a split burst is still being sent: keep the order
            self._backlog.extend(messages)
            return
        cap = self.collector.settings.ingest_max_entries
        if cap and len(messages) > cap and self.transport is not None:
            # One read of tiny frames can hold a hundred thousand messages: send the cap's worth,
            # stop reading this connection and let the loop serve the others before the rest.
            # Nothing is dropped: a syslog sender has no reply channel to learn it should resend.
            self.collector.stats.split_bursts += 1
            self.transport.pause_reading()
            self._backlog = messages[cap:]
            self._send(messages[:cap])
            asyncio.get_running_loop().call_soon(self._drain)
            return
        self._send(messages)

    def _drain(self) -> None:
        cap = self.collector.settings.ingest_max_entries
        backlog = self._backlog or []
        now, self._backlog = backlog[:cap], backlog[cap:]
        self._send(now)
        if self._backlog:
            asyncio.get_running_loop().call_soon(self._drain)
            return
        self._backlog = None
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self.collector.holds(transport):
            transport.resume_reading()

    def _send(self, messages: list[bytes]) -> None:
        for message in messages:
            while not self.collector.handle(message, self.tenant, self.listener.transport, self.peer):
                # librdkafka's own queue is full: serve its callbacks until there is room. This
                # blocks the loop briefly, which is the backpressure we want on every connection.
                self.collector.producer.flush(0.1)
        self.collector.stats.oversized += self.decoder.oversized
        self.decoder.oversized = 0
        self.collector.backpressure()

    def eof_received(self) -> bool | None:
        self._deliver(self.decoder.flush())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.collector.unregister_tcp(self.transport)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, collector: SyslogCollector, listener: Listener) -> None:
        self.collector = collector
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        message = data.rstrip(b"\r\n\0")
        if not message:
            return
        if len(message) > self.collector.settings.ingest_max_record_bytes:
            self.collector.stats.oversized += 1
            return
        if not self.collector.handle(message, self.listener.tenant, "udp", str(addr[0])):
            self.collector.stats.dropped += 1


async def serve(
    settings: Settings, listeners: list[Listener], service: str | None, stop: asyncio.Event
) -> Stats:
    """Run the listeners until ``stop`` is set; then flush Kafka and return the counts."""
    context = None
    if any(listener.transport == "tls" for listener in listeners):
        from api.tls import server_context

        context = server_context(settings)
        if context is None:
            raise ValueError(
                "a TLS listener needs STRATA_SERVER_TLS_CERT_FILE and STRATA_SERVER_TLS_KEY_FILE"
            )
    # No delivery deadline (0): a syslog line has nowhere to go back to, so it waits for Kafka.
    producer = Producer(producer_config(settings, delivery_timeout_s=0, client_id="strata-syslog")).start()
    collector = SyslogCollector(settings, producer, service)
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer] = []
    transports: list[asyncio.BaseTransport] = []
    try:
        for listener in listeners:
            if listener.transport in ("tcp", "tls"):
                servers.append(
                    await loop.create_server(
                        lambda listener=listener: _TcpProtocol(collector, listener),
                        listener.host,
                        listener.port,
                        reuse_address=True,
                        ssl=context if listener.transport == "tls" else None,
                    )
                )
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda listener=listener: _UdpProtocol(collector, listener),  # type: ignore[misc]
                    local_addr=(listener.host, listener.port),
                )
                transports.append(transport)
            log.info(
                "listening on %s %s:%d for tenant %s",
                listener.transport,
                listener.host,
                listener.port,
                listener.tenant,
            )
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except TimeoutError:
                collector.poll(time.monotonic())
                collector.backpressure()
    finally:
        for server in servers:
            server.close()
        for endpoint in transports:
            endpoint.close()
        collector.flush()
        left = await asyncio.to_thread(producer.close, 30.0)
        if left:
            log.error("%d syslog messages were not acknowledged by Kafka before exit", left)
            collector.stats.failed += left
    return collector.stats
