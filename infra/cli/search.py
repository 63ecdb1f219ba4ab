"""``strata search``: search logs across the tiers, or follow them live.

strata search 'payment AND timeout' --service payment-service --level ERROR --since 1h
strata search --follow --level '>=WARN'          # live tail
strata search 'trace_id:4bf92f35...' --json       # one JSON record per line
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

import httpx
import orjson

from infra.settings import get_settings

_COLORS = {
    "TRACE": "\033[90m",
    "DEBUG": "\033[36m",
    "INFO": "\033[32m",
    "WARN": "\033[33m",
    "ERROR": "\033[31m",
    "FATAL": "\033[1;41;97m",
}
_DIM, _BOLD, _RESET = "\033[2m", "\033[1m", "\033[0m"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "query", nargs="?", default="", help="the query (docs/search.md), e.g. 'payment AND timeout'"
    )
    parser.add_argument("--service", action="append", help="only this service (repeat for several)")
    parser.add_argument(
        "--level", action="append", help="ERROR, WARN,ERROR or a minimum: '>=WARN' (or WARN+)"
    )
    parser.add_argument("--host", action="append")
    parser.add_argument("--trace-id", action="append")
    parser.add_argument("--since", help="how far back: 15m, 1h, 7d (default 1h unless --from is given)")
    parser.add_argument("--from", dest="from_", help="start: ISO 8601 or now-2h")
    parser.add_argument("--to", help="end: ISO 8601 or now-1h (default now)")
    parser.add_argument("--limit", type=int, default=100, help="how many lines (default 100; 0: all pages)")
    parser.add_argument("--asc", action="store_true", help="oldest first")
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new matching logs")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    parser.add_argument("--url", help="the API (default: STRATA_API_URL or the local API)")
    parser.add_argument("--api-key", help="a key with the search scope (default: env STRATA_API_KEY)")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"q": args.query}
    for name in ("service", "level", "host"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    if args.trace_id:
        params["trace_id"] = args.trace_id
    return params


def format_line(log: dict[str, Any], color: bool) -> str:
    ts = log["timestamp"].replace("T", " ")[:23]
    level = log["level"]
    attrs = " ".join(f"{k}={v}" for k, v in sorted((log.get("attributes") or {}).items()))
    trace = f" trace={log['trace_id']}" if log.get("trace_id") else ""
    if not color:
        tail = f"  {attrs}{trace}" if attrs or trace else ""
        return f"{ts} {level:<5} {log['service']} {log['host']}  {log['message']}{tail}"
    tail = f"  {_DIM}{attrs}{trace}{_RESET}" if attrs or trace else ""
    return (
        f"{_DIM}{ts}{_RESET} {_COLORS.get(level, '')}{level:<5}{_RESET} "
        f"{_BOLD}{log['service']}{_RESET} {_DIM}{log['host']}{_RESET}  {log['message']}{tail}"
    )


def _print(logs: list[dict[str, Any]], args: argparse.Namespace, color: bool, out: TextIO) -> None:
    for log in logs:
        out.write((orjson.dumps(log).decode() if args.json else format_line(log, color)) + "\n")
    out.flush()


def _fail(response: httpx.Response) -> int:
    try:
        detail = response.json().get("detail")
        message = detail.get("message") if isinstance(detail, dict) else detail
    except ValueError:
        message = response.text
    print(f"strata search: {response.status_code}: {message}", file=sys.stderr)
    return 2 if response.status_code == 400 else 1


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    url = (args.url or settings.api_endpoint).rstrip("/")
    key = args.api_key or os.environ.get("STRATA_API_KEY") or settings.api_key
    if not key and not settings.api_client_cert_file:
        print(
            "strata search: an API key is needed: --api-key or STRATA_API_KEY "
            "(or a client certificate: STRATA_API_CLIENT_CERT_FILE)",
            file=sys.stderr,
        )
        return 2
    from api.tls import client_context

    try:
        verify = client_context(settings)
    except (ValueError, OSError) as exc:
        print(f"strata search: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    color = args.color == "always" or (args.color == "auto" and out.isatty() and not args.json)
    headers = {"X-API-Key": key} if key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=60, verify=verify) as client:
        try:
            if args.follow:
                return _follow(client, args, color, out)
            return _search(client, args, color, out)
        except httpx.HTTPError as exc:
            print(f"strata search: cannot reach {url}: {exc}", file=sys.stderr)
            return 1


def _search(client: httpx.Client, args: argparse.Namespace, color: bool, out: TextIO) -> int:
    params = _params(args)
    params["from"] = args.from_ or (f"now-{args.since}" if args.since else None if args.to else "now-1h")
    params["to"] = args.to
    params["order"] = "asc" if args.asc else "desc"
    params = {k: v for k, v in params.items() if v not in (None, "")}
    wanted = args.limit if args.limit > 0 else None
    printed = 0
    cursor = None
    while True:
        page = dict(params, limit=min(wanted - printed, 1000) if wanted else 1000)
        if cursor:
            page["cursor"] = cursor
        response = client.get("/v1/logs/search", params=page)
        if response.status_code != 200:
            return _fail(response)
        body = response.json()
        _print(body["logs"], args, color, out)
        printed += len(body["logs"])
        for tier in body["tiers"]:
            if tier["status"] != "ok":
                print(f"strata search: the {tier['tier']} tier is {tier['status']}", file=sys.stderr)
        cursor = body.get("cursor")
        if not cursor or (wanted and printed >= wanted):
            if not args.json:
                exact = "" if body["total_is_exact"] else "at least "
                print(f"-- {printed} shown of {exact}{body['total']}", file=sys.stderr)
            return 0


def _follow(client: httpx.Client, args: argparse.Namespace, color: bool, out: TextIO) -> int:
    params = {k: v for k, v in _params(args).items() if v not in (None, "")}
    since = f"now-{args.since}" if args.since else "now"
    while True:
        response = client.get("/v1/logs/tail", params=dict(params, since=since))
        if response.status_code != 200:
            return _fail(response)
        body = response.json()
        _print(body["logs"], args, color, out)
        since = body["next"]
        if not body["logs"]:
            time.sleep(1.0)
