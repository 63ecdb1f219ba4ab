"""Every client's TLS and credentials, as built from settings: what each library is handed."""

from __future__ import annotations

import ssl
from pathlib import Path

import psycopg.conninfo
import pytest
from pydantic import ValidationError

from connectors.cassandra.connection import cluster_options
from connectors.kafka import security as kafka
from connectors.kafka.producer import java_producer_properties, producer_config
from connectors.opensearch.connection import connection_options, java_sink_options
from connectors.s3.ddl import ArchiveLocation, duckdb_secret
from infra.settings import Settings
from jobs.flink import s3_options
from jobs.ingest.job import IngestOptions, logs_sink_ddl, source_ddl


def test_a_plaintext_cluster_adds_nothing_to_the_kafka_configs() -> None:
    s = Settings()
    assert kafka.librdkafka_security(s) == {}
    assert kafka.java_security(s) == {}
    assert "security.protocol" not in producer_config(s)


CA_PEM = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n"


def test_sasl_ssl_reaches_the_producer_and_the_java_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM)
    s = Settings(
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="scram-sha-512",
        kafka_sasl_username="ingest",
        kafka_sasl_password='p"w',
        tls_ca_file=str(ca),
    )
    config = producer_config(s)
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("ingest", 'p"w')
    assert config["ssl.ca.location"] == str(ca)

    java = java_producer_properties(s)
    assert java["security.protocol"] == "SASL_SSL"
    assert java["ssl.truststore.type"] == "PEM"
    # The text itself: a Flink cluster's task managers have no copy of this machine's files.
    assert java["ssl.truststore.certificates"] == CA_PEM
    assert java["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="ingest" password="p\\"w";'
    )


def test_the_ingest_jobs_kafka_tables_carry_the_security_properties(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(CA_PEM)
    s = Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(ca), tls_ca_file="/other.pem")
    options = IngestOptions.from_settings(s)
    for ddl in (source_ddl(s, options), logs_sink_ddl(s, options)):
        assert "'properties.security.protocol' = 'SSL'" in ddl
        assert f"'properties.ssl.truststore.certificates' = '{CA_PEM}'" in ddl


def test_kafka_client_certificates_go_to_both_clients(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_text(CA_PEM)
    key.write_text("-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n")
    s = Settings(kafka_security_protocol="SSL", kafka_ssl_cert_file=str(cert), kafka_ssl_key_file=str(key))
    assert kafka.librdkafka_security(s)["ssl.certificate.location"] == str(cert)
    assert kafka.librdkafka_security(s)["ssl.key.location"] == str(key)
    java = kafka.java_security(s)
    assert (java["ssl.keystore.certificate.chain"], java["ssl.keystore.key"]) == (
        cert.read_text(),
        key.read_text(),
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u"), "SASL_PASSWORD"),
        (Settings(kafka_security_protocol="SSL", kafka_ssl_cert_file="/c.pem"), "go together"),
    ],
)
def test_half_given_kafka_credentials_are_refused_with_what_is_missing(
    settings: Settings, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        producer_config(settings)


def test_an_unknown_kafka_protocol_fails_at_start() -> None:
    with pytest.raises(ValidationError, match="security protocol"):
        Settings(kafka_security_protocol="TLS")


def test_opensearch_over_https_verifies_against_the_configured_ca() -> None:
    s = Settings(
        opensearch_url="https://os-1:9200,https://os-2:9200", tls_ca_file="/ca.pem", opensearch_token="t0k"
    )
    options = connection_options(s)
    assert options["use_ssl"] and options["verify_certs"]
    assert options["ca_certs"] == "/ca.pem"
    assert options["headers"] == {"Authorization": "Bearer t0k"}
    assert java_sink_options(s) == {"username": "", "password": "", "token": "t0k", "ca_file": "/ca.pem"}


def test_opensearch_refuses_a_token_and_a_user_together() -> None:
    with pytest.raises(ValueError, match="not both"):
        connection_options(Settings(opensearch_token="t", opensearch_username="u", opensearch_password="p"))


def test_cassandra_authenticates_and_verifies_the_nodes_certificates() -> None:
    options = cluster_options(
        Settings(cassandra_username="strata", cassandra_password="pw", cassandra_ssl=True)
    )
    assert options["auth_provider"].username == "strata"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert cluster_options(Settings()) == {}


def test_postgres_dsn_carries_sslmode_and_the_ca() -> None:
    dsn = Settings(postgres_sslmode="verify-full", postgres_ca_file="/pg-ca.pem").postgres_dsn
    parsed = psycopg.conninfo.conninfo_to_dict(dsn)
    assert parsed["sslmode"] == "verify-full"
    assert parsed["sslrootcert"] == "/pg-ca.pem"
    with pytest.raises(ValidationError, match="verify-full"):
        Settings(postgres_sslmode="on")


def test_s3_over_https_in_flink_and_duckdb() -> None:
    s = Settings(s3_endpoint="https://s3.internal:9000", s3_ca_file="/s3-ca.pem")
    assert s3_options(s)["s3.connection.ssl.enabled"] == "true"
    assert s3_options(Settings())["s3.connection.ssl.enabled"] == "false"
    secret = duckdb_secret(ArchiveLocation.from_settings(s))
    assert "USE_SSL true" in secret
    assert secret.startswith("SET ca_cert_file = '/s3-ca.pem';")


def test_the_s3_client_verifies_https_against_the_configured_ca() -> None:
    from connectors.s3.client import s3_client

    client = s3_client(Settings(s3_endpoint="https://s3.internal:9000", s3_ca_file="/s3-ca.pem"))
    assert client._endpoint.http_session._verify == "/s3-ca.pem"
