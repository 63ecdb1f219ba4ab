"""A single-node KRaft Kafka 4 broker from the ``kafka_2.13`` jars."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path
from typing import Any

from infra.settings import Settings
from infra.stack.maven import Artifact, fetch
from infra.stack.process import StackError
from infra.stack.services.base import Launch, Port, Service, classpath, java

LOG4J_VERSION = "2.24.3"

LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class Kafka(Service):
    name = "kafka"
    version_setting = "kafka_version"
    port_settings = ("kafka_port", "kafka_controller_port")

    @property
    def ports(self) -> list[Port]:
        ports = super().ports
        if self.settings.stack_tls:
            ports.append(Port(self.settings.kafka_tls_port, "STRATA_KAFKA_TLS_PORT"))
        return ports

    @property
    def endpoint(self) -> str:
        return self.settings.kafka_servers

    @property
    def lib_dir(self) -> Path:
        return self.settings.cache_dir / f"kafka-{self.version}"

    def fetch(self) -> None:
        fetch(
            [
                Artifact("org.apache.kafka", "kafka_2.13", self.version),
                # Kafka ships no SLF4J binding in its Maven artifacts: without one the broker is silent.
                Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
                Artifact("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
            ],
            self.lib_dir,
        )

    def _java(self) -> list[str]:
        return [
            java(),
            f"-Xms{self.settings.kafka_heap}",
            f"-Xmx{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.conf_dir / 'log4j2.properties'}",
            "-cp",
            classpath(self.lib_dir),
        ]

    def prepare(self) -> Launch:
        s = self.settings
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "log4j2.properties").write_text(LOG4J2)
        props = self.conf_dir / "server.properties"
        host = s.bind_host
        listeners = f"PLAINTEXT://{host}:{s.kafka_port},CONTROLLER://{host}:{s.kafka_controller_port}"
        advertised = f"PLAINTEXT://{host}:{s.kafka_port}"
        if s.stack_tls:
            listeners += f",SASL_SSL://{host}:{s.kafka_tls_port}"
            advertised += f",SASL_SSL://{host}:{s.kafka_tls_port}"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{host}:{s.kafka_controller_port}",
                    f"listeners={listeners}",
                    f"advertised.listeners={advertised}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
                    "inter.broker.listener.name=PLAINTEXT",
                    *self._tls_properties(),
                    f"log.dirs={self.data_dir / 'log'}",
                    f"num.partitions={s.topic_partitions}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    f"log.retention.hours={s.topic_retention_hours}",
                    # Topics are created on purpose (by `stack up` or a test), never by a typo.
                    "auto.create.topics.enable=false",
                    "message.max.bytes=10485760",
                    "",
                ]
            )
        )
        if not (self.data_dir / "log" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            proc = subprocess.run(
                [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise StackError(f"kafka: formatting the storage failed:\n{proc.stdout}{proc.stderr}")
        return Launch(cmd=[*self._java(), "kafka.Kafka", str(props)])

    def _tls_properties(self) -> list[str]:
        """The SASL_SSL listener's settings: the stack's server certificate (PEM, read by Kafka's
        own SSL engine), client certificates requested and checked against the local CA, and SASL
        PLAIN with the one user of ``kafka_sasl_username``/``kafka_sasl_password``."""
        s = self.settings
        if not s.stack_tls:
            return []
        from connectors.kafka.security import jaas_quote
        from infra.stack.tls import local_certs

        certs = local_certs(s.home / "tls", (s.bind_host, "localhost"))
        keystore = self.conf_dir / "server-keystore.pem"
        keystore.touch(mode=0o600)
        keystore.write_text(certs.server.key.read_text().rstrip("\n") + "\n" + certs.server.cert.read_text())
        user, password = stack_sasl_user(s)
        return [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={certs.ca}",
            "ssl.client.auth=requested",
            "sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f"user_{user}={jaas_quote(password)};",
        ]

    def _admin(self) -> Any:
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=self.endpoint, request_timeout_ms=5000, bootstrap_timeout_ms=5000
        )

    def check(self) -> str | None:
        try:
            admin = self._admin()
            try:
                admin.describe_cluster()
            finally:
                admin.close()
        except Exception as exc:  # any client failure means "not healthy yet"
            return f"no answer from the broker at {self.endpoint}: {exc.__class__.__name__}: {exc}"
        return None

    def provision(self) -> None:
        from connectors.kafka.ready import ensure_topic

        s = self.settings
        for topic in (s.raw_topic, s.dlq_topic, s.logs_topic):
            ensure_topic(s, topic)


def stack_sasl_user(settings: Settings) -> tuple[str, str]:
    """The SASL user and password of the stack's TLS listener: the clients' own settings, so one
    set of STRATA_KAFKA_SASL_* serves both; a local default when they are unset."""
    return settings.kafka_sasl_username or "strata", settings.kafka_sasl_password or "strata-kafka-secret"
