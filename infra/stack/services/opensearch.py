"""Single-node OpenSearch 2.19 from the integ-test zip, run as an unprivileged user."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from infra.settings import Settings
from infra.stack.maven import Artifact, fetch
from infra.stack.process import StackError, chown_tree, unprivileged_user
from infra.stack.services.base import Launch, Service, java_home
from infra.stack.services.http import get_json


class OpenSearch(Service):
    name = "opensearch"
    version_setting = "opensearch_version"
    port_settings = ("opensearch_port", "opensearch_transport_port")

    @property
    def endpoint(self) -> str:
        return self.settings.opensearch_endpoint

    @property
    def dist_dir(self) -> Path:
        suffix = "-security" if self.settings.stack_tls else ""
        return self.settings.cache_dir / f"opensearch-{self.version}{suffix}"

    def fetch(self) -> None:
        if (self.dist_dir / "bin" / "opensearch").exists():
            return
        if self.settings.stack_tls:
            self._fetch_with_security()
            return
        zips = self.settings.cache_dir / "downloads" / f"opensearch-{self.version}"
        fetch(
            [
                Artifact(
                    "org.opensearch.distribution.integ-test-zip",
                    "opensearch",
                    self.version,
                    type="zip",
                    transitive=False,
                )
            ],
            zips,
        )
        archive = next(zips.glob("opensearch-*.zip"))
        staging = self.dist_dir.with_name(self.dist_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        # The zip holds one top folder; zipfile drops the execute bits, so restore them.
        (top,) = list(staging.iterdir())
        for sub in ("bin",):
            for f in (top / sub).iterdir():
                f.chmod(0o755)
        top.rename(self.dist_dir)
        shutil.rmtree(staging, ignore_errors=True)

    def _fetch_with_security(self) -> None:
        """The plain distribution, copied, with the security plugin (HTTPS, users) unpacked
        into its plugins/ as ``opensearch-plugin install`` would."""
        plain = OpenSearch(self.settings.model_copy(update={"stack_tls": False}))
        plain.fetch()
        zips = self.settings.cache_dir / "downloads" / f"opensearch-security-{self.version}"
        fetch(
            [
                Artifact(
                    "org.opensearch.plugin",
                    "opensearch-security",
                    f"{self.version}.0",
                    type="zip",
                    transitive=False,
                )
            ],
            zips,
        )
        staging = self.dist_dir.with_name(self.dist_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(plain.dist_dir, staging, symlinks=True)
        with zipfile.ZipFile(next(zips.glob("opensearch-security-*.zip"))) as zf:
            zf.extractall(staging / "plugins" / "opensearch-security")
        for tool in (staging / "plugins" / "opensearch-security" / "tools").glob("*.sh"):
            tool.chmod(0o755)
        staging.rename(self.dist_dir)

    def prepare(self) -> Launch:
        s = self.settings
        user = unprivileged_user(s.opensearch_user)
        if not (self.conf_dir / "jvm.options").exists():
            self.conf_dir.mkdir(parents=True, exist_ok=True)
            for f in (self.dist_dir / "config").iterdir():
                if f.is_file():
                    shutil.copy(f, self.conf_dir / f.name)
            # The launcher runs from the (read-only) distribution folder: point the JVM's relative
            # log and dump paths at our data folder instead.
            jvm_options = self.conf_dir / "jvm.options"
            logs = self.data_dir / "logs"
            jvm_options.write_text(
                jvm_options.read_text()
                .replace("file=logs/", f"file={logs}/")
                .replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={logs}/")
                .replace("-XX:HeapDumpPath=data", f"-XX:HeapDumpPath={self.data_dir / 'data'}")
            )
        (self.conf_dir / "opensearch.yml").write_text(
            "\n".join(
                [
                    "cluster.name: strata",
                    "node.name: strata-1",
                    f"path.data: {self.data_dir / 'data'}",
                    f"path.logs: {self.data_dir / 'logs'}",
                    f"network.host: {s.bind_host}",
                    f"http.port: {s.opensearch_port}",
                    f"transport.port: {s.opensearch_transport_port}",
                    "discovery.type: single-node",
                    # Disk watermarks would turn indices read-only on a nearly full dev disk.
                    "cluster.routing.allocation.disk.threshold_enabled: false",
                    "action.auto_create_index: true",
                    *self._security_settings(user),
                    "",
                ]
            )
        )
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        chown_tree(self.data_dir, user)
        chown_tree(self.conf_dir, user)
        if user is not None:
            # The unprivileged user must reach the distribution through every parent folder.
            probe = self.dist_dir / "bin" / "opensearch"
            import subprocess

            ok = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(probe)]).returncode == 0
            if not ok:
                raise StackError(
                    f"opensearch: user {user!r} cannot read {probe}; put STRATA_HOME in a folder "
                    "every user can traverse"
                )
        heap = s.opensearch_heap
        env = {
            "OPENSEARCH_PATH_CONF": str(self.conf_dir),
            "OPENSEARCH_JAVA_HOME": str(java_home()),
            "JAVA_HOME": str(java_home()),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        }
        return Launch(cmd=[str(self.dist_dir / "bin" / "opensearch")], env=env, cwd=self.data_dir, user=user)

    def _check_tls(self) -> str | None:
        """The health check over HTTPS as the stack's user, verified against the local CA."""
        from connectors.opensearch.connection import open_client

        s = self.settings
        name, password = stack_opensearch_user(s)
        url = f"https://{s.bind_host}:{s.opensearch_port}"
        secure = s.model_copy(
            update={
                "opensearch_url": url,
                "opensearch_username": name,
                "opensearch_password": password,
                "opensearch_ca_file": str(s.home / "tls" / "ca.crt"),
            }
        )
        try:
            # No server-side wait: opensearch-py reads any ``timeout`` as its own request timeout.
            health = open_client(secure, timeout=5, max_retries=0).cluster.health()
        except Exception as exc:
            return f"no answer from {url}: {exc}"
        if health.get("status") not in ("green", "yellow"):
            return f"cluster status is {health.get('status')}"
        return None

    def _security_settings(self, user: str | None) -> list[str]:
        """With ``stack_tls``: the security plugin, serving HTTPS (and TLS between nodes, which
        the plugin requires) with the local CA's server certificate, and one internal user,
        ``opensearch_username``/``opensearch_password`` (default ``strata``/``strata-opensearch-secret``)
        with every permission. The plugin is fetched into a distribution of its own."""
        s = self.settings
        if not s.stack_tls:
            return []
        import crypt  # bcrypt, as the plugin's user database wants; glibc's libxcrypt has it

        from infra.stack.tls import local_certs

        certs = local_certs(s.home / "tls", (s.bind_host, "localhost"))
        for source, name in (
            (certs.server.cert, "node.crt"),
            (certs.server.key, "node.key"),
            (certs.ca, "ca.crt"),
        ):
            (self.conf_dir / name).write_bytes(source.read_bytes())
        (self.conf_dir / "node.key").chmod(0o600)
        security = self.conf_dir / "opensearch-security"
        shutil.rmtree(security, ignore_errors=True)
        shutil.copytree(self.dist_dir / "plugins" / "opensearch-security" / "config", security)
        name, password = stack_opensearch_user(s)
        digest = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024))
        (security / "internal_users.yml").write_text(
            '_meta:\n  type: "internalusers"\n  config_version: 2\n'
            f'{name}:\n  hash: "{digest}"\n  reserved: true\n  backend_roles:\n  - "admin"\n'
        )
        subject = f"CN={s.bind_host},O=Strata"  # the server certificate's, as local_certs makes it
        return [
            "plugins.security.ssl.transport.pemcert_filepath: node.crt",
            "plugins.security.ssl.transport.pemkey_filepath: node.key",
            "plugins.security.ssl.transport.pemtrustedcas_filepath: ca.crt",
            "plugins.security.ssl.transport.enforce_hostname_verification: false",
            "plugins.security.ssl.http.enabled: true",
            "plugins.security.ssl.http.pemcert_filepath: node.crt",
            "plugins.security.ssl.http.pemkey_filepath: node.key",
            "plugins.security.ssl.http.pemtrustedcas_filepath: ca.crt",
            # The security index is made from the files above on the first start.
            "plugins.security.allow_default_init_securityindex: true",
            f'plugins.security.nodes_dn: ["{subject}"]',
            f'plugins.security.authcz.admin_dn: ["{subject}"]',
            "plugins.security.audit.type: noop",
        ]

    def check(self) -> str | None:
        if self.settings.stack_tls:
            return self._check_tls()
        url = f"{self.endpoint}/_cluster/health?wait_for_status=yellow&timeout=1s"
        try:
            health = get_json(url)
        except Exception as exc:
            return f"no answer from {self.endpoint}: {exc}"
        if health.get("status") not in ("green", "yellow"):
            return f"cluster status is {health.get('status')}"
        return None


def stack_opensearch_user(settings: Settings) -> tuple[str, str]:
    """The user of the TLS stack's OpenSearch: the clients' own settings, else a local default."""
    return (
        settings.opensearch_username or "strata",
        settings.opensearch_password or "strata-opensearch-secret",
    )
