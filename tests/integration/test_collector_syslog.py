"""The syslog receiver against real Kafka: RFC 5424 and 3164 over UDP and TCP, both TCP framings,
tenants per listener, nothing lost on a clean stop."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from tests.integration import collector_support as cs

pytestmark = pytest.mark.integration


@pytest.fixture()
def setup():
    settings = cs.require_stack()
    with (
        cs.kafka_topic(settings) as topic,
        cs.tenant_with_key(settings) as (tenant_a, _),
        cs.tenant_with_key(settings) as (tenant_b, _),
    ):
        yield settings.model_copy(update={"raw_topic": topic}), tenant_a, tenant_b


def test_udp_and_tcp_both_framings_each_listener_its_tenant(setup):
    settings, tenant_a, tenant_b = setup
    tcp_port, udp_port = cs.free_port(), cs.free_port()
    run = uuid.uuid4().hex[:8]
    rfc5424 = [
        f"<165>1 2025-02-15T12:00:0{i}.003Z web-1 billing 42 ID47 - tcp5424 {run} {i}" for i in range(5)
    ]
    rfc3164 = [f"<13>Feb 15 12:00:0{i} web-2 cron[7]: tcp3164 {run} {i}" for i in range(5)]
    udp = [f"<14>Feb 15 12:00:0{i} web-3 udpapp: udp {run} {i}" for i in range(5)]
    with cs.SyslogReceiver(
        settings, ["--tcp", f"127.0.0.1:{tcp_port}={tenant_a}", "--udp", f"127.0.0.1:{udp_port}={tenant_b}"]
    ) as receiver:
        with socket.create_connection(("127.0.0.1", tcp_port)) as tcp:
            for line in rfc5424:
                data = line.encode()
                tcp.sendall(str(len(data)).encode() + b" " + data)  # octet counting
            tcp.sendall("".join(f"{line}\n" for line in rfc3164).encode())  # newline framing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for line in udp:
                sock.sendto(line.encode(), ("127.0.0.1", udp_port))
                time.sleep(0.01)
        expected = set(rfc5424 + rfc3164 + udp)
        found = cs.collect_until(
            settings, settings.raw_topic, lambda got: {e.line for _, e in got} >= expected
        )
        assert receiver.stop() == 0, receiver.output
    by_line = {env.line: (key, env) for key, env in found}
    assert set(by_line) == expected
    for line in rfc5424 + rfc3164:
        assert by_line[line][1].tenant == tenant_a and by_line[line][1].source == "syslog"
    for line in udp:
        assert by_line[line][1].tenant == tenant_b
    assert by_line[rfc5424[0]][0] == f"{tenant_a}/billing".encode()
    assert by_line[rfc3164[0]][0] == f"{tenant_a}/cron".encode() and by_line[rfc3164[0]][1].host == "web-2"
    assert by_line[udp[0]][1].attributes["transport"] == "udp"


def test_an_unknown_tenant_is_refused_at_start(setup):
    settings, _, _ = setup
    receiver = cs.SyslogReceiver(settings, ["--tcp", f"127.0.0.1:{cs.free_port()}=no-such-tenant-x"])
    with pytest.raises(RuntimeError, match="unknown tenant"):
        receiver.__enter__()
    receiver.stop()
