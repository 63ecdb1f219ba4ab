"""The API and the syslog receiver over TLS, with client certificates standing for tenants: the
local CA and certificates are made by the stack's own set-up (infra.stack.tls), the records read
back from the real Kafka."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
import uvicorn

from api.main import create_app
from api.tls import uvicorn_options
from connectors.postgres import certs
from infra.settings import Settings
from infra.stack.tls import LocalCerts, Pair, client_cert, local_certs
from tests.integration import collector_support as cs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalCerts:
    made = local_certs(tmp_path_factory.mktemp("pki"))
    for name in ("agent", "stranger", "revoked"):
        client_cert(made, name)
    return made


def _tls_settings(settings: Settings, pki: LocalCerts, client_cert_mode: str = "optional") -> Settings:
    return settings.model_copy(
        update={
            "server_tls_cert_file": str(pki.server.cert),
            "server_tls_key_file": str(pki.server.key),
            "server_tls_client_ca_file": str(pki.ca),
            "server_tls_client_cert": client_cert_mode,
        }
    )


def _register(settings: Settings, tenant: str, cert: Path, scopes: tuple[str, ...] = ("ingest",)) -> str:
    fp = certs.fingerprint_of_pem(cert.read_text())

    async def add() -> None:
        async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
            await certs.add_cert(conn, tenant, fp, scopes=scopes)

    asyncio.run(add())
    return fp


def _revoke(settings: Settings, tenant: str, fp: str) -> None:
    async def revoke() -> None:
        async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
            await certs.revoke_cert(conn, tenant, fp)

    asyncio.run(revoke())


def _client_context(pki: LocalCerts, pair: Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


@pytest.fixture()
def setup(pki: LocalCerts) -> Iterator[tuple[Settings, str, str, str]]:
    settings = cs.require_stack()
    with (
        cs.kafka_topic(settings) as topic,
        cs.tenant_with_key(settings) as (tenant_a, _),
        cs.tenant_with_key(settings) as (tenant_b, key_b),
    ):
        yield _tls_settings(settings.model_copy(update={"raw_topic": topic}), pki), tenant_a, tenant_b, key_b


class _HttpsApi:
    """The application under uvicorn with the TLS options `strata serve` passes."""

    def __init__(self, settings: Settings) -> None:
        self.port = cs.free_port()
        self.url = f"https://localhost:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            **uvicorn_options(settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _HttpsApi:
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


def _batch(run: str, name: str) -> dict[str, object]:
    return {"service": "tls-test", "logs": [{"message": f"{name} {run} {i}"} for i in range(3)]}


def test_https_ingest_with_a_client_certificate_for_a_tenant(setup, pki: LocalCerts) -> None:
    settings, tenant_a, tenant_b, key_b = setup
    fp = _register(settings, tenant_a, pki.client("agent").cert)
    revoked = _register(settings, tenant_a, pki.client("revoked").cert)
    _revoke(settings, tenant_a, revoked)
    run = uuid.uuid4().hex[:8]

    def post(pair: Pair | None, body: dict[str, object], key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with httpx.Client(base_url=api.url, verify=_client_context(pki, pair), timeout=30) as http:
            return http.post("/v1/logs/ingest", json=body, headers=headers)

    with _HttpsApi(settings) as api:
        by_cert = post(pki.client("agent"), _batch(run, "cert"))
        assert by_cert.status_code == 202, by_cert.text
        # A key still works over HTTPS, and wins over a certificate sent beside it.
        by_key = post(pki.client("agent"), _batch(run, "key"), key=key_b)
        assert by_key.status_code == 202, by_key.text

        stranger = post(pki.client("stranger"), _batch(run, "stranger"))
        assert stranger.status_code == 401
        assert certs.fingerprint_of_pem(pki.client("stranger").cert.read_text()) in stranger.json()["detail"]
        assert "strata tenant cert-add" in stranger.json()["detail"]
        assert post(pki.client("revoked"), _batch(run, "revoked")).status_code == 403
        anonymous = post(None, _batch(run, "anonymous"))
        assert anonymous.status_code == 401 and "client certificate" in anonymous.json()["detail"]

        # Plain HTTP on the HTTPS port gets no answer a client could mistake for success.
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"http://127.0.0.1:{api.port}/v1/logs/ingest", json=_batch(run, "plain"), timeout=5)

    found = cs.read_topic(settings, settings.raw_topic, 6)
    tenants = {env.entry["message"]: env.tenant for _, env in found if env.entry}
    assert tenants == {
        **{f"cert {run} {i}": tenant_a for i in range(3)},
        **{f"key {run} {i}": tenant_b for i in range(3)},
    }
    assert fp in {row["fingerprint"] for row in _certs_of(settings, tenant_a)}


def test_live_tail_over_wss_with_a_client_certificate_and_no_key(setup, pki: LocalCerts) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    settings, tenant_a, _, key_b = setup
    _register(settings, tenant_a, pki.client("agent").cert, scopes=("search",))
    with _HttpsApi(settings) as api:
        url = api.url.replace("https://", "wss://") + "/v1/logs/tail"
        with connect(url, ssl=_client_context(pki, pki.client("agent")), open_timeout=10) as ws:
            assert orjson.loads(ws.recv(timeout=10)) == {"type": "subscribed", "tenant": tenant_a}
        # a key sent beside the certificate wins, as on plain requests: this one may not search
        agent = _client_context(pki, pki.client("agent"))
        with pytest.raises(ConnectionClosed) as info, connect(f"{url}?api_key={key_b}", ssl=agent) as ws:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4403
        assert "lacks the 'search' scope" in info.value.rcvd.reason
        stranger = _client_context(pki, pki.client("stranger"))
        with pytest.raises(ConnectionClosed) as info, connect(url, ssl=stranger, open_timeout=10) as ws:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
        assert certs.fingerprint_of_pem(pki.client("stranger").cert.read_text()) in info.value.rcvd.reason


def test_required_client_certificates_refuse_a_client_without_one(setup, pki: LocalCerts) -> None:
    settings, _, _, key_b = setup
    settings = settings.model_copy(update={"server_tls_client_cert": "required"})
    headers = {"Authorization": f"Bearer {key_b}"}
    with _HttpsApi(settings) as api:
        with httpx.Client(
            base_url=api.url, verify=_client_context(pki, pki.client("stranger")), timeout=10
        ) as http:
            assert http.post("/v1/logs/ingest", json=_batch("x", "x"), headers=headers).status_code == 202
        # The handshake fails: even a valid key is not enough without a certificate.
        with (
            pytest.raises(httpx.HTTPError),
            httpx.Client(base_url=api.url, verify=_client_context(pki, None), timeout=10) as http,
        ):
            http.post("/v1/logs/ingest", json=_batch("x", "x"), headers=headers)


def test_syslog_over_tls_each_sender_as_its_certificates_tenant(setup, pki: LocalCerts) -> None:
    settings, tenant_a, tenant_b, _ = setup
    added = subprocess.run(
        [sys.executable, "-m", "infra.cli", "tenant", "cert-add", tenant_a, str(pki.client("agent").cert)],
        cwd=cs.REPO,
        capture_output=True,
        check=True,
    )
    assert orjson.loads(added.stdout)["fingerprint"] == certs.fingerprint_of_pem(
        pki.client("agent").cert.read_text()
    )
    port = cs.free_port()
    run = uuid.uuid4().hex[:8]
    env = {
        "STRATA_SERVER_TLS_CERT_FILE": settings.server_tls_cert_file,
        "STRATA_SERVER_TLS_KEY_FILE": settings.server_tls_key_file,
        "STRATA_SERVER_TLS_CLIENT_CA_FILE": settings.server_tls_client_ca_file,
    }

    def send(pair: Pair | None, lines: list[str]) -> bytes:
        context = _client_context(pki, pair)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            for line in lines:
                data = line.encode()
                tls.sendall(str(len(data)).encode() + b" " + data)  # RFC 5425 octet counting
            tls.settimeout(5)
            try:
                return tls.recv(1)  # b"" once the receiver has closed the connection
            except (TimeoutError, ssl.SSLError, ConnectionError):
                return b"open"

    by_cert = [f"<165>1 2025-02-15T12:00:0{i}.003Z web-1 billing 42 - - tls-cert {run} {i}" for i in range(3)]
    no_cert = [f"<165>1 2025-02-15T12:00:0{i}.003Z web-2 billing 42 - - tls-anon {run} {i}" for i in range(3)]
    stranger = [f"<165>1 2025-02-15T12:00:00.003Z web-3 billing 42 - - tls-stranger {run}"]
    with cs.SyslogReceiver(settings, ["--tls", f"127.0.0.1:{port}={tenant_b}"], env=env) as receiver:
        assert send(pki.client("stranger"), stranger) == b""  # disconnected
        send(pki.client("agent"), by_cert)
        send(None, no_cert)
        # Waits for the six, then a while more: a stranger's line, had it been taken, shows up.
        found = cs.read_topic(settings, settings.raw_topic, 6, settle=2.0)
        assert receiver.stop() == 0, receiver.output
    tenants = {env.line: env.tenant for _, env in found}
    assert {line: tenants[line] for line in by_cert} == dict.fromkeys(by_cert, tenant_a)
    assert {line: tenants[line] for line in no_cert} == dict.fromkeys(no_cert, tenant_b)
    assert stranger[0] not in tenants
    assert b"is not registered to a tenant" in receiver.output


def _certs_of(settings: Settings, tenant: str) -> list[dict[str, object]]:
    async def listed() -> list[dict[str, object]]:
        async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
            return await certs.list_certs(conn, tenant)

    return asyncio.run(listed())


class _SmtpServer:
    """aiosmtpd on a free port with the local CA's server certificate: STARTTLS required, or TLS
    from the first byte (``implicit``); keeps every message it accepts."""

    def __init__(self, pki: LocalCerts, *, implicit: bool) -> None:
        from aiosmtpd.controller import Controller

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
        self.port = cs.free_port()
        self.messages: list[bytes] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                sink.messages.append(envelope.content)  # type: ignore[attr-defined]
                return "250 OK"

        tls = {"ssl_context": context} if implicit else {"tls_context": context, "require_starttls": True}
        self.controller = Controller(Handler(), hostname="localhost", port=self.port, ready_timeout=10, **tls)

    def __enter__(self) -> _SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_alert_mail_goes_over_verified_tls(pki: LocalCerts, tmp_path: Path, implicit: bool) -> None:
    from email.message import EmailMessage

    from core.alerts.notify import smtp_connection

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "strata@localhost", "ops@example.com", "firing"
    message.set_content("over TLS")
    with _SmtpServer(pki, implicit=implicit) as server:
        settings = Settings(
            smtp_host="localhost",
            smtp_port=server.port,
            smtp_starttls=not implicit,
            smtp_tls=implicit,
            smtp_ca_file=str(pki.ca),
        )
        with smtp_connection(settings) as smtp:
            smtp.send_message(message)
        assert len(server.messages) == 1 and b"over TLS" in server.messages[0]

        # A server whose certificate another CA signed is not sent to: smtplib alone would.
        other = settings.model_copy(update={"smtp_ca_file": str(local_certs(tmp_path / "other").ca)})
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp_connection(other).close()
    assert len(server.messages) == 1


def test_strata_send_ships_a_file_with_a_client_certificate_for_its_key(
    setup, pki: LocalCerts, tmp_path: Path
) -> None:
    settings, tenant_a, _, _ = setup
    agent = pki.client("agent")
    _register(settings, tenant_a, agent.cert)
    run = uuid.uuid4().hex[:8]
    log = tmp_path / "app.log"
    log.write_text("".join(f"2025-02-15 12:00:0{i} INFO shipped over mTLS {run} {i}\n" for i in range(4)))
    with _HttpsApi(settings) as api:
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "infra.cli",
                "send",
                str(log),
                "--service",
                "shipper",
                "--state-dir",
                str(tmp_path / "state"),
            ],
            cwd=cs.REPO,
            env={
                **os.environ,
                "STRATA_API_URL": api.url,
                "STRATA_API_KEY": "",
                "STRATA_API_CA_FILE": str(pki.ca),
                "STRATA_API_CLIENT_CERT_FILE": str(agent.cert),
                "STRATA_API_CLIENT_KEY_FILE": str(agent.key),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
    found = cs.read_topic(settings, settings.raw_topic, 4)
    assert sorted((env.tenant, env.line) for _, env in found) == [
        (tenant_a, f"2025-02-15 12:00:0{i} INFO shipped over mTLS {run} {i}") for i in range(4)
    ]
