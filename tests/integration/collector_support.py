"""Shared pieces of the collector's integration tests: a real API server on a free port, a topic
and a tenant of the test's own, and reading back what reached Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from api.main import create_app
from connectors.postgres import tenants
from connectors.postgres.migrate import migrate
from infra.settings import Settings, get_settings
from schemas.envelope import RawEnvelope


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_stack() -> Settings:
    """The settings, or fail the test with a clear reason when Kafka or PostgreSQL is down."""
    settings = get_settings()
    try:
        with psycopg.connect(settings.postgres_dsn, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable (run `strata stack up`): {exc}")
    try:
        AdminClient({"bootstrap.servers": settings.kafka_servers}).list_topics(timeout=5)
    except KafkaException as exc:
        pytest.fail(f"Kafka is not reachable (run `strata stack up`): {exc}")
    migrate(settings.postgres_dsn)
    return settings


@contextmanager
def kafka_topic(settings: Settings, partitions: int = 4) -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})
    name = f"test-raw-{uuid.uuid4().hex[:10]}"
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)
    try:
        yield name
    finally:
        for future in admin.delete_topics([name]).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=30)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@contextmanager
def tenant_with_key(
    settings: Settings, scopes: tuple[str, ...] = ("ingest", "register", "admin"), rate: float | None = None
) -> Iterator[tuple[str, str]]:
    """A new tenant ``(tenant_id, key)``, removed afterwards with its keys."""
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"

    async def create() -> str:
        async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
            await tenants.create_tenant(conn, tenant_id, rate_per_s=rate)
            _, key = await tenants.create_key(conn, tenant_id, scopes=scopes)
            return key

    key = _run(create())
    try:
        yield tenant_id, key
    finally:
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))
            conn.execute("DELETE FROM audit_log WHERE tenant_id = %s", (tenant_id,))


def add_key(settings: Settings, tenant_id: str, scopes: tuple[str, ...]) -> tuple[str, str]:
    async def create() -> tuple[str, str]:
        async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
            return await tenants.create_key(conn, tenant_id, scopes=scopes)

    result: tuple[str, str] = _run(create())
    return result


class ApiServer:
    """The real application under uvicorn, in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def read_topic(
    settings: Settings, topic: str, expected: int, timeout: float = 30.0, settle: float = 1.0
) -> list[tuple[bytes, RawEnvelope]]:
    """Every message of ``topic`` from the start: waits for ``expected`` of them, then ``settle``
    seconds more to catch any extra (a duplicate or a stray record would show up)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_servers,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    found: list[tuple[bytes, RawEnvelope]] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is None and len(found) >= expected:
                settle_until = time.monotonic() + settle
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            found.append((message.key(), RawEnvelope.decode(message.value())))
    finally:
        consumer.close()
    return found


def collect_until(
    settings: Settings, topic: str, done: Any, timeout: float = 60.0
) -> list[tuple[bytes, RawEnvelope]]:
    """Read ``topic`` from the start until ``done(messages)`` is true or ``timeout`` passes."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_servers,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[tuple[bytes, RawEnvelope]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(found):
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            found.append((message.key(), RawEnvelope.decode(message.value())))
    finally:
        consumer.close()
    return found


REPO = Path(__file__).resolve().parents[2]


class SyslogReceiver:
    """``strata collect syslog`` as a process of its own, writing to the test's topic."""

    def __init__(self, settings: Settings, args: list[str], env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "STRATA_RAW_TOPIC": settings.raw_topic, **(env or {})}
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.output = b""

    def __enter__(self) -> SyslogReceiver:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "collect", "syslog", *self.args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        tcp = [a for i, a in enumerate(self.args) if i and self.args[i - 1] in ("--tcp", "--tls")]
        deadline = time.monotonic() + 30
        for address in tcp:
            host, port = address.split("=")[0].rsplit(":", 1)
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the receiver exited: {self.process.stdout.read()!r}")  # type: ignore[union-attr]
                try:
                    socket.create_connection((host, int(port)), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        time.sleep(0.3)  # UDP has no handshake to wait for; give its bind a moment
        return self

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.output, _ = self.process.communicate(timeout=60)
        return self.process.returncode

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.stop()
