"""What the routes share: the process's state (settings, PostgreSQL pool, Kafka producer, rate
limiter) and authentication as ``Annotated`` dependencies.

Keys are accepted as ``Authorization: Bearer <key>``, ``X-API-Key: <key>``, and, for Elasticsearch
clients that only know those, ``Authorization: Basic`` (the password is the key) and
``Authorization: ApiKey base64(id:key)``; on a WebSocket handshake also as the query parameter
``api_key`` (a browser cannot set headers on a WebSocket).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Query, Request, status
from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from api.collector.ratelimit import RateLimiter
from api.search.engine import SearchEngine
from api.tls import client_cert_fingerprint
from connectors.kafka.producer import Producer
from connectors.postgres import audit, certs, tenants
from core.tiers import TierPolicy
from infra.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What every route of one API process shares, opened once at start (see api.main)."""

    settings: Settings
    pool: AsyncConnectionPool
    producer: Producer
    limiter: RateLimiter
    auth_cache: dict[str, tuple[tenants.KeyInfo | None, float]]
    background: set[asyncio.Task[None]]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant every record of this request is stamped with."""

    tenant_id: str
    key_id: str | None  # None for the admin token
    scopes: frozenset[str]
    rate_per_s: float | None = None
    is_admin_token: bool = False
    client_addr: str | None = None

    @property
    def actor(self) -> audit.Actor:
        """Who this is in the audit log: the key's id or the admin token, never a secret."""
        if self.is_admin_token or self.key_id is None:
            return audit.Actor(audit.ADMIN_TOKEN, self.client_addr)
        return audit.Actor.key(self.key_id, self.client_addr)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.strata
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def credential(conn: HTTPConnection) -> str | None:
    """The key the client sent, in whichever header its kind of client uses, or as ``api_key`` in
    the query string of a WebSocket handshake. Plain HTTP requests never take a key from the URL:
    URLs end up in access logs and browser history."""
    key = conn.headers.get("x-api-key")
    if key:
        return key.strip()
    header = conn.headers.get("authorization")
    if not header:
        if conn.scope.get("type") == "websocket":
            return conn.query_params.get("api_key", "").strip() or None
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value
    if scheme in ("basic", "apikey"):
        if tenants.split_key(value) is not None:
            return value
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return decoded
        return password or user
    return None


def client_addr(request: Any) -> str | None:
    """The peer's address as the server sees it (uvicorn puts a trusted proxy's X-Forwarded-For
    there when started with ``--forwarded-allow-ips``; a client's own header is never believed)."""
    client = getattr(request, "client", None)
    return client.host if client is not None else None


async def _audit_admin_token(state: AppState, request: Any) -> None:
    """Every request made with the admin token leaves an entry in the audit log of the tenant it
    names, so a tenant's admins see when the operator looked at or changed their data."""
    url = getattr(request, "url", None)
    params = getattr(request, "query_params", None)
    tenant = params.get("tenant") if params is not None else None
    try:
        async with state.pool.connection(timeout=5) as conn, conn.transaction():
            await audit.record(
                conn,
                audit.Actor(audit.ADMIN_TOKEN, client_addr(request)),
                tenant or None,
                "admin_token.request",
                target=url.path if url is not None else "",
                details={"method": getattr(request, "method", "WEBSOCKET")},
            )
    except (psycopg.Error, TimeoutError) as exc:
        # An admin action that cannot be audited is not done.
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the audit log (PostgreSQL) is unavailable; retry shortly",
            headers={"Retry-After": "5"},
        ) from exc


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="strata"'}
    )


async def _verify(state: AppState, key: str, cert: str | None = None) -> tenants.KeyInfo | None:
    """The rights of an API key, or of the client certificate with fingerprint ``cert``."""
    now = time.monotonic()
    cache_key = key if cert is None else f"cert:{cert}"
    cached = state.auth_cache.get(cache_key)
    if cached is not None and cached[1] > now:
        return cached[0]
    try:
        async with state.pool.connection(timeout=5) as conn:
            if cert is not None:
                info = await certs.verify_cert(conn, cert)
            else:
                info = await tenants.verify_key(conn, key)
                if info is not None:
                    await tenants.touch_key(conn, info.key_id, datetime.now(UTC))
    except (psycopg.Error, TimeoutError) as exc:
        log.warning("cannot verify an API key: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the key store (PostgreSQL) is unavailable; retry shortly",
            headers={"Retry-After": "5"},
        ) from exc
    if len(state.auth_cache) > 10_000:
        state.auth_cache.clear()
    state.auth_cache[cache_key] = (info, now + state.settings.auth_cache_s)
    return info


