"""Certificates for running the local stack with TLS: a local CA, a server certificate for this
host, and client certificates, all made with the ``openssl`` command.

The files are PEM (keys unencrypted PKCS#8), which every service here reads as it is: Python's
ssl, librdkafka, Kafka's own SSL engine (``ssl.keystore.type=PEM``) and OpenSearch. They are made
once per folder and kept; a missing one is made again from the same CA.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Short-lived enough to be obviously local, long enough to outlive a development machine's stack.
DAYS = 825


class CertError(RuntimeError):
    """openssl is missing or refused to make a certificate."""


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class LocalCerts:
    ca: Path
    server: Pair

    def client(self, name: str) -> Pair:
        """The client certificate made by :func:`client_cert` for ``name``."""
        folder = self.ca.parent
        return Pair(folder / f"client-{name}.crt", folder / f"client-{name}.key")


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise CertError("the openssl command is needed to make the local stack's certificates")
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _new_key(path: Path) -> None:
    # EC P-256: as strong as RSA-3072 here, and its handshakes cost a fraction of the CPU.
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path.name,
        cwd=path.parent,
    )
    path.chmod(0o600)


def _sign(folder: Path, name: str, subject: str, extensions: str) -> Pair:
    pair = Pair(folder / f"{name}.crt", folder / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    _new_key(pair.key)
    (folder / f"{name}.ext").write_text(extensions)
    _openssl("req", "-new", "-key", pair.key.name, "-subj", subject, "-out", f"{name}.csr", cwd=folder)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", str(DAYS), "-sha256", "-extfile", f"{name}.ext", "-out", pair.cert.name,
        cwd=folder,
    )  # fmt: skip
    return pair


def local_certs(folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> LocalCerts:
    """The CA and the server certificate (for ``hosts``) in ``folder``, made when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    if not (ca.exists() and ca_key.exists()):
        _new_key(ca_key)
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/O=Strata/CN=Strata local CA",
            "-days", str(DAYS), "-sha256", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=folder,
        )  # fmt: skip
    names = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    server = _sign(
        folder,
        "server",
        "/O=Strata/CN=" + hosts[0],
        f"basicConstraints=CA:FALSE\nsubjectAltName={names}\n"
        # clientAuth too: the services talk to each other with it (Kafka's inter-broker listener).
        "extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n",
    )
    return LocalCerts(ca, server)


def client_cert(certs: LocalCerts, name: str) -> Pair:
    """A client certificate with subject ``CN=<name>``, made when missing."""
    return _sign(
        certs.ca.parent,
        f"client-{name}",
        f"/O=Strata/CN={name}",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
    )


def pkcs12(certs: LocalCerts, path: Path, password: str) -> Path:
    """The server certificate, its key and the CA as a PKCS#12 keystore (for Java servers that
    read no PEM), made when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _openssl(
            "pkcs12", "-export", "-in", str(certs.server.cert), "-inkey", str(certs.server.key),
            "-certfile", str(certs.ca), "-name", "server", "-passout", f"pass:{password}", "-out", str(path),
            cwd=path.parent,
        )  # fmt: skip
        path.chmod(0o600)
    return path
