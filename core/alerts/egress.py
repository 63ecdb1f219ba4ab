"""Where alert channels may send: public addresses only, unless an operator allows more.

A tenant's admin chooses a webhook or Slack URL, and the notifier POSTs to it from inside the
deployment, with headers the admin chose. Left open, that reaches the cloud metadata service
(169.254.169.254), the notifier's own host (127.0.0.1) and every private network. So:

- the address is checked **after** DNS resolution, in the connection itself (:class:`GuardedBackend`),
  and the connection goes to the address that was checked, so a name that resolves to a public
  address when checked and a private one when connecting (DNS rebinding) gains nothing;
- refused is every address that is not globally routable (loopback, link-local, private, shared,
  reserved, documentation ranges, multicast, IPv4 mapped into IPv6 included);
- ``STRATA_ALERTS_ALLOWED_HOSTS`` lists exceptions: host names (exact), addresses or networks;
- a reply is never read: only its status counts, so nothing a receiver answers reaches a tenant;
- each send has a total time budget, enforced on every read and write of the connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(httpx.TransportError):
    """The channel's address is not one the notifier may reach."""


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations beyond the public internet are allowed."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> EgressPolicy:
        """From ``"hooks.internal, 10.1.0.0/16, 127.0.0.1"`` (the setting's form).

        >>> EgressPolicy.parse("hooks.internal, 10.1.0.0/16").allows_address("10.1.2.3")
        True
        """
        items = text.split(",") if isinstance(text, str) else list(text)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in items:
            item = raw.strip().lower()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self.networks)

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``host`` (resolved to ``address``) may not be reached, or None when it may."""
        ip = _ip(address)
        if ip is None:
            return f"{host} resolved to {address!r}, which is not an address"
        if self.allows_host(host) or self.allows_address(address):
            return None
        kind = _non_public_kind(ip)
        if kind is None:
            return None
        shown = host if host == address else f"{host} ({address})"
        return (
            f"refused to connect to {shown}: a {kind} address; alert channels reach public addresses "
            "only unless the operator lists the host in STRATA_ALERTS_ALLOWED_HOSTS"
        )


def _ip(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def _non_public_kind(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def literal_refusal(url: str, policy: EgressPolicy) -> str | None:
    """Why a channel URL is refused without asking DNS (a literal address or ``localhost``), or
    None. Saving a rule uses this for an early, clear error; the connection checks again after
    resolution, which is what actually protects."""
    host = urlsplit(url).hostname or ""
    if not host:
        return f"the URL {url!r} names no host"
    if _ip(host) is not None:
        return policy.refusal(host, host)
    if (host == "localhost" or host.endswith(".localhost")) and not policy.allows_host(host):
        return policy.refusal(host, "127.0.0.1")
    return None


# -- the connection ------------------------------------------------------------------------------

_deadline = threading.local()


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Every read, write and connect of this thread's connections within ``seconds`` in total,
    so a receiver that answers one byte at a time cannot hold a sender for longer."""
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def _remaining(timeout: float | None) -> float | None:
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the receiver took longer than the send's time budget")
    return left if timeout is None else min(timeout, left)


class _BudgetStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _BudgetStream(self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself, refuses it under ``policy``, and connects to the very address it
    checked (TLS still verifies the certificate against the host name)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        # Every address the name has must pass: the client would otherwise pick among them.
        for address in addresses:
            reason = self.policy.refusal(host, address)
            if reason is not None:
                raise EgressRefused(reason)
        last: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(
                    address, port, _remaining(timeout), local_address, socket_options
                )
                return _BudgetStream(stream)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host} has no address")


def guarded_client(policy: EgressPolicy, timeout_s: float, **kwargs: Any) -> httpx.Client:
    """An httpx client whose every connection goes through :class:`GuardedBackend`; it never
    follows redirects (a redirect could point anywhere) and keeps no connection open."""
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    # httpx builds its httpcore pool itself and takes no backend argument; the pool reads the
    # backend from this attribute when it opens each connection.
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):  # pragma: no cover - an httpcore that changed
        raise RuntimeError("this httpcore version does not allow a custom network backend")
    pool._network_backend = GuardedBackend(policy)
    return httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=False, **kwargs)


__all__ = [
    "EgressPolicy",
    "EgressRefused",
    "GuardedBackend",
    "guarded_client",
    "literal_refusal",
    "time_budget",
]
