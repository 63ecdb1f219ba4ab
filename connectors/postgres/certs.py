"""Client certificates registered to a tenant: the TLS counterpart of API keys.

A certificate is known by the SHA-256 fingerprint of its DER bytes. Registering one gives its
holder the scopes it was registered with, for the tenant it was registered to, on the API and the
syslog receiver, for as long as TLS verifies it (signed by ``server_tls_client_ca_file``, not
expired) and it is not revoked here.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row

from connectors.postgres.tenants import KeyInfo, TenantError, check_scopes

_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


def fingerprint(der: bytes) -> str:
    """The certificate's SHA-256 fingerprint, lower-case hex without separators."""
    return hashlib.sha256(der).hexdigest()


def fingerprint_of_pem(pem: str) -> str:
    """The fingerprint of the first certificate in a PEM text (``openssl x509 -fingerprint
    -sha256`` prints the same, upper-case with colons)."""
    start = pem.find("-----BEGIN CERTIFICATE-----")
    end = pem.find("-----END CERTIFICATE-----", start)
    if start < 0 or end < 0:
        raise TenantError("not a PEM certificate: no BEGIN/END CERTIFICATE block")
    try:
        der = ssl.PEM_cert_to_DER_cert(pem[start : end + len("-----END CERTIFICATE-----")])
    except ValueError as exc:
        raise TenantError(f"not a PEM certificate: {exc}") from exc
    return fingerprint(der)


def normalize_fingerprint(text: str) -> str:
    """``AB:CD:…`` or ``abcd…`` as stored: lower-case hex without colons."""
    value = text.strip().lower().replace(":", "")
    if not _FINGERPRINT_RE.match(value):
        raise TenantError("a SHA-256 fingerprint is 64 hex digits (colons allowed)")
    return value


def cert_key_id(fp: str) -> str:
    """How a certificate is named where a key id would be (logs, the principal)."""
    return f"cert:{fp[:16]}"


async def add_cert(
    conn: AsyncConnection[Any],
    tenant_id: str,
    fp: str,
    *,
    name: str = "",
    subject: str = "",
    scopes: list[str] | tuple[str, ...] = ("ingest",),
) -> None:
    checked = check_scopes(scopes)
    fp = normalize_fingerprint(fp)
    try:
        cur = await conn.execute(
            "INSERT INTO client_certs (fingerprint, tenant_id, name, subject, scopes)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (fp, tenant_id, name, subject, checked),
        )
    except Exception as exc:
        if "foreign key" in str(exc).lower():
            raise TenantError(f"no tenant {tenant_id!r}") from exc
        raise
    if cur.rowcount == 0:
        raise TenantError(f"certificate {fp} is already registered")


async def list_certs(conn: AsyncConnection[Any], tenant_id: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT fingerprint, name, subject, scopes, created_at, revoked_at, last_used_at"
            " FROM client_certs WHERE tenant_id = %s ORDER BY created_at",
            (tenant_id,),
        )
        return await cur.fetchall()


async def revoke_cert(conn: AsyncConnection[Any], tenant_id: str, fp: str) -> None:
    cur = await conn.execute(
        "UPDATE client_certs SET revoked_at = coalesce(revoked_at, now())"
        " WHERE fingerprint = %s AND tenant_id = %s",
        (normalize_fingerprint(fp), tenant_id),
    )
    if cur.rowcount == 0:
        raise TenantError(f"tenant {tenant_id!r} has no certificate {fp}")


_VERIFY_SQL = (
    "SELECT c.tenant_id, c.scopes, c.revoked_at IS NOT NULL, t.disabled_at IS NOT NULL, t.rate_per_s"
    " FROM client_certs c JOIN tenants t ON t.id = c.tenant_id WHERE c.fingerprint = %s"
)


def _info(fp: str, row: Any) -> KeyInfo:
    return KeyInfo(
        key_id=cert_key_id(fp),
        tenant_id=row[0],
        scopes=frozenset(row[1]),
        revoked=row[2],
        expired=False,  # TLS itself refuses an expired certificate
        tenant_disabled=row[3],
        rate_per_s=row[4],
        agent_id=None,
    )


async def verify_cert(conn: AsyncConnection[Any], fp: str) -> KeyInfo | None:
    """The certificate's tenant and rights, or None when it is not registered."""
    cur = await conn.execute(_VERIFY_SQL, (fp,))
    row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute("UPDATE client_certs SET last_used_at = now() WHERE fingerprint = %s", (fp,))
    return _info(fp, row)


def verify_cert_sync(conn: Connection[Any], fp: str) -> KeyInfo | None:
    """:func:`verify_cert` for a blocking connection (the syslog receiver asks once per connection)."""
    row = conn.execute(_VERIFY_SQL, (fp,)).fetchone()
    return None if row is None else _info(fp, row)
