"""The pipeline over TLS end to end: records sent to the HTTPS API with a client certificate, put
on a Kafka broker that only the SASL_SSL listener of `strata stack up --tls` serves to Strata, read
by the ingest job over SASL_SSL into the stores, and found again by a search over HTTPS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from connectors.kafka.security import librdkafka_security
from infra.settings import Settings
from infra.stack.services.kafka import stack_sasl_user
from infra.stack.tls import client_cert, local_certs
from tests.integration import collector_support as cs
from tests.integration.ingest_support import Run, isolated_run
from tests.integration.kafka_support import ThrowawayKafka, throwaway_kafka
from tests.integration.test_tls import _client_context, _HttpsApi, _register, _tls_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Jobs outside the local stack refuse to start without both secrets (core.records.config, core.deadletter).
IDENTITY_KEY = "tls-test-identity-key-0123"
DLQ_KEY = "tls-test-dead-letter-key-0123"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayKafka]:
    started = time.monotonic()
    broker = throwaway_kafka(tmp_path_factory.mktemp("kafka-tls"), tls=True)
    broker.start()
    print(f"\nthe SASL_SSL broker answered {time.monotonic() - started:.1f}s after its start")
    try:
        yield broker
    finally:
        broker.kill()


def _secure_env(broker: ThrowawayKafka) -> dict[str, str]:
    """What a deployment sets to reach the broker's SASL_SSL listener."""
    s = broker.settings
    user, password = stack_sasl_user(s)
    return {
        "STRATA_KAFKA_BOOTSTRAP": f"{s.bind_host}:{s.kafka_tls_port}",
        "STRATA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STRATA_KAFKA_SASL_MECHANISM": "PLAIN",
        "STRATA_KAFKA_SASL_USERNAME": user,
        "STRATA_KAFKA_SASL_PASSWORD": password,
        "STRATA_TLS_CA_FILE": str(s.home / "tls" / "ca.crt"),
        "STRATA_IDENTITY_KEY": IDENTITY_KEY,
        "STRATA_DLQ_KEY": DLQ_KEY,
    }


@pytest.fixture()
def run(secure_kafka: ThrowawayKafka, require, unique_name, tmp_path: Path) -> Iterator[Run]:
    require("opensearch", "cassandra", "s3", "postgres")
    with isolated_run(secure_kafka.settings, unique_name("tls").lower(), tmp_path) as made:
        made.env.update(_secure_env(secure_kafka))
        yield made


def test_wrong_kafka_credentials_are_refused_over_sasl_ssl(secure_kafka: ThrowawayKafka) -> None:
    env = _secure_env(secure_kafka)
    good = Settings(**{k.removeprefix("STRATA_").lower(): v for k, v in env.items()})
    assert (
        AdminClient({"bootstrap.servers": good.kafka_servers, **librdkafka_security(good)})
        .list_topics(timeout=20)
        .brokers
    )
    wrong = good.model_copy(update={"kafka_sasl_password": "not-the-password"})
    with pytest.raises(Exception, match=r"transport|[Aa]uthentication"):
        AdminClient({"bootstrap.servers": wrong.kafka_servers, **librdkafka_security(wrong)}).list_topics(
            timeout=5
        )


def test_https_api_to_kafka_over_sasl_ssl_to_the_ingest_job_to_a_search(run: Run) -> None:
    pki = local_certs(Path(run.env["STRATA_TLS_CA_FILE"]).parent)
    agent = client_cert(pki, "pipeline-agent")
    base = cs.require_stack()
    api_settings = _tls_settings(
        Settings(**{k.removeprefix("STRATA_").lower(): v for k, v in run.env.items()}),
        pki,
    )
    marker = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    batch = {
        "service": "tls-pipeline",
        "logs": [{"timestamp": now.isoformat(), "message": f"over tls {marker} {i}"} for i in range(20)],
    }
    with cs.tenant_with_key(base) as (tenant, _):
        _register(base, tenant, agent.cert, scopes=("ingest", "search"))
        with (
            _HttpsApi(api_settings) as api,
            httpx.Client(base_url=api.url, verify=_client_context(pki, agent), timeout=60) as http,
        ):
            accepted = http.post("/v1/logs/ingest", json=batch)
            assert accepted.status_code == 202, accepted.text  # acknowledged by Kafka over SASL_SSL

            started = time.monotonic()
            job = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "infra.cli",
                    "job",
                    "run",
                    "ingest",
                    "--from",
                    "earliest",
                    "--bounded",
                    "--fresh",
                ],
                env={**os.environ, **run.env},
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert job.returncode == 0, job.stderr[-3000:]
            print(f"\nthe bounded ingest job over SASL_SSL took {time.monotonic() - started:.1f}s")

            found: list[str] = []
            deadline = time.monotonic() + 60
            while len(found) < 20 and time.monotonic() < deadline:
                answer = http.get("/v1/logs/search", params={"q": marker, "from": "now-1h", "limit": 100})
                assert answer.status_code == 200, answer.text
                found = [log["message"] for log in answer.json()["logs"]]
                time.sleep(1)
    assert sorted(found) == sorted(f"over tls {marker} {i}" for i in range(20))
