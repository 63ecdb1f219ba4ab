"""Waiting for an OpenSearch that may have just started.

Until it has recovered its cluster state OpenSearch refuses connections, then answers 503
(``cluster_block_exception``, no master yet) or 429; a client at the start of a job waits for a
yellow cluster rather than fail its first request.
"""

from __future__ import annotations

from typing import Any

from opensearchpy.exceptions import ConnectionError, TransportError

from connectors.retry import NotReady, retry_until

RETRIABLE_STATUSES = frozenset({429, 502, 503, 504})


def opensearch_retriable(exc: BaseException) -> bool:
    """True for a refused or timed-out connection and for the answers of a recovering cluster."""
    if isinstance(exc, ConnectionError):  # also ConnectionTimeout
        return True
    return isinstance(exc, TransportError) and exc.status_code in RETRIABLE_STATUSES


def wait_for_cluster(client: Any, wait_s: float) -> None:
    """Return once the cluster is at least yellow; :class:`TimeoutError` after ``wait_s``."""

    def health() -> None:
        answer = client.cluster.health(wait_for_status="yellow", params={"timeout": "5s"}, request_timeout=10)
        if answer.get("timed_out") or answer.get("status") not in ("yellow", "green"):
            raise NotReady(f"cluster status {answer.get('status')}")

    retry_until(health, what="OpenSearch cluster", retriable=opensearch_retriable, wait_s=wait_s)
