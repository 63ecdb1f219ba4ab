"""An S3-compatible server: s3proxy with its filesystem backend, so objects live on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.stack.maven import Artifact, fetch
from infra.stack.services.base import Launch, Port, Service, classpath, java

# s3proxy logs every request at DEBUG by default; keep warnings only.
LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%date{ISO8601} %-5level %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
  <logger name="org.gaul.s3proxy" level="INFO"/>
</configuration>
"""


class S3Proxy(Service):
    name = "s3"
    version_setting = "s3proxy_version"
    port_settings = ("s3_port",)

    @property
    def ports(self) -> list[Port]:
        ports = super().ports
        if self.settings.stack_tls:
            ports.append(Port(self.settings.s3_tls_port, "STRATA_S3_TLS_PORT"))
        return ports

    @property
    def endpoint(self) -> str:
        return self.settings.s3_endpoint_url

    @property
    def lib_dir(self) -> Path:
        return self.settings.cache_dir / f"s3proxy-{self.version}"

    def fetch(self) -> None:
        fetch(
            [
                Artifact("org.gaul", "s3proxy", self.version),
                Artifact(
                    "com.fasterxml.jackson.core",
                    "jackson-annotations",
                    self.settings.s3proxy_jackson_annotations_version,
                    transitive=False,
                ),
            ],
            self.lib_dir,
        )

    def prepare(self) -> Launch:
        s = self.settings
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "objects").mkdir(parents=True, exist_ok=True)
        props = self.conf_dir / "s3proxy.properties"
        props.write_text(
            "\n".join(
                [
                    f"s3proxy.endpoint=http://{s.bind_host}:{s.s3_port}",
                    # Loopback only, so no signature check: pyarrow's AWS SDK for C++ signs a key's
                    # '=' as %3D but sends it bare, which s3proxy rejects, and every Hive partition
                    # path (tenant=…/dt=…) has one. Real S3 accepts both; clients still sign.
                    "s3proxy.authorization=none",
                    f"s3proxy.identity={s.s3_access_key}",
                    f"s3proxy.credential={s.s3_secret_key}",
                    "s3proxy.ignore-unknown-headers=true",
                    # nio2 lists keys, not the folders that hold them, as S3 does.
                    "jclouds.provider=filesystem-nio2",
                    f"jclouds.identity={s.s3_access_key}",
                    f"jclouds.credential={s.s3_secret_key}",
                    f"jclouds.filesystem.basedir={self.data_dir / 'objects'}",
                    f"jclouds.region={s.s3_region}",
                    *self._tls_properties(),
                    "",
                ]
            )
        )
        logback = self.conf_dir / "logback.xml"
        logback.write_text(LOGBACK)
        cmd = [
            java(),
            f"-Xmx{s.s3_heap}",
            f"-Dlogback.configurationFile={logback}",
            "-cp",
            classpath(self.lib_dir),
            "org.gaul.s3proxy.Main",
            "--properties",
            str(props),
        ]
        return Launch(cmd=cmd)

    def _tls_properties(self) -> list[str]:
        """With ``stack_tls``: an HTTPS endpoint on ``s3_tls_port`` with the local CA's server
        certificate, which s3proxy (Jetty) reads from a PKCS#12 keystore made here."""
        s = self.settings
        if not s.stack_tls:
            return []
        from infra.stack.tls import local_certs, pkcs12

        certs = local_certs(s.home / "tls", (s.bind_host, "localhost"))
        # The keystore's password guards nothing the key file beside it does not: it is only
        # the format's requirement.
        keystore = pkcs12(certs, self.conf_dir / "server.p12", "strata-local")
        return [
            f"s3proxy.secure-endpoint=https://{s.bind_host}:{s.s3_tls_port}",
            f"s3proxy.keystore-path={keystore}",
            "s3proxy.keystore-password=strata-local",
        ]

    def client(self) -> Any:
        """One quick attempt: the health check's."""
        from botocore.config import Config

        from connectors.s3.client import s3_client

        return s3_client(
            self.settings, Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1})
        )

    def check(self) -> str | None:
        try:
            self.client().list_buckets()
        except Exception as exc:
            return f"no answer from {self.endpoint}: {exc}"
        return None

    def provision(self) -> None:
        client = self.client()
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if self.settings.s3_bucket not in names:
            client.create_bucket(Bucket=self.settings.s3_bucket)
