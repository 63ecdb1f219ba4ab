"""PostgreSQL 15 from Debian's packages, as a private cluster run by an unprivileged user."""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path
from typing import Any

from infra.settings import REPO_ROOT
from infra.stack.process import StackError, chown_tree, unprivileged_user
from infra.stack.services.base import Launch, Service


def _find_bin_dir(configured: Path | None) -> Path | None:
    if configured is not None:
        return configured
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for d in reversed(dirs):
        if (Path(d) / "postgres").exists() and (Path(d) / "initdb").exists():
            return Path(d)
    return None


def install_server() -> None:
    """Install the server binaries through the project's one system-packages script."""
    script = REPO_ROOT / "infra" / "system-deps.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(f"postgres: installing the server failed:\n{proc.stderr[-2000:]}")


class Postgres(Service):
    name = "postgres"
    port_settings = ("postgres_port",)

    @property
    def version(self) -> str:
        bin_dir = _find_bin_dir(self.settings.postgres_bin_dir)
        return bin_dir.parent.name if bin_dir else "15"

    @property
    def endpoint(self) -> str:
        s = self.settings
        host = s.postgres_host or s.bind_host
        return f"postgresql://{s.postgres_user}@{host}:{s.postgres_port}/{s.postgres_db}"

    def fetch(self) -> None:
        if _find_bin_dir(self.settings.postgres_bin_dir) is None:
            install_server()

    def _bin(self, name: str) -> str:
        bin_dir = _find_bin_dir(self.settings.postgres_bin_dir)
        if bin_dir is None:
            raise StackError("postgres: no server binaries found; set STRATA_POSTGRES_BIN_DIR")
        return str(bin_dir / name)

    def prepare(self) -> Launch:
        s = self.settings
        user = unprivileged_user(s.opensearch_user)
        pgdata = self.data_dir / "pgdata"
        sockets = self.data_dir / "sockets"
        sockets.mkdir(parents=True, exist_ok=True)
        if not (pgdata / "PG_VERSION").exists():
            shutil.rmtree(pgdata, ignore_errors=True)
            pwfile = self.data_dir / ".pwfile"
            pwfile.write_text(s.postgres_password + "\n")
            chown_tree(self.data_dir, user)
            cmd = [
                self._bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                s.postgres_user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
            if user is not None:
                cmd = ["runuser", "-u", user, "--", *cmd]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            pwfile.unlink(missing_ok=True)
            if proc.returncode != 0:
                raise StackError(f"postgres: initdb failed:\n{proc.stdout}{proc.stderr}")
        chown_tree(self.data_dir, user)
        cmd = [
            self._bin("postgres"),
            "-D",
            str(pgdata),
            "-p",
            str(s.postgres_port),
            "-c",
            f"listen_addresses={s.bind_host}",
            "-c",
            f"unix_socket_directories={sockets}",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on",
            *self._tls_options(user),
        ]
        return Launch(cmd=cmd, cwd=self.data_dir, user=user)

    def _tls_options(self, user: str | None) -> list[str]:
        """With ``stack_tls``: TLS with the local CA's server certificate (clients choose with
        ``STRATA_POSTGRES_SSLMODE``; plain connections stay allowed, as on most servers)."""
        if not self.settings.stack_tls:
            return []
        from infra.stack.tls import local_certs

        certs = local_certs(self.settings.home / "tls", (self.settings.bind_host, "localhost"))
        # PostgreSQL reads its key only when its own user owns it and no one else can read it.
        folder = self.data_dir / "tls"
        folder.mkdir(exist_ok=True)
        for source, name in ((certs.server.cert, "server.crt"), (certs.server.key, "server.key")):
            target = folder / name
            target.write_bytes(source.read_bytes())
            target.chmod(0o600)
        chown_tree(folder, user)
        return [
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={folder / 'server.crt'}",
            "-c",
            f"ssl_key_file={folder / 'server.key'}",
        ]

    def _connect(self, dbname: str) -> Any:
        import psycopg

        s = self.settings
        return psycopg.connect(
            host=s.postgres_host or s.bind_host,
            port=s.postgres_port,
            user=s.postgres_user,
            password=s.postgres_password,
            dbname=dbname,
            connect_timeout=3,
            autocommit=True,
        )

    def check(self) -> str | None:
        try:
            with self._connect("postgres") as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            return f"no answer from {self.endpoint}: {str(exc).strip().splitlines()[0]}"
        return None

    def provision(self) -> None:
        db = self.settings.postgres_db
        with self._connect("postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
            if not exists:
                from psycopg import sql

                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
