"""Real log shippers from Debian's packages pointed at Strata, unchanged.

- syslog-ng's ``elasticsearch-http()`` destination at ``/_bulk`` (key as the Basic-auth password),
  and its ``network()`` (RFC 3164) and ``syslog()`` (RFC 5424, octet counting) destinations at the
  syslog receiver;
- rsyslog's ``omfwd`` over TCP (RFC 5424, octet counting) and UDP (RFC 3164) at the receiver, and
  its ``omelasticsearch`` output (Debian's rsyslog-elasticsearch) at ``/_bulk``.

Each runs in the foreground with its own configuration in a temporary folder, never as a system
service. Their packages: ``apt-get install -y syslog-ng-core syslog-ng-mod-http syslog-ng-scl``.
rsyslog conflicts with syslog-ng-core as a package, so when ``rsyslogd`` is not installed the test
unpacks Debian's rsyslog packages into the cache (``apt-get download`` + ``dpkg-deb -x``; its
libraries ``libestr0 libfastjson4 liblognorm5`` must be installed). Without them the tests skip
and say what to install.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.record import Level
from tests.integration import collector_support as cs
from tests.integration.client_support import as_records, foreground

pytestmark = pytest.mark.integration

LINES = 50


@pytest.fixture()
def setup(tmp_path):
    settings = cs.require_stack()
    with (
        cs.kafka_topic(settings) as topic,
        cs.tenant_with_key(settings) as (tenant_a, key_a),
        cs.tenant_with_key(settings) as (tenant_b, _),
    ):
        settings = settings.model_copy(update={"raw_topic": topic})
        tcp_port, udp_port = cs.free_port(), cs.free_port()
        with (
            cs.ApiServer(settings) as api,
            cs.SyslogReceiver(
                settings,
                ["--tcp", f"127.0.0.1:{tcp_port}={tenant_a}", "--udp", f"127.0.0.1:{udp_port}={tenant_b}"],
            ) as receiver,
        ):
            yield {
                "settings": settings,
                "api": api,
                "key": key_a,
                "tenant_a": tenant_a,
                "tenant_b": tenant_b,
                "tcp": tcp_port,
                "udp": udp_port,
                "receiver": receiver,
                "dir": tmp_path,
            }


def write_input(path: Path, marker: str) -> list[str]:
    lines = [f"{marker} line {i} user=alice status=ok" for i in range(LINES)]
    path.write_text("".join(f"{line}\n" for line in lines))
    return lines


def test_syslog_ng_elasticsearch_http_and_syslog_destinations(setup):
    syslog_ng = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
    if not Path(syslog_ng).exists():
        pytest.skip(
            "syslog-ng is not installed: apt-get install -y syslog-ng-core syslog-ng-mod-http syslog-ng-scl"
        )
    if not Path("/usr/share/syslog-ng/include/scl/elasticsearch").exists():
        pytest.skip(
            "syslog-ng's elasticsearch-http() needs: apt-get install -y syslog-ng-mod-http syslog-ng-scl"
        )
    work: Path = setup["dir"]
    marker = f"sng-{uuid.uuid4().hex[:8]}"
    lines = write_input(work / "input.log", marker)
    config = work / "syslog-ng.conf"
    config.write_text(
        f"""@version: 3.38
