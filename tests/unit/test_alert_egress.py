"""Where alert channels may send: a real local receiver, the notifier's real sender (no services).

A tenant's admin chooses webhook and Slack URLs; the notifier must not become a way into the
deployment's own network, nor hand back what a receiver answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from core.alerts.egress import EgressPolicy, literal_refusal
from core.alerts.evaluate import AlertEvent, State
from core.alerts.notify import DeliveryError, Outgoing, Sender
from core.alerts.rules import RuleSpec
from infra.settings import Settings

pytestmark = pytest.mark.unit


class Receiver:
    """An HTTP server on 127.0.0.1 answering each POST with ``status`` and ``reply``."""

    def __init__(self, status: int = 200, reply: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.posts: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append(self.path)
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                # The sender hangs up without reading the reply: that is the point.
                with contextlib.suppress(OSError):
                    self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def outgoing(url: str, kind: str = "webhook") -> Outgoing:
    event = AlertEvent(
        event_id="e1",
        tenant="acme",
        rule_id="r1",
        rule_name="errors",
        revision=1,
        severity="critical",
        state=State.FIRING,
        notify=True,
        group={"host": "web-1"},
        group_id="g1",
        value=5.0,
        comparison=">",
        threshold=1.0,
        window_start_ms=0,
        window_end_ms=60_000,
        since_ms=0,
        samples=[],
        reason="",
    )
    return Outgoing([1], {"type": kind, "url": url}, None, [event], 0, None)


def send(url: str, *, allowed: str = "", budget_s: float = 10.0, kind: str = "webhook") -> None:
    settings = Settings(alerts_allowed_hosts=allowed, alerts_send_timeout_s=budget_s)
    sender = Sender(settings)
    try:
        sender.send(outgoing(url, kind))
    finally:
        sender.close()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    reason = EgressPolicy().refusal(address, address)
    assert reason is not None and f"a {kind} address" in reason


def test_public_addresses_and_allowed_ones_pass() -> None:
    assert EgressPolicy().refusal("hooks.slack.com", "34.226.36.48") is None
    assert EgressPolicy().refusal("example", "2606:2800:220:1:248:1893:25c8:1946") is None
    policy = EgressPolicy.parse("hooks.internal, 10.1.0.0/16 ,127.0.0.1")
    assert policy.refusal("hooks.internal", "10.9.9.9") is None
    assert policy.refusal("other.internal", "10.1.200.3") is None
    assert policy.refusal("other.internal", "10.2.0.1") is not None
    assert policy.refusal("127.0.0.1", "127.0.0.1") is None


def test_a_local_receiver_is_refused_and_gets_nothing(receiver: Receiver) -> None:
    for url in (f"http://127.0.0.1:{receiver.port}/hook", f"http://localhost:{receiver.port}/hook"):
        with pytest.raises(DeliveryError, match=r"refused to connect to .*loopback"):
            send(url)
    assert receiver.posts == []


def test_a_name_is_checked_after_resolution(receiver: Receiver) -> None:
    # A name that is not `localhost` but resolves to the machine itself (as a rebinding or an
    # internal DNS name would): the check is on the address the connection would use.
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    if not any(EgressPolicy().refusal(name, a) for a in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    with pytest.raises(DeliveryError, match="refused to connect"):
        send(f"http://{name}:{receiver.port}/hook", kind="slack")
    assert receiver.posts == []


def test_an_allowed_local_receiver_is_reached(receiver: Receiver) -> None:
    send(f"http://127.0.0.1:{receiver.port}/hook", allowed="127.0.0.1")
    send(f"http://localhost:{receiver.port}/slack", allowed="127.0.0.0/8", kind="slack")
    assert receiver.posts == ["/hook", "/slack"]


def test_a_reply_body_never_reaches_the_error() -> None:
    r = Receiver(500, b"<html>internal admin page, token=SECRET-FROM-THE-INSIDE</html>")
    try:
        with pytest.raises(DeliveryError) as caught:
            send(f"http://127.0.0.1:{r.port}/hook?token=abc", allowed="127.0.0.1")
    finally:
        r.close()
    assert str(caught.value) == f"HTTP 500 from http://127.0.0.1:{r.port}"


def test_a_huge_reply_is_not_read() -> None:
    r = Receiver(200, b"x" * (64 * 1024 * 1024))
    try:
        start = time.monotonic()
        send(f"http://127.0.0.1:{r.port}/hook", allowed="127.0.0.1")
        assert time.monotonic() - start < 5
    finally:
        r.close()


def test_a_redirect_is_not_followed() -> None:
    inside = Receiver()
    r = Receiver(302, headers={"Location": f"http://127.0.0.1:{inside.port}/internal"})
    try:
        with pytest.raises(DeliveryError, match="HTTP 302"):
            send(f"http://127.0.0.1:{r.port}/hook", allowed="127.0.0.1")
    finally:
        r.close()
        inside.close()
    assert inside.posts == []


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_budget() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.wait(0.2):
                    return
                conn.sendall(bytes([ch]))

    threading.Thread(target=trickle, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="Timeout"):
            send(f"http://127.0.0.1:{port}/hook", allowed="127.0.0.1", budget_s=1.5)
    finally:
        stop.set()
        server.close()
    assert time.monotonic() - start < 4  # each byte came well within the per-read timeout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.1:8000/v1/admin", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://localhost:9200/_cat", "loopback"),
        ("http://10.0.0.5/", "private"),
    ],
)
def test_saving_a_rule_refuses_literal_internal_addresses(url: str, expected: str) -> None:
    reason = literal_refusal(url, EgressPolicy())
    assert reason is not None and expected in reason
    assert (
        literal_refusal(url, EgressPolicy.parse("127.0.0.1,::1,localhost,10.0.0.0/8,169.254.0.0/16")) is None
    )
    assert literal_refusal("https://hooks.slack.com/services/T0/B0/x", EgressPolicy()) is None


def _rule(channel: dict[str, Any]) -> dict[str, Any]:
    return {"name": "r", "threshold": 1, "window": "5m", "channels": [channel]}


@pytest.mark.parametrize(
    "channel",
    [
        {"type": "webhook", "url": "https://hooks.example.com/x", "headers": {"Host": "metadata.internal"}},
        {"type": "webhook", "url": "https://hooks.example.com/x", "headers": {"X-A": "1\r\nHost: evil"}},
        {"type": "webhook", "url": "https:///no-host"},
        {"type": "slack", "url": "https://hooks.example.com/a b"},
    ],
)
def test_channel_validation(channel: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RuleSpec.model_validate(_rule(channel))


def test_history_shows_a_delivery_error_without_the_reply() -> None:
    from datetime import UTC, datetime

    from api.routers.alerts import _history_out

    at = datetime(2026, 1, 1, tzinfo=UTC)
    row = {
        "event_id": "e1", "rule_id": "r1", "rule_name": "errors", "state": "FIRING", "notify": True,
        "severity": "critical", "group_values": {}, "value": 2.0, "comparison": ">", "threshold": 1.0,
        "window_start": at, "window_end": at, "since": None, "samples": [], "reason": "",
        "recorded_at": at,
        "deliveries": [
            {"status": "pending", "attempts": 1, "last_error": "HTTP 500: <html>token=SECRET</html>"},
            {"status": "pending", "attempts": 1, "last_error": "ConnectError: [Errno 111] refused"},
        ],
    }  # fmt: skip
    errors = [d["last_error"] for d in _history_out(row).deliveries]
    assert errors == ["HTTP 500", "ConnectError: [Errno 111] refused"]
