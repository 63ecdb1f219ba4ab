"""Cassandra 5.0 from the ``cassandra-all`` jars, started as ``CassandraDaemon`` on Java 17."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.settings import Settings
from infra.stack.maven import Artifact, fetch
from infra.stack.process import StackError
from infra.stack.services.base import Launch, Service, classpath, java

# What Cassandra's own jvm17-server.options opens up: without these it cannot start on Java 17.
JAVA17_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.math=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
]

LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


class Cassandra(Service):
    name = "cassandra"
    version_setting = "cassandra_version"
    port_settings = ("cassandra_port", "cassandra_storage_port")

    @property
    def endpoint(self) -> str:
        return f"{self.settings.cassandra_contact_points[0]}:{self.settings.cassandra_port}"

    @property
    def lib_dir(self) -> Path:
        return self.settings.cache_dir / f"cassandra-{self.version}"

    def fetch(self) -> None:
        fetch([Artifact("org.apache.cassandra", "cassandra-all", self.version)], self.lib_dir)

    def prepare(self) -> Launch:
        s = self.settings
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        host = s.bind_host
        d = self.data_dir
        (self.conf_dir / "logback.xml").write_text(LOGBACK)
        (self.conf_dir / "cassandra.yaml").write_text(
            f"""cluster_name: strata
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{host}:{s.cassandra_storage_port}"
listen_address: {host}
rpc_address: {host}
storage_port: {s.cassandra_storage_port}
native_transport_port: {s.cassandra_port}
start_native_transport: true
commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories: [{d / "data"}]
commitlog_directory: {d / "commitlog"}
saved_caches_directory: {d / "saved_caches"}
hints_directory: {d / "hints"}
cdc_raw_directory: {d / "cdc_raw"}
# A new cluster: use Cassandra 5's own storage format (and everything SAI offers).
storage_compatibility_mode: NONE
{self._security_yaml()}authorizer: AllowAllAuthorizer
# One small node on a shared 2-core machine.
concurrent_reads: 8
concurrent_writes: 16
concurrent_compactors: 1
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
key_cache_size: 32MiB
write_request_timeout: 5000ms
read_request_timeout: 10000ms
range_request_timeout: 20000ms
sasi_indexes_enabled: false
materialized_views_enabled: false
"""
        )
        jamm = sorted(self.lib_dir.glob("jamm-*.jar"))
        if not jamm:
            raise StackError(f"cassandra: no jamm jar in {self.lib_dir}; delete it and run `strata stack up`")
        heap = s.cassandra_heap
        cmd = [
            java(),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:+HeapDumpOnOutOfMemoryError",
            "-Xss256k",
            f"-javaagent:{jamm[0]}",
            *JAVA17_FLAGS,
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.config=file://{self.conf_dir / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={d}",
            f"-Dcassandra.logdir={d / 'logs'}",
            f"-Dlogback.configurationFile={self.conf_dir / 'logback.xml'}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.initial_token_allocation_rf=1",
            # The default superuser is made this long after start; a test stack wants it at once.
            "-Dcassandra.superuser_setup_delay_ms=0",
            "-cp",
            classpath(self.lib_dir),
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        return Launch(cmd=cmd, cwd=d)

    def _security_yaml(self) -> str:
        """With ``stack_tls``: password authentication, and client connections over TLS only, with
        the local CA's server certificate (PEM, read by Cassandra's own PEM SSL context factory)."""
        s = self.settings
        if not s.stack_tls:
            return "authenticator: AllowAllAuthenticator\n"
        from infra.stack.tls import local_certs

        certs = local_certs(s.home / "tls", (s.bind_host, "localhost"))
        keystore = self.conf_dir / "server-keystore.pem"
        keystore.touch(mode=0o600)
        keystore.write_text(certs.server.key.read_text().rstrip("\n") + "\n" + certs.server.cert.read_text())
        return (
            "authenticator: PasswordAuthenticator\n"
            "client_encryption_options:\n"
            "  enabled: true\n"
            "  optional: false\n"
            "  ssl_context_factory:\n"
            "    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory\n"
            f"  keystore: {keystore}\n"
            f"  truststore: {certs.ca}\n"
            "  require_client_auth: false\n"
        )

    def _client_options(self) -> dict[str, Any]:
        """The health check's and provisioning's credentials and TLS on a TLS stack."""
        if not self.settings.stack_tls:
            return {}
        from connectors.cassandra.connection import cluster_options

        name, password = stack_cassandra_user(self.settings)
        return cluster_options(
            self.settings.model_copy(
                update={
                    "cassandra_username": name,
                    "cassandra_password": password,
                    "cassandra_ssl": True,
                    "cassandra_ca_file": str(self.settings.home / "tls" / "ca.crt"),
                }
            )
        )

    def session(self, keyspace: str | None = None) -> Any:
        from cassandra.cluster import Cluster

        cluster = Cluster(
            self.settings.cassandra_contact_points,
            port=self.settings.cassandra_port,
            connect_timeout=5,
            control_connection_timeout=5,
            **self._client_options(),
        )
        return cluster, cluster.connect(keyspace)

    def check(self) -> str | None:
        try:
            cluster, session = self.session()
            try:
                session.execute("SELECT release_version FROM system.local", timeout=5)
            finally:
                cluster.shutdown()
        except Exception as exc:
            return f"no answer from {self.endpoint}: {exc.__class__.__name__}"
        return None

    def provision(self) -> None:
        s = self.settings
        cluster, session = self.session()
        try:
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {s.cassandra_keyspace} WITH replication = "
                f"{{'class': 'SimpleStrategy', 'replication_factor': {s.cassandra_replication_factor}}}",
                timeout=30,
            )
        finally:
            cluster.shutdown()


def stack_cassandra_user(settings: Settings) -> tuple[str, str]:
    """The TLS stack's Cassandra user: Cassandra's default superuser, which exists from the first
    start (a real cluster must replace it)."""
    return "cassandra", "cassandra"