def require(scope: str, *, admin_token_too: bool = False) -> Any:
    """A dependency admitting a tenant key with ``scope``; the admin token too where ``scope`` is
    ``admin`` or ``admin_token_too`` is set. A WebSocket route awaits it with its WebSocket."""

    async def dependency(request: HTTPConnection, state: StateDep) -> Principal:
        key = credential(request)
        # A key sent with the request wins; without one, a TLS client certificate registered to a
        # tenant stands for a key (api.tls).
        cert = None if key else client_cert_fingerprint(request.scope)
        what = "the client certificate" if cert else "the API key"
        if not key and not cert:
            raise _unauthorized(
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
                + (
                    " (or a registered client certificate)"
                    if state.settings.server_tls_client_ca_file
                    else ""
                )
            )
        admin_token = state.settings.admin_token
        if key and admin_token and hmac.compare_digest(key.encode(), admin_token.encode()):
            if scope == "admin" or admin_token_too:
                await _audit_admin_token(state, request)
                return Principal(
                    tenant_id="",
                    key_id=None,
                    scopes=frozenset({"admin"}),
                    is_admin_token=True,
                    client_addr=client_addr(request),
                )
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail="the admin token manages tenants; send logs with a tenant's key",
            )
        info = await _verify(state, key or "", cert)
        if info is None:
            if cert:
                raise _unauthorized(
                    f"the client certificate (SHA-256 {cert}) is not registered to a tenant; "
                    "register it with `strata tenant cert-add`"
                )
            raise _unauthorized("the API key is not valid")
        if info.revoked:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"{what} has been revoked")
        if info.expired:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the API key has expired (it was rotated)")
        if info.tenant_disabled:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"tenant {info.tenant_id!r} is disabled")
        if scope not in info.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"{what} lacks the {scope!r} scope (it has: {', '.join(sorted(info.scopes))})",
            )
        if isinstance(request, Request):  # for the request metrics (api.metrics.RequestMetrics)
            request.state.tenant = info.tenant_id
        return Principal(
            tenant_id=info.tenant_id,
            key_id=info.key_id,
            scopes=info.scopes,
            rate_per_s=info.rate_per_s,
            client_addr=client_addr(request),
        )

    return dependency


IngestKey = Annotated[Principal, Depends(require("ingest"))]
RegisterKey = Annotated[Principal, Depends(require("register", admin_token_too=True))]
AdminKey = Annotated[Principal, Depends(require("admin"))]
TenantQuery = Annotated[str | None, Query(description="the tenant, when calling with the admin token")]


def acting_tenant(principal: Principal, tenant: str | None, what: str = "its own tenant") -> str:
    """The tenant an admin call acts on: its own for a tenant key; the named one for the admin token."""
    if principal.is_admin_token:
        if not tenant:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="name the tenant with ?tenant=")
        return tenant
    if tenant and tenant != principal.tenant_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"a tenant key manages only {what}")
    return principal.tenant_id


def check_rate(state: AppState, principal: Principal, count: int | None, route: str) -> None:
    """429 with ``Retry-After`` when the tenant is over its rate. ``count=None`` only asks whether
    the tenant may send at all (before the body is read); a count spends that many records."""
    rate = state.settings.ingest_rate_per_s if principal.rate_per_s is None else principal.rate_per_s
    if count is None:
        wait = state.limiter.wait_s(principal.tenant_id, rate)
    else:
        wait = state.limiter.take(principal.tenant_id, rate, count)
    if wait > 0:
        from api import metrics

        metrics.REQUESTS_REFUSED.labels(route, "429").inc()
        headers = {"Retry-After": str(int(wait))}
        if count is None:
            # Refused before its body is read: closing the connection spares the server reading
            # (and the HTTP parser parsing) the megabytes a flooding client sends after its headers.
            headers["Connection"] = "close"
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"tenant {principal.tenant_id!r} is over its rate of {rate:g} records/s; retry later",
            headers=headers,
        )


def get_engine(request: Request, state: StateDep) -> SearchEngine:
    engine: SearchEngine | None = getattr(request.app.state, "search", None)
    if engine is None:
        engine = SearchEngine(state.settings, retention=RetentionPolicies(state))
        request.app.state.search = engine
    return engine


EngineDep = Annotated[SearchEngine, Depends(get_engine)]


def close_search(app: Any) -> None:
    """Closes the tier clients and the live-tail consumer this app opened (blocking)."""
    engine: SearchEngine | None = getattr(app.state, "search", None)
    if engine is not None:
        engine.backends.close()
    hub = getattr(app.state, "tail", None)
    if hub is not None:
        hub.stop()


class RetentionPolicies:
    """Each tenant's tier policy from its retention in PostgreSQL, cached for a few seconds (a
    change shows in searches within ``CACHE_S``)."""

    CACHE_S = 5.0

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._cache: dict[str, tuple[TierPolicy, float]] = {}

    async def __call__(self, tenant: str) -> TierPolicy:
        from connectors.retention import tenant_retention

        hit = self._cache.get(tenant)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.CACHE_S:
            return hit[0]
        async with self.state.pool.connection() as conn:
            policy = (await tenant_retention(conn, self.state.settings, tenant)).policy()
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[tenant] = (policy, now)
        return policy
