"""Client libraries and tools people already run, pointed at Strata unchanged, each installed by
the test set-up (PyPI into the cache, pinned) or from the system:

- elasticsearch-py 8 and 9, ``helpers.bulk`` at ``/_bulk`` (their ``compatible-with`` content
  types and the product check);
- the OpenTelemetry Python SDK with its OTLP/HTTP (protobuf) log exporter at ``/v1/logs``;
- Python's ``logging.handlers.SysLogHandler`` over UDP and TCP at ``strata collect syslog``;
- util-linux ``logger`` (RFC 5424, octet counting, TCP);
- winston-elasticsearch and pino-elasticsearch (npm, into the cache; Node.js from the system), whose
  buffered action lines carry extra keys and whose stream refreshes the index when it ends;
- the OpenTelemetry JavaScript SDK (``@opentelemetry/sdk-logs``) with its OTLP/HTTP JSON exporter.

Each asserts that the client saw success, and that what it sent reached ``raw_logs`` in the key's
or listener's tenant and becomes, through the ingest job's own logic, a record with the service,
level, host and time the client meant.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas.record import Level
from tests.integration import collector_support as cs
from tests.integration.client_support import as_records, npm_client, pip_client, run_node, run_python

pytestmark = pytest.mark.integration

ELASTICSEARCH_PY = {8: "elasticsearch==8.19.3", 9: "elasticsearch==9.5.1"}
# The exporter's version is the pinned opentelemetry-proto's (pyproject.toml): it requires exactly it.
OTEL_PYTHON = ["opentelemetry-sdk==1.25.0", "opentelemetry-exporter-otlp-proto-http==1.25.0"]


@pytest.fixture(scope="module")
def env():
    settings = cs.require_stack()
    with cs.kafka_topic(settings) as topic, cs.tenant_with_key(settings) as (tenant, key):
        settings = settings.model_copy(update={"raw_topic": topic})
        tcp, udp = cs.free_port(), cs.free_port()
        with (
            cs.ApiServer(settings) as api,
            cs.SyslogReceiver(
                settings, ["--tcp", f"127.0.0.1:{tcp}={tenant}", "--udp", f"127.0.0.1:{udp}={tenant}"]
            ),
        ):
            yield {"settings": settings, "api": api, "key": key, "tenant": tenant, "tcp": tcp, "udp": udp}


def arrived(env, marker: str, count: int):
    """The envelopes carrying ``marker`` (in the line or the entry's message), once ``count`` came."""

    def carries(envelope) -> bool:
        text = envelope.line or json.dumps(envelope.entry or {})
        return marker in text

    settings = env["settings"]
    found = cs.collect_until(
        settings, settings.raw_topic, lambda got: sum(carries(e) for _, e in got) >= count, timeout=60
    )
    envelopes = [e for _, e in found if carries(e)]
    assert len(envelopes) == count, f"{len(envelopes)} of {count} arrived"
    assert {e.tenant for e in envelopes} == {env["tenant"]}
    return envelopes


ES_SCRIPT = """
import json, sys
from datetime import datetime, timedelta, timezone
import elasticsearch
from elasticsearch import Elasticsearch, helpers

url, key, marker = sys.argv[1:4]
es = Elasticsearch(url, basic_auth=("elastic", key), request_timeout=30)
info = es.info()  # the product check runs on the first request
start = datetime.now(timezone.utc) - timedelta(minutes=5)
actions = []
for i in range(20):
    doc = {
        "@timestamp": (start + timedelta(seconds=i)).isoformat(),
        "message": f"{marker} order {i} paid",
        "log.level": "warn" if i % 2 else "info",
        "host": {"name": "es-host-1"},
    }
    if i < 10:
        doc["service"] = {"name": "checkout"}
    actions.append({"_index": "orders-2026.11.28", "_source": doc})
ok, errors = helpers.bulk(es, actions)
print(json.dumps({"ok": ok, "errors": errors, "client": elasticsearch.__versionstr__,
                  "server": info["version"]["number"], "start": start.isoformat()}))
"""


@pytest.mark.parametrize("major", sorted(ELASTICSEARCH_PY))
def test_elasticsearch_py_helpers_bulk(env, major):
    folder = pip_client(env["settings"].cache_dir, f"elasticsearch-{major}", [ELASTICSEARCH_PY[major]])
    marker = f"es{major}-{uuid.uuid4().hex[:8]}"
    out = json.loads(run_python(folder, ES_SCRIPT, env["api"].url, env["key"], marker).splitlines()[-1])
    assert out["client"].startswith(f"{major}.") and out["ok"] == 20 and out["errors"] == []
    records = sorted(as_records(arrived(env, marker, 20)), key=lambda r: r.timestamp)
    start = datetime.fromisoformat(out["start"])
    assert [r.timestamp for r in records] == [start + timedelta(seconds=i) for i in range(20)]
    assert [r.service for r in records] == ["checkout"] * 10 + ["orders"] * 10  # else the index's name
    assert [r.level for r in records] == [Level.WARN if i % 2 else Level.INFO for i in range(20)]
    assert {r.host for r in records} == {"es-host-1"}
    assert records[3].message == f"{marker} order 3 paid"


OTEL_SCRIPT = """
import json, logging, sys
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

url, key, marker = sys.argv[1:4]
results = []

class Recording(OTLPLogExporter):
    def export(self, batch):
        result = super().export(batch)
        results.append((len(batch), result.name))
        return result

provider = LoggerProvider(resource=Resource.create({"service.name": "billing", "host.name": "otel-host-1"}))
provider.add_log_record_processor(
    BatchLogRecordProcessor(Recording(endpoint=url + "/v1/logs", headers={"Authorization": "Bearer " + key}))
)
log = logging.getLogger("billing")
log.setLevel(logging.DEBUG)
log.propagate = False
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
for i in range(10):
    (log.error if i % 2 else log.info)("%s invoice %d", marker, i)
provider.force_flush()
provider.shutdown()
print(json.dumps(results))
"""


def test_opentelemetry_python_sdk_otlp_http(env):
    folder = pip_client(env["settings"].cache_dir, "opentelemetry-python-1.25.0", OTEL_PYTHON)
    marker = f"otel-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)
    results = json.loads(run_python(folder, OTEL_SCRIPT, env["api"].url, env["key"], marker).splitlines()[-1])
    after = datetime.now(UTC)
    assert results and all(name == "SUCCESS" for _, name in results) and sum(n for n, _ in results) == 10
    records = sorted(as_records(arrived(env, marker, 10)), key=lambda r: r.message)
    assert [r.message for r in records] == [f"{marker} invoice {i}" for i in range(10)]
    assert [r.level for r in records] == [Level.ERROR if i % 2 else Level.INFO for i in range(10)]
    assert {(r.service, r.host) for r in records} == {("billing", "otel-host-1")}
    assert all(before - timedelta(seconds=1) <= r.timestamp <= after for r in records)


SYSLOG_HANDLER_SCRIPT = """
import logging, logging.handlers, socket, sys
port, transport, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
handler = logging.handlers.SysLogHandler(address=("127.0.0.1", port), socktype=kind)
handler.setFormatter(logging.Formatter("payroll: %(message)s"))
log = logging.getLogger("payroll")
log.addHandler(handler)
log.setLevel(logging.INFO)
for i in range(10):
    (log.error if i % 2 else log.warning)("%s run %d", marker, i)
handler.close()
print("sent")
"""


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_python_sysloghandler(env, transport):
    # Sends "<11>payroll: message\\x00": no timestamp, no host, NUL-terminated, even over TCP.
    marker = f"pysys-{transport}-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)
    out = run_python(None, SYSLOG_HANDLER_SCRIPT, str(env[transport]), transport, marker)
    after = datetime.now(UTC)
    assert out.strip() == "sent"
    envelopes = arrived(env, marker, 10)
    assert {e.attributes["transport"] for e in envelopes} == {transport}
    records = sorted(as_records(envelopes), key=lambda r: r.message)
    assert [r.message for r in records] == [f"{marker} run {i}" for i in range(10)]
    assert [r.level for r in records] == [Level.ERROR if i % 2 else Level.WARN for i in range(10)]
    assert {r.service for r in records} == {"payroll"}
    # The sender's address is the host, as rsyslog's fromhost-ip; an address is PII the default
    # masking hides, in the host field as anywhere else.
    assert {e.host for e in envelopes} == {"127.0.0.1"}
    assert {r.host for r in records} == {"[IP]"}
    assert all(before - timedelta(seconds=1) <= r.timestamp <= after + timedelta(seconds=1) for r in records)


def test_logger_rfc5424_octet_counting_tcp(env):
    logger = shutil.which("logger")
    if logger is None:
        pytest.skip("logger is not installed: apt-get install -y bsdutils (util-linux)")
    marker = f"logger-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)
    for i, priority in enumerate(["user.warning", "user.err", "user.info"]):
        subprocess.run(
            [
                logger,
                "--rfc5424",
                "--octet-count",
                "--tcp",
                "-n",
                "127.0.0.1",
                "-P",
                str(env["tcp"]),
                "-t",
                "backup",
                "-p",
                priority,
                f"{marker} step {i}",
            ],
            check=True,
            timeout=30,
        )
    after = datetime.now(UTC)
    envelopes = arrived(env, marker, 3)
    assert all((e.line or "").startswith("<") and ">1 " in (e.line or "")[:6] for e in envelopes)
    records = sorted(as_records(envelopes), key=lambda r: r.message)
    assert [r.message for r in records] == [f"{marker} step {i}" for i in range(3)]
    assert [r.level for r in records] == [Level.WARN, Level.ERROR, Level.INFO]
    assert {r.service for r in records} == {"backup"}
    assert {r.host for r in records} == {socket.gethostname()}
    assert all(before - timedelta(seconds=1) <= r.timestamp <= after + timedelta(seconds=1) for r in records)


NODE_CLIENTS = ["winston@3.19.0", "winston-elasticsearch@0.19.0", "pino@10.4.0", "pino-elasticsearch@9.0.0"]

WINSTON_SCRIPT = """
const winston = require('winston');
const { ElasticsearchTransport } = require('winston-elasticsearch');
const [url, key, marker] = process.argv.slice(1);
const problems = [];
const transport = new ElasticsearchTransport({
  level: 'debug',
  index: 'winston',
  flushInterval: 200,
  clientOpts: { node: url, auth: { username: 'elastic', password: key } },
});
transport.on('error', (e) => problems.push(String(e)));
transport.on('warning', (e) => problems.push(String(e)));
const logger = winston.createLogger({ level: 'debug', transports: [transport] });
for (let i = 0; i < 10; i++) {
  logger.log(i % 2 ? 'warn' : 'info', `${marker} cart ${i}`, { host: { name: 'node-host-1' }, cart: i });
}
setTimeout(async () => {
  await transport.flush();
  logger.end();
  console.log(JSON.stringify({ problems }));
}, 1500);
"""

PINO_SCRIPT = """
const pino = require('pino');
const pinoElastic = require('pino-elasticsearch');
const [url, key, marker] = process.argv.slice(1);
const problems = [];
let inserted = 0;
const stream = pinoElastic({
  index: 'pino', node: url, esVersion: 8, flushBytes: 100,
  auth: { username: 'elastic', password: key },
});
const report = () => console.log(JSON.stringify({ problems, inserted }));
stream.on('insertError', (e) => problems.push('insertError ' + e));
// The bulk helper settles after the stream ends and the closing refresh is answered.
stream.on('error', (e) => { problems.push('error ' + e); report(); });
stream.on('insert', (stats) => { inserted += stats.successful; report(); });
const logger = pino({ level: 'debug', base: { hostname: 'node-host-2' } }, stream);
for (let i = 0; i < 10; i++) {
  (i % 2 ? logger.error : logger.info).call(logger, { order: i }, `${marker} order ${i}`);
}
stream.end();
"""


def test_winston_elasticsearch(env):
    folder = npm_client(env["settings"].cache_dir, "elasticsearch-shippers", NODE_CLIENTS)
    marker = f"winston-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)
    out = json.loads(run_node(folder, WINSTON_SCRIPT, env["api"].url, env["key"], marker).splitlines()[-1])
    after = datetime.now(UTC)
    assert out["problems"] == []
    records = sorted(as_records(arrived(env, marker, 10)), key=lambda r: r.message)
    assert [r.message for r in records] == [f"{marker} cart {i}" for i in range(10)]
    assert [r.level for r in records] == [Level.WARN if i % 2 else Level.INFO for i in range(10)]
    # winston names no service, so the index does; its metadata comes under "fields"
    assert {(r.service, r.host) for r in records} == {("winston", "node-host-1")}
    assert records[3].attributes["cart"] == "3"
    assert all(before - timedelta(seconds=1) <= r.timestamp <= after for r in records)


def test_pino_elasticsearch(env):
    folder = npm_client(env["settings"].cache_dir, "elasticsearch-shippers", NODE_CLIENTS)
    marker = f"pino-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)
    out = json.loads(run_node(folder, PINO_SCRIPT, env["api"].url, env["key"], marker).splitlines()[-1])
    after = datetime.now(UTC)
    assert out == {"problems": [], "inserted": 10}
    records = sorted(as_records(arrived(env, marker, 10)), key=lambda r: r.message)
    assert [r.message for r in records] == [f"{marker} order {i}" for i in range(10)]
    assert [r.level for r in records] == [Level.ERROR if i % 2 else Level.INFO for i in range(10)]
    assert {(r.service, r.host) for r in records} == {("pino", "node-host-2")}
    assert all(before - timedelta(seconds=1) <= r.timestamp <= after for r in records)


# The newest OpenTelemetry JS release line that still runs on Node 20 (3.x needs Node 22).
OTEL_JS = [
    "@opentelemetry/api@1.9.0",
    "@opentelemetry/api-logs@0.203.0",
    "@opentelemetry/sdk-logs@0.203.0",
    "@opentelemetry/exporter-logs-otlp-http@0.203.0",
    "@opentelemetry/resources@2.0.1",
]

OTEL_JS_SCRIPT = """
const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { SeverityNumber } = require('@opentelemetry/api-logs');
const [url, key, marker, startMs] = process.argv.slice(1);
const results = [];
const exporter = new OTLPLogExporter({ url: url + '/v1/logs', headers: { Authorization: 'Bearer ' + key } });
const original = exporter.export.bind(exporter);
exporter.export = (logs, done) => original(logs, (result) => {
  results.push([logs.length, result.code]);
  done(result);
});
const provider = new LoggerProvider({
  resource: resourceFromAttributes({ 'service.name': 'cart-js', 'host.name': 'js-host-1' }),
  processors: [new BatchLogRecordProcessor(exporter)],
});
const logger = provider.getLogger('strata-test');
for (let i = 0; i < 10; i++) {
  logger.emit({
    // A Date: a number of milliseconds before the process started would read as performance.now().
    timestamp: new Date(Number(startMs) + i * 1000),
    severityNumber: i % 2 ? SeverityNumber.WARN : SeverityNumber.INFO,
    severityText: i % 2 ? 'WARN' : 'INFO',
    body: `${marker} cart ${i} checked out`,
    attributes: { cart: i },
  });
}
provider.shutdown().then(() => console.log(JSON.stringify({ results })));
"""


def test_opentelemetry_js_sdk(env):
    folder = npm_client(env["settings"].cache_dir, "opentelemetry-js", OTEL_JS)
    marker = f"otel-js-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    start_ms = str(int(start.timestamp() * 1000))
    out = json.loads(
        run_node(folder, OTEL_JS_SCRIPT, env["api"].url, env["key"], marker, start_ms).splitlines()[-1]
    )
    assert out["results"] and all(code == 0 for _, code in out["results"])  # ExportResultCode.SUCCESS
    assert sum(n for n, _ in out["results"]) == 10
    records = sorted(as_records(arrived(env, marker, 10)), key=lambda r: r.timestamp)
    assert [r.timestamp for r in records] == [start + timedelta(seconds=i) for i in range(10)]
    assert [r.message for r in records] == [f"{marker} cart {i} checked out" for i in range(10)]
    assert [r.level for r in records] == [Level.WARN if i % 2 else Level.INFO for i in range(10)]
    assert {(r.service, r.host) for r in records} == {("cart-js", "js-host-1")}
