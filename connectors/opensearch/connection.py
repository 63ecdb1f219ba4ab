"""How every OpenSearch client Strata opens reaches a secured cluster: HTTPS and credentials.

``https://`` in ``opensearch_url`` turns TLS on; the certificate is checked against
``opensearch_ca_file`` (or ``tls_ca_file``, else the system's CAs). Credentials are basic auth
(``opensearch_username``/``opensearch_password``) or a bearer token (``opensearch_token``).

>>> from infra.settings import Settings
>>> connection_options(Settings(opensearch_username="ingest", opensearch_password="pw"))
{'http_auth': ('ingest', 'pw')}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.settings import Settings


def check(settings: Settings) -> None:
    """Raise ``ValueError`` for credentials that cannot work together."""
    if settings.opensearch_token and settings.opensearch_username:
        raise ValueError("set STRATA_OPENSEARCH_TOKEN or STRATA_OPENSEARCH_USERNAME, not both")
    if bool(settings.opensearch_username) != bool(settings.opensearch_password):
        raise ValueError("STRATA_OPENSEARCH_USERNAME and STRATA_OPENSEARCH_PASSWORD go together")


def connection_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``opensearchpy.OpenSearch`` for ``settings``' cluster."""
    check(settings)
    options: dict[str, Any] = {}
    if settings.opensearch_username:
        options["http_auth"] = (settings.opensearch_username, settings.opensearch_password)
    if settings.opensearch_token:
        options["headers"] = {"Authorization": f"Bearer {settings.opensearch_token}"}
    if any(url.strip().startswith("https://") for url in settings.opensearch_endpoint.split(",")):
        options["use_ssl"] = True
        options["verify_certs"] = True
        if ca := settings.ca_file(settings.opensearch_ca_file):
            options["ca_certs"] = ca
    return options


def java_sink_options(settings: Settings) -> dict[str, str]:
    """The same for the ingest job's Java index sink (``OpensearchIndexSink``): ``username``,
    ``password``, ``token`` and ``ca_file``, empty when unset."""
    check(settings)
    return {
        "username": settings.opensearch_username,
        "password": settings.opensearch_password,
        "token": settings.opensearch_token,
        "ca_file": settings.ca_file(settings.opensearch_ca_file),
    }


def open_client(settings: Settings, **kwargs: Any) -> Any:
    """An ``OpenSearch`` client of ``settings``' cluster; ``kwargs`` add to or override its options."""
    from opensearchpy import OpenSearch

    return OpenSearch(settings.opensearch_endpoint.split(","), **{**connection_options(settings), **kwargs})
