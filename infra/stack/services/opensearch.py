"""Single-node OpenSearch 2.19 from the integ-test zip, run as an unprivileged user."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

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
        return self.settings.cache_dir / f"opensearch-{self.version}"

    def fetch(self) -> None:
        if (self.dist_dir / "bin" / "opensearch").exists():
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

    def check(self) -> str | None:
        url = f"{self.endpoint}/_cluster/health?wait_for_status=yellow&timeout=1s"
        try:
            health = get_json(url)
        except Exception as exc:
            return f"no answer from {self.endpoint}: {exc}"
        if health.get("status") not in ("green", "yellow"):
            return f"cluster status is {health.get('status')}"
        return None
