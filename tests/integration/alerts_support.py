"""Shared pieces of the alert integration tests: a webhook receiver that can be taken down, an SMTP
sink (aiosmtpd), raw_logs records with chosen event times, and the alerts job as a process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from infra.settings import Settings
from schemas.envelope import RawEnvelope
from tests.integration.collector_support import free_port

REPO = Path(__file__).resolve().parents[2]


class WebhookReceiver:
    """An HTTP endpoint recording every POST as (arrival time, path, JSON body)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[tuple[float, str, Any]] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.status
                if status < 300:
                    with receiver._lock:
                        receiver.received.append((arrived, self.path, orjson.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        return Handler

    def up(self) -> WebhookReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server = self._server
        threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True).start()
        return self

    def down(self) -> None:
        """Stop listening: senders get 'connection refused', as from a receiver that is down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, path: str) -> list[Any]:
        with self._lock:
            return [b for _, p, b in self.received if p == path]

    def wait_for(self, path: str, count: int, timeout: float = 60.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.bodies(path)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.bodies(path))} calls after {timeout}s, expected {count}")


class SmtpSink:
    """aiosmtpd on a free port, keeping every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []

    def __enter__(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} e-mails, expected {count}"
        return self.messages


@contextmanager
def topics(settings: Settings, *partitions: int) -> Iterator[list[str]]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})
    names = [f"test-alerts-{uuid.uuid4().hex[:10]}" for _ in partitions]
    new = [NewTopic(n, p, 1) for n, p in zip(names, partitions, strict=True)]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)
    try:
        yield names
    finally:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def hour_ago() -> datetime:
    """An event-time origin on a whole 5 minutes, recent enough for the pipeline's skew checks."""
    now = datetime.now(UTC) - timedelta(hours=1)
    return now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)


class Logs:
    """Writes records to raw_logs as a collector would, with event times chosen by the test."""

    def __init__(self, settings: Settings, topic: str, tenant: str, t0: datetime) -> None:
        self.topic, self.tenant, self.t0 = topic, tenant, t0
        self.producer = Producer({"bootstrap.servers": settings.kafka_servers, "linger.ms": 1})
        self.acked: dict[str, float] = {}  # message -> when Kafka acknowledged it

    def send(
        self,
        at_s: float,
        level: str,
        service: str = "payment-service",
        host: str = "web-1",
        message: str | None = None,
    ) -> str:
        ts = self.t0 + timedelta(seconds=at_s)
        text = message or f"{level.lower()} at {at_s}s {uuid.uuid4().hex[:8]}"
        envelope = RawEnvelope(
            tenant=self.tenant,
            received_at=datetime.now(UTC),
            service=service,
            host=host,
            entry={"timestamp": ts.isoformat(), "level": level, "message": text},
        )

        def acked(err: Any, _msg: Any, text: str = text) -> None:
            if err is None:
                self.acked[text] = time.time()

        # One key for every record of a test: one partition, so they reach the job in this order.
        self.producer.produce(self.topic, envelope.encode(), key=self.tenant.encode(), on_delivery=acked)
        self.producer.poll(0)
        return text

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


class AlertsJob:
    """``strata job run alerts`` as its own process group, so a test can kill it the hard way."""

    def __init__(
        self,
        settings: Settings,
        raw_topic: str,
        alerts_topic: str,
        checkpoints: Path,
        log_file: Path,
        **env: str,
    ) -> None:
        # A PyFlink job run earlier in this process (the job tests) leaves PYFLINK_GATEWAY_* set;
        # inherited, they would make the child think it runs inside a Python UDF.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PYFLINK_")}
        self.env = {
            **inherited,
            "STRATA_RAW_TOPIC": raw_topic,
            "STRATA_ALERTS_TOPIC": alerts_topic,
            "STRATA_ALERTS_GROUP": f"test-alerts-{uuid.uuid4().hex[:8]}",
            "STRATA_ALERTS_CHECKPOINT_DIR": str(checkpoints),
            "STRATA_ALERTS_CHECKPOINT_S": "1",
            "STRATA_ALERTS_LATENESS_S": "2",
            "STRATA_ALERTS_IDLE_S": "1",
            "STRATA_ALERTS_RULES_REFRESH_S": "1",
            "STRATA_JOB_PARALLELISM": "2",
            **env,
        }
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AlertsJob:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "job", "run", "alerts", "--from", "earliest"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL to the whole group (the Python driver, its JVM and the Python workers)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the alerts job exited: {self.log_file.read_text()[-3000:]}")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