@include "scl.conf"
options {{ stats-freq(0); }};
source s_in {{
    file("{work / "input.log"}" follow-freq(0.2) flags(no-parse) program-override("sngapp"));
}};
destination d_es {{
    elasticsearch-http(
        url("{setup["api"].url}/_bulk")
        index("syslog-ng")
        type("")
        user("elastic")
        password("{setup["key"]}")
        batch-lines(20)
        workers(1)
    );
}};
destination d_tcp3164 {{ network("127.0.0.1" port({setup["tcp"]}) transport("tcp") persist-name("t3164")); }};
destination d_tcp5424 {{ syslog("127.0.0.1" port({setup["tcp"]}) transport("tcp") persist-name("t5424")); }};
destination d_udp {{ network("127.0.0.1" port({setup["udp"]}) transport("udp")); }};
log {{
    source(s_in);
    destination(d_es); destination(d_tcp3164); destination(d_tcp5424); destination(d_udp);
}};
"""
    )
    cmd = [
        syslog_ng,
        "-F",
        "-f",
        str(config),
        "-R",
        str(work / "persist"),
        "-p",
        str(work / "pid"),
        "-c",
        str(work / "ctl"),
        "--no-caps",
    ]
    settings = setup["settings"]

    def complete(found) -> bool:
        bulk = sum(1 for _, e in found if e.source == "bulk")
        syslog_tcp = sum(
            1 for _, e in found if e.source == "syslog" and e.attributes.get("transport") == "tcp"
        )
        syslog_udp = sum(
            1 for _, e in found if e.source == "syslog" and e.attributes.get("transport") == "udp"
        )
        return bulk >= LINES and syslog_tcp >= 2 * LINES and syslog_udp >= LINES

    with foreground(cmd, work / "syslog-ng.log"):
        found = cs.collect_until(settings, settings.raw_topic, complete, timeout=90)
    bulk = [e for _, e in found if e.source == "bulk"]
    tcp = [e for _, e in found if e.source == "syslog" and e.attributes["transport"] == "tcp"]
    udp = [e for _, e in found if e.source == "syslog" and e.attributes["transport"] == "udp"]
    # Every line arrived through every route, each with the tenant of its key or listener.
    assert sorted(e.entry["MESSAGE"] for e in bulk if e.entry) == sorted(lines), (
        work / "syslog-ng.log"
    ).read_text()
    assert {e.tenant for e in bulk} == {setup["tenant_a"]} and {e.service for e in bulk} == {"sngapp"}
    for envelopes, tenant, copies in ((tcp, setup["tenant_a"], 2), (udp, setup["tenant_b"], 1)):
        assert {e.tenant for e in envelopes} == {tenant}
        for line in lines:
            assert sum(1 for e in envelopes if e.line and e.line.endswith(line)) == copies, line
    assert {e.service for e in tcp + udp} == {"sngapp"}


def find_rsyslogd(cache: Path) -> tuple[str, str | None] | None:
    """``(rsyslogd, module dir or None)``: installed, or Debian's package unpacked into the cache."""
    installed = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None
    )
    if installed:
        return installed, None
    root = cache / "rsyslog-deb"
    binary = root / "usr/sbin/rsyslogd"
    modules = root / "usr/lib/x86_64-linux-gnu/rsyslog"
    # rsyslog itself, and its Elasticsearch output module (Debian's rsyslog-elasticsearch).
    for package, unpacked in (("rsyslog", binary), ("rsyslog-elasticsearch", modules / "omelasticsearch.so")):
        if unpacked.exists() or not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
            continue
        download = cache / "rsyslog-download"
        download.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=download, capture_output=True, timeout=120)
        debs = sorted(download.glob(f"{package}_*.deb"))
        if debs:
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True, timeout=120)
    if not binary.exists():
        return None
    if subprocess.run([str(binary), "-v"], capture_output=True).returncode != 0:
        return None  # its libraries are missing
    return str(binary), str(modules)


def test_rsyslog_forwards_over_tcp_and_udp(setup):
    settings = setup["settings"]
    found_binary = find_rsyslogd(settings.cache_dir)
    if found_binary is None:
        pytest.skip(
            "rsyslogd is not available: apt-get install -y libestr0 libfastjson4 liblognorm5 (and "
            "rsyslog, or let this test unpack Debian's rsyslog package into the cache)"
        )
    rsyslogd, module_dir = found_binary
    work: Path = setup["dir"]
    (work / "rs-work").mkdir()
    marker = f"rs-{uuid.uuid4().hex[:8]}"
    lines = write_input(work / "input.log", marker)
    config = work / "rsyslog.conf"
    config.write_text(
        f"""global(workDirectory="{work / "rs-work"}")
module(load="imfile" mode="polling" PollingInterval="1")
input(type="imfile" File="{work / "input.log"}" Tag="rsapp:" ruleset="fwd" freshStartTail="off")
ruleset(name="fwd") {{
    action(type="omfwd" target="127.0.0.1" port="{setup["tcp"]}" protocol="tcp"
           TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
    action(type="omfwd" target="127.0.0.1" port="{setup["udp"]}" protocol="udp")
}}
"""
    )
    cmd = [rsyslogd, "-n", "-f", str(config), "-i", str(work / "rsyslog.pid")]
    if module_dir:
        cmd += ["-M", module_dir]

    def complete(found) -> bool:
        got = [e for _, e in found if e.line and marker in e.line]
        return len(got) >= 2 * LINES

    with foreground(cmd, work / "rsyslog.log"):
        found = cs.collect_until(settings, settings.raw_topic, complete, timeout=90)
    envelopes = [e for _, e in found if e.line and marker in e.line]
    tcp = [e for e in envelopes if e.attributes["transport"] == "tcp"]
    udp = [e for e in envelopes if e.attributes["transport"] == "udp"]
    assert {e.tenant for e in tcp} == {setup["tenant_a"]} and {e.tenant for e in udp} == {setup["tenant_b"]}
    for line in lines:
        assert sum(1 for e in tcp if e.line and e.line.endswith(line)) == 1, (
            work / "rsyslog.log"
        ).read_text()
        assert sum(1 for e in udp if e.line and e.line.endswith(line)) == 1
    assert re.match(r"<\d+>1 ", tcp[0].line or "")  # RFC 5424 over TCP
    assert re.match(r"<\d+>[A-Z][a-z]{2} ", udp[0].line or "")  # RFC 3164 over UDP
    assert {e.service for e in envelopes} == {"rsapp"}


