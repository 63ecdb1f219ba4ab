"""Live tail: ``WS /v1/logs/tail`` pushes matching records as they arrive; ``GET /v1/logs/tail``
returns what arrived since a position or a time, for clients that poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect, status

from api.deps import AppState, Principal, StateDep, credential, require
from api.responses import JSONBytes
from api.search.params import Filters, parse_time
from api.search.tail import TailHub, decode_position, encode_position
from core.query import Node, QueryError

router = APIRouter(prefix="/v1/logs", tags=["tail"])

SearchKey = Annotated[Principal, Depends(require("search"))]
_BATCH_WAIT_S = 0.2
_MAX_BATCH = 500


def get_hub(app: Any, state: AppState) -> TailHub:
    hub: TailHub | None = getattr(app.state, "tail", None)
    if hub is None:
        hub = TailHub(state.settings)
        app.state.tail = hub
    hub.start()
    return hub


def _ast(q: str, service: list[str] | None, level: list[str] | None, host: list[str] | None) -> Node:
    return Filters(q=q, service=tuple(service or ()), level=tuple(level or ()), host=tuple(host or ())).ast()


@router.get("/tail")
async def tail_poll(
    request: Request,
    principal: SearchKey,
    state: StateDep,
    since: Annotated[
        str | None, Query(description="the `next` of the previous answer, or a time (ISO 8601, now-5m)")
    ] = None,
    q: str = "",
    service: Annotated[list[str] | None, Query()] = None,
    level: Annotated[list[str] | None, Query()] = None,
    host: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> JSONBytes:
    """Records that arrived since ``since`` (default: the last minute), oldest first."""
    hub = get_hub(request.app, state)
    try:
        ast = _ast(q, service, level, host)
        position = since_ms = None
        if since and since.startswith("e"):  # a position token is base64 of a JSON object: "e…"
            position = decode_position(since)
        elif since:
            since_ms = int(parse_time(since, datetime.now(UTC)).timestamp() * 1000)
        else:
            since_ms = int((time.time() - 60) * 1000)
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail={"message": str(exc)}) from exc
    await hub.wait_ready(5.0)
    entries, nxt, gap = hub.poll(principal.tenant_id, ast, since_ms=since_ms, position=position, limit=limit)
    body: dict[str, Any] = {
        "logs": [e.record.to_dict() for e in entries],
        "next": encode_position(nxt),
        "gap": gap,
    }
    if hub.error:
        body["error"] = f"the live feed is not available: {hub.error}"
    return JSONBytes(body)


@router.websocket("/tail")
async def tail_ws(websocket: WebSocket) -> None:
    """Subscribe with query parameters ``q``, ``service``, ``level``, ``host`` (and ``api_key`` if no
    header can be sent); send a JSON object with those keys to change the filter. The server sends
    ``{"type": "logs", "logs": [...]}`` as records arrive, within a fraction of a second."""
    state: AppState = websocket.app.state.strata
    params = websocket.query_params
    try:
        principal: Principal = await require("search")(websocket, state)
        ast = _ast(
            params.get("q", ""), params.getlist("service"), params.getlist("level"), params.getlist("host")
        )
    except HTTPException as exc:
        # accepted first so that the client reads the reason, not a bare 403 handshake refusal
        await websocket.accept()
        await websocket.close(code=4401 if exc.status_code == 401 else 4403, reason=str(exc.detail)[:120])
        return
    except QueryError as exc:
        await websocket.accept()
        await websocket.close(code=4400, reason=str(exc)[:120])
        return
    await websocket.accept()
    hub = get_hub(websocket.app, state)
    sub = hub.subscribe(principal.tenant_id, ast)
    await websocket.send_text(_dumps({"type": "subscribed", "tenant": principal.tenant_id}))

    async def receive() -> None:
        while True:
            text = await websocket.receive_text()
            try:
                msg = orjson.loads(text)
                levels = msg.get("level")
                sub.ast = _ast(
                    msg.get("q", ""),
                    _as_list(msg.get("service")),
                    _as_list(levels),
                    _as_list(msg.get("host")),
                )
                await websocket.send_text(_dumps({"type": "subscribed", "tenant": principal.tenant_id}))
            except (QueryError, orjson.JSONDecodeError, AttributeError) as exc:
                await websocket.send_text(_dumps({"type": "error", "message": str(exc)}))

    reader = asyncio.create_task(receive())
    watcher = asyncio.create_task(_recheck_key(websocket, state))
    try:
        while not reader.done() and not watcher.done():
            try:
                first = await asyncio.wait_for(sub.queue.get(), timeout=1.0)
            except TimeoutError:
                continue
            batch = [first]
            await asyncio.sleep(_BATCH_WAIT_S) if sub.queue.empty() else None
            while not sub.queue.empty() and len(batch) < _MAX_BATCH:
                batch.append(sub.queue.get_nowait())
            message: dict[str, Any] = {"type": "logs", "logs": [e.record.to_dict() for e in batch]}
            if sub.dropped:
                message["dropped"], sub.dropped = sub.dropped, 0
            await websocket.send_text(_dumps(message))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(sub)
        reader.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await watcher


# Close codes a tail client sees: 4401 the key is unknown, 4403 it no longer may read (revoked,
# expired, tenant disabled, scope removed), 1013 it cannot be checked now (reconnect later).
_CLOSE_CODES = {401: 4401, 403: 4403}


async def _recheck_key(websocket: WebSocket, state: AppState) -> None:
    """Asks PostgreSQL again every ``tail_key_check_s`` whether the key still holds, and closes the
    socket with the reason when it does not: a stream outlives its handshake by hours, and a revoked
    key must not keep reading. A key that cannot be checked closes too (fail closed)."""
    interval = max(state.settings.tail_key_check_s, 0.1)
    check = require("search")
    key = credential(websocket)
    while True:
        await asyncio.sleep(interval)
        if key:
            state.auth_cache.pop(key, None)  # this check must ask the key store, not the cache
        try:
            await check(websocket, state)
        except HTTPException as exc:
            code = _CLOSE_CODES.get(exc.status_code, 1013)
            reason = str(exc.detail) if code != 1013 else "the API key cannot be re-checked now; reconnect"
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.close(code=code, reason=reason[:120])
            return


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _as_list(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise QueryError("filters are strings or lists of strings")
