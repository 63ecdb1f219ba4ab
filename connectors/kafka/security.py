"""How every Kafka client Strata opens reaches a secured cluster: TLS and SASL from settings.

Two dialects of the same settings: librdkafka's (the API's producer, the receivers, the
consumers of confluent-kafka) and the Java client's (Flink's KafkaSource and KafkaSink, which
take them as ``properties.*`` in SQL or ``set_property`` in the DataStream builders).

>>> from infra.settings import Settings
>>> librdkafka_security(Settings(kafka_security_protocol="SSL", tls_ca_file="/etc/ca.pem"))
{'security.protocol': 'ssl', 'ssl.ca.location': '/etc/ca.pem'}
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
    """The Java client's properties for the same cluster. Certificates and the client key go in
    as PEM text (Kafka's ``ssl.truststore.certificates``, ``ssl.keystore.certificate.chain``,
    ``ssl.keystore.key``), read here, so a Flink cluster's task managers need no file of their
    own and no Java keystore has to be made."""
    from pathlib import Path

    check(settings)
    props: dict[str, str] = {}
    if settings.kafka_security_protocol == "PLAINTEXT":
        return props
    props["security.protocol"] = settings.kafka_security_protocol
    if _uses_ssl(settings):
        if ca := settings.ca_file(settings.kafka_ssl_ca_file):
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.certificates"] = Path(ca).read_text()
        if settings.kafka_ssl_cert_file:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.certificate.chain"] = Path(settings.kafka_ssl_cert_file).read_text()
            props["ssl.keystore.key"] = Path(settings.kafka_ssl_key_file).read_text()
    if _uses_sasl(settings):
        props["sasl.mechanism"] = settings.kafka_sasl_mechanism
        props["sasl.jaas.config"] = (
            f"{_JAAS_MODULES[settings.kafka_sasl_mechanism]} required "
            f"username={jaas_quote(settings.kafka_sasl_username)} "
            f"password={jaas_quote(settings.kafka_sasl_password)};"
        )
    return props


def sql_properties(settings: Settings) -> dict[str, str]:
    """:func:`java_security` as options of Flink's Kafka SQL connector (``properties.*``)."""
    return {f"properties.{k}": v for k, v in java_security(settings).items()}
