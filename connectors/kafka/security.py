"""How every Kafka client Strata opens reaches a secured cluster: TLS and SASL from settings.

Two dialects of the same settings: librdkafka's (the API's producer, the receivers, the
consumers of confluent-kafka) and the Java client's (Flink's KafkaSource and KafkaSink, which
take them as ``properties.*`` in SQL or ``set_property`` in the DataStream builders).

>>> from infra.settings import Settings
>>> java_security(Settings(kafka_security_protocol="SSL", tls_ca_file="/etc/ca.pem"))
{'security.protocol': 'SSL', 'ssl.truststore.type': 'PEM', 'ssl.truststore.location': '/etc/ca.pem'}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.settings import Settings

_JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _uses_ssl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def check(settings: Settings) -> None:
    """Raise ``ValueError`` naming what is missing, before any client tries and fails vaguely."""
    if _uses_sasl(settings) and not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise ValueError(
            f"STRATA_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "STRATA_KAFKA_SASL_USERNAME and STRATA_KAFKA_SASL_PASSWORD"
        )
    if bool(settings.kafka_ssl_cert_file) != bool(settings.kafka_ssl_key_file):
        raise ValueError("STRATA_KAFKA_SSL_CERT_FILE and STRATA_KAFKA_SSL_KEY_FILE go together")


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """The librdkafka settings; empty for a plaintext cluster, so local configs stay unchanged."""
    check(settings)
    config: dict[str, str] = {}
    if settings.kafka_security_protocol == "PLAINTEXT":
        return config
    config["security.protocol"] = settings.kafka_security_protocol.lower()
    if _uses_ssl(settings):
        if ca := settings.ca_file(settings.kafka_ssl_ca_file):
            config["ssl.ca.location"] = ca
        if settings.kafka_ssl_cert_file:
            config["ssl.certificate.location"] = settings.kafka_ssl_cert_file
            config["ssl.key.location"] = settings.kafka_ssl_key_file
    if _uses_sasl(settings):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password
    return config


def jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_security(settings: Settings) -> dict[str, str]:
    """The Java client's properties for the same cluster (PEM files, read by Kafka's own SSL
    engine factory, so no Java keystore has to be made)."""
    check(settings)
    props: dict[str, str] = {}
    if settings.kafka_security_protocol == "PLAINTEXT":
        return props
    props["security.protocol"] = settings.kafka_security_protocol
    if _uses_ssl(settings):
        if ca := settings.ca_file(settings.kafka_ssl_ca_file):
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = ca
        if settings.kafka_ssl_cert_file:
            # A PEM keystore file holds the key and its certificate chain: Kafka reads both from
            # one file, so the two settings are joined into one when they name different files.
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = pem_keystore(settings)
    if _uses_sasl(settings):
        props["sasl.mechanism"] = settings.kafka_sasl_mechanism
        props["sasl.jaas.config"] = (
            f"{_JAAS_MODULES[settings.kafka_sasl_mechanism]} required "
            f"username={jaas_quote(settings.kafka_sasl_username)} "
            f"password={jaas_quote(settings.kafka_sasl_password)};"
        )
    return props


def pem_keystore(settings: Settings) -> str:
    """One PEM file of the client key then its certificate, as Kafka's PEM keystore wants."""
    from pathlib import Path

    cert, key = Path(settings.kafka_ssl_cert_file), Path(settings.kafka_ssl_key_file)
    if cert == key:
        return str(cert)
    joined = settings.run_dir / "kafka-client-keystore.pem"
    joined.parent.mkdir(parents=True, exist_ok=True)
    text = key.read_text().rstrip("\n") + "\n" + cert.read_text()
    if not joined.exists() or joined.read_text() != text:
        joined.touch(mode=0o600)
        joined.write_text(text)
    return str(joined)


def sql_properties(settings: Settings) -> dict[str, str]:
    """:func:`java_security` as options of Flink's Kafka SQL connector (``properties.*``)."""
    return {f"properties.{k}": v for k, v in java_security(settings).items()}
