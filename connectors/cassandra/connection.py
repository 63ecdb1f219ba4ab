"""How every Cassandra session Strata opens reaches a secured cluster: password authentication
and client-to-node TLS, from settings (``cassandra_username``/``cassandra_password``,
``cassandra_ssl`` with ``cassandra_ca_file`` or ``tls_ca_file``, else the system's CAs).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.settings import Settings


def check(settings: Settings) -> None:
    """Raise ``ValueError`` for credentials given by half."""
    if bool(settings.cassandra_username) != bool(settings.cassandra_password):
        raise ValueError("STRATA_CASSANDRA_USERNAME and STRATA_CASSANDRA_PASSWORD go together")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The context that verifies the nodes' certificates, or None when ``cassandra_ssl`` is off.

    Host names are not checked: nodes are found by the addresses the cluster gossips, which a
    node's certificate rarely names; the CA is what vouches for them.
    """
    if not settings.cassandra_ssl:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file(settings.cassandra_ca_file) or None)
    context.check_hostname = False
    return context


def cluster_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``cassandra.cluster.Cluster`` for ``settings``' cluster."""
    check(settings)
    options: dict[str, Any] = {}
    if settings.cassandra_username:
        from cassandra.auth import PlainTextAuthProvider

        options["auth_provider"] = PlainTextAuthProvider(
            username=settings.cassandra_username, password=settings.cassandra_password
        )
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    return options
