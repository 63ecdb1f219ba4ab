"""The API's and the syslog receiver's own TLS: server certificates and client certificates.

uvicorn terminates TLS but does not tell the application which certificate a client presented.
:class:`TLSHttpProtocol` adds it to each request's scope as the ASGI TLS extension does
(``scope["extensions"]["tls"]["client_cert_chain"]``, PEM), so authentication can map it to a
tenant (:func:`client_cert_fingerprint`, :mod:`connectors.postgres.certs`).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from connectors.postgres.certs import fingerprint

if TYPE_CHECKING:
    from infra.settings import Settings


def check(settings: Settings) -> None:
    """Raise ``ValueError`` naming what is missing for the server TLS settings given."""
    if bool(settings.server_tls_cert_file) != bool(settings.server_tls_key_file):
        raise ValueError("STRATA_SERVER_TLS_CERT_FILE and STRATA_SERVER_TLS_KEY_FILE go together")
    if settings.server_tls_client_ca_file and not settings.server_tls_cert_file:
        raise ValueError("client certificates (STRATA_SERVER_TLS_CLIENT_CA_FILE) need the server's TLS on")


def _cert_reqs(settings: Settings) -> ssl.VerifyMode:
    if not settings.server_tls_client_ca_file:
        return ssl.CERT_NONE
    return ssl.CERT_REQUIRED if settings.server_tls_client_cert == "required" else ssl.CERT_OPTIONAL


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run``/``uvicorn.Config`` keyword arguments; empty when TLS is off."""
    check(settings)
    if not settings.server_tls:
        return {}
    return {
        "ssl_certfile": settings.server_tls_cert_file,
        "ssl_keyfile": settings.server_tls_key_file,
        "ssl_ca_certs": settings.server_tls_client_ca_file or None,
        "ssl_cert_reqs": _cert_reqs(settings),
        "http": "api.tls:TLSHttpProtocol",
    }


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The syslog receiver's TLS context, or None when TLS is off."""
    check(settings)
    if not settings.server_tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.server_tls_cert_file, settings.server_tls_key_file)
    if settings.server_tls_client_ca_file:
        context.load_verify_locations(settings.server_tls_client_ca_file)
        context.verify_mode = _cert_reqs(settings)
    return context


def client_context(settings: Settings) -> ssl.SSLContext:
    """What Strata's own clients of the API (``strata send``, ``strata search``) verify its
    certificate with, and present as theirs when a client certificate is configured."""
    if bool(settings.api_client_cert_file) != bool(settings.api_client_key_file):
        raise ValueError("STRATA_API_CLIENT_CERT_FILE and STRATA_API_CLIENT_KEY_FILE go together")
    context = ssl.create_default_context(cafile=settings.ca_file(settings.api_ca_file) or None)
    if settings.api_client_cert_file:
        context.load_cert_chain(settings.api_client_cert_file, settings.api_client_key_file)
    return context


def peer_fingerprint(ssl_object: Any) -> str | None:
    """The fingerprint of the certificate a client presented and TLS verified, else None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return fingerprint(der) if der else None


def tls_extension(ssl_object: Any) -> dict[str, Any] | None:
    """The ASGI TLS extension's fields for a connection (None when it is not TLS)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
        # Not in the extension: what Strata reads, so each request does not hash the PEM again.
        "strata_fingerprint": fingerprint(der) if der else None,
        "strata_cipher": cipher[0] if cipher else None,
    }


def client_cert_fingerprint(scope: Mapping[str, Any]) -> str | None:
    """The verified client certificate's fingerprint of a request, else None."""
    tls = scope.get("extensions", {}).get("tls")
    return tls.get("strata_fingerprint") if tls else None


class TLSHttpProtocol(H11Protocol):
    """uvicorn's h11 protocol, adding the connection's TLS details to the scope of every request
    and of a WebSocket upgraded from it."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        extension = tls_extension(transport.get_extra_info("ssl_object"))
        if extension is None:
            return
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = extension
            await inner(scope, receive, send)

        self.app = app
        # uvicorn hands an upgraded connection to a WebSocket protocol built from the config's
        # app, not this protocol's: without this a client certificate never reaches the tail.
        ws_protocol = self.ws_protocol_class
        if ws_protocol is not None:

            def upgraded(**kwargs: Any) -> Any:
                protocol: Any = ws_protocol(**kwargs)
                protocol.app = app
                return protocol

            self.ws_protocol_class = upgraded  # type: ignore[assignment]