def test_rsyslog_omelasticsearch_bulk(setup):
    """rsyslog's Elasticsearch output (bulk mode, Basic auth, an ES 7-style ``_type`` in its action
    lines) at Strata's ``/_bulk``, with a JSON template of its own fields."""
    settings = setup["settings"]
    found_binary = find_rsyslogd(settings.cache_dir)
    if (
        found_binary is None
        or not found_binary[1]
        or not Path(found_binary[1], "omelasticsearch.so").exists()
    ):
        pytest.skip("rsyslog with omelasticsearch is not available (Debian's rsyslog-elasticsearch)")
    rsyslogd, module_dir = found_binary
    work: Path = setup["dir"]
    (work / "rs-work").mkdir()
    marker = f"rses-{uuid.uuid4().hex[:8]}"
    lines = write_input(work / "input.log", marker)
    errors = work / "es-errors.json"
    api = setup["api"]
    port = api.url.rsplit(":", 1)[1]
    config = work / "rsyslog.conf"
    config.write_text(
        f"""global(workDirectory="{work / "rs-work"}")
module(load="imfile" mode="polling" PollingInterval="1")
module(load="omelasticsearch")
template(name="doc" type="list" option.jsonf="on") {{
    property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
    property(outname="host" name="hostname" format="jsonf")
    property(outname="log.level" name="syslogseverity-text" format="jsonf")
    property(outname="service.name" name="programname" format="jsonf")
    property(outname="message" name="msg" format="jsonf")
}}
input(type="imfile" File="{work / "input.log"}" Tag="billing:" Severity="warning" ruleset="es"
      freshStartTail="off")
ruleset(name="es") {{
    action(type="omelasticsearch" server="127.0.0.1" serverport="{port}" usehttps="off"
           uid="elastic" pwd="{setup["key"]}" searchIndex="rsyslog-billing" searchType="events"
           template="doc" bulkmode="on" errorFile="{errors}")
}}
"""
    )
    cmd = [rsyslogd, "-n", "-f", str(config), "-i", str(work / "rsyslog.pid"), "-M", module_dir]
    started = datetime.now(UTC) - timedelta(seconds=5)

    def complete(found) -> bool:
        return sum(1 for _, e in found if marker in str(e.entry)) >= LINES

    with foreground(cmd, work / "rsyslog.log"):
        found = cs.collect_until(settings, settings.raw_topic, complete, timeout=90)
    envelopes = [e for _, e in found if marker in str(e.entry)]
    assert len(envelopes) == LINES, (work / "rsyslog.log").read_text()
    assert not errors.exists(), errors.read_text()  # rsyslog writes there what Strata refused
    assert {e.tenant for e in envelopes} == {setup["tenant_a"]}
    records = sorted(as_records(envelopes), key=lambda r: r.message)
    assert sorted(r.message for r in records) == sorted(lines)
    assert {r.service for r in records} == {"billing"}
    assert {r.level for r in records} == {Level.WARN}
    assert {r.host for r in records} == {socket.gethostname().split(".")[0]}
    assert all(started <= r.timestamp <= datetime.now(UTC) for r in records)
