"""The WebSocket ``/ws``: authenticated push of ``mls-message`` and ``mls-welcome`` events.

Protocol (JSON text frames):

1. The client connects to ``/ws`` (no token in the URL: URLs end up in logs and
   browser history) and, within ``DS_WS_AUTH_TIMEOUT`` seconds, sends
   ``{"type": "auth", "token": "...", "cursors": {"<group_id>": <last seq>, ...},
   "welcome_after": <last welcome_seq>}``. ``cursors`` and ``welcome_after`` are
   optional; a group not listed starts from the device's first visible message.
2. The server answers ``{"type": "ready", "user_id": ..., "device_id": ...}``, then
   pushes every missed event and then live ones: ``mls-welcome`` in
   ``welcome_seq`` order, and per group ``mls-message`` in ``seq`` order
   without gaps (messages the device may not read are skipped). A group's
   messages are pushed only after its Welcome.
3. The client may send ``{"type": "ping"}`` (answered by ``{"type": "pong"}``).

Besides ``mls-message`` and ``mls-welcome``, the server pushes notices:
``{"type": "device-retired", "user_id", "device_id", "group_ids"}`` (a retired
device still holds a leaf in these groups of yours: your next commit should
remove it; sent live and again on every connection while it is so) and
``{"type": "joinable", "group_id"}`` (this device may now join the group by
external commit).

Close codes: 4400 bad frame, 4401 not authenticated (also when the session is
revoked or expires while connected, or the device is retired), 4403 no device,
4408 authentication timeout, 4429 too many connections, 1013 client too slow
(it did not read for ``DS_WS_STALL_SECONDS`` or let its buffer overflow:
reconnect and resume from your cursors), 1011 internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from delivery.auth import authenticate, require_device
from delivery.encoding import decode_group_id
from delivery.errors import APIError, BadRequest, Forbidden, Unauthorized
from delivery.hub import SLOW_CONSUMER, ClientStream
from delivery.outbox import Outbox
from delivery.principal import DevicePrincipal
from delivery.services import Services, services_of

log = logging.getLogger("delivery.ws")
router = APIRouter()

_MAX_CURSORS = 10_000
_MAX_CURSOR = 2**63 - 1  # sequence numbers are PostgreSQL bigints
# How long closing may wait for a socket whose client does not read.
_CLOSE_TIMEOUT = 2.0


def _frame(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def _json(text: str) -> Any:
    """A frame's JSON; nesting deep enough to exhaust the parser is as bad as no JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("frames must be JSON (of reasonable nesting)") from None


def _cursor(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_CURSOR:
        raise BadRequest(f"{what} must be an integer from 0 to 2^63-1")
    return value


def _parse_auth(text: str, services: Services) -> tuple[str, dict[bytes, int], int]:
    msg = _json(text)
    if not isinstance(msg, dict) or msg.get("type") != "auth":
        raise BadRequest('the first frame must be {"type": "auth", "token": ...}')
    token = msg.get("token")
    if not isinstance(token, str):
        raise Unauthorized("auth message without a token")
    raw_cursors = msg.get("cursors") or {}
    if not isinstance(raw_cursors, dict) or len(raw_cursors) > _MAX_CURSORS:
        raise BadRequest(f"cursors must be an object of at most {_MAX_CURSORS} groups")
    cursors: dict[bytes, int] = {}
    for key, value in raw_cursors.items():
        gid = decode_group_id(str(key), services.settings.max_group_id_bytes)
        cursors[gid] = _cursor(value, f"the cursor of group {str(key)[:64]!r}")
    welcome_after = _cursor(msg.get("welcome_after", 0), "welcome_after")
    return token, cursors, welcome_after


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.client_state == WebSocketState.CONNECTED:
        # A client that does not read would block the close frame forever.
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect, TimeoutError):
            await asyncio.wait_for(ws.close(code=code, reason=reason[:120]), _CLOSE_TIMEOUT)


async def _refuse(ws: WebSocket, exc: APIError) -> None:
    code = {401: 4401, 403: 4403, 429: 4429}.get(exc.status, 4400)
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect, TimeoutError):
        await asyncio.wait_for(ws.send_text(_frame({"type": "error", **exc.body()})),
                               _CLOSE_TIMEOUT)
    await _close(ws, code, exc.detail)


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    """Authenticate, then stream events until the client leaves or the stream is closed."""
    services = services_of(ws)
    settings = services.settings
    await ws.accept()
    try:
        first = await asyncio.wait_for(ws.receive_text(), settings.ws_auth_timeout_seconds)
    except TimeoutError:
        await _close(ws, 4408, "authenticate within the time limit")
        return
    except (WebSocketDisconnect, RuntimeError, KeyError):
        return  # gone, or sent a binary frame
    try:
        if len(first) > settings.max_ws_frame_bytes:
            raise BadRequest("frame too large")
        token, cursors, welcome_after = _parse_auth(first, services)
        principal = await authenticate(services, token)
        device = require_device(principal)
        if services.hub.connections_of(device.device_pk) >= settings.ws_max_connections_per_device:
            raise APIError("too many connections for this device", status=429, code="rate_limited")
    except APIError as exc:
        await _refuse(ws, exc)
        return

    outbox = Outbox(services.hub.budget, settings.ws_buffer_bytes)
    stream = ClientStream(services.hub, device, outbox)
    stream.push(_frame({"type": "ready", "user_id": device.user_id, "device_id": device.device_id}))
    sender = asyncio.create_task(_send_loop(ws, stream, settings.ws_stall_seconds))
    receiver = asyncio.create_task(_receive_loop(ws, stream, services, token, device))
    try:
        await stream.start(cursors, welcome_after)
        await stream.closed.wait()
    except APIError as exc:  # the database is unavailable: ask the client to come back
        stream.close(1013, exc.detail)
    finally:
        stream.close(*(stream.close_reason or (1000, "bye")))
        receiver.cancel()
        # Let the sender flush what is queued before the close frame (briefly: a slow
        # client is being dropped precisely because it does not drain its queue).
        outbox.close(drop=False)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(sender, 1.0)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        outbox.close(drop=True)  # what is left is never sent: return its memory
        code, reason = stream.close_reason or (1000, "bye")
        await _close(ws, code, reason)


async def _send_loop(ws: WebSocket, stream: ClientStream, stall_seconds: float) -> None:
    try:
        while True:
            text = await stream.outbox.get()
            if text is None:
                return
            try:
                await asyncio.wait_for(ws.send_text(text), stall_seconds)
            except TimeoutError:
                stream.close(SLOW_CONSUMER,
                             "client too slow; reconnect and resume from your cursors")
                return
            finally:
                stream.outbox.sent(text)
    except (WebSocketDisconnect, RuntimeError, OSError):
        stream.close(1000, "client gone")


async def _receive_loop(
    ws: WebSocket, stream: ClientStream, services: Services, token: str, device: DevicePrincipal
) -> None:
    loop = asyncio.get_running_loop()
    interval = services.settings.ws_reauth_seconds
    next_check = loop.time() + interval
    try:
        while not stream.closed.is_set():
            timeout = max(0.0, next_check - loop.time())
            try:
                text = await asyncio.wait_for(ws.receive_text(), timeout)
            except TimeoutError:
                # Logout or expiry elsewhere ends this connection too.
                try:
                    principal = await authenticate(services, token)
                    if principal.device_pk != device.device_pk:
                        raise Forbidden("session changed")
                except Unauthorized:
                    stream.close(4401, "session revoked or expired")
                    return
                except APIError:
                    pass  # database briefly unavailable: check again later
                next_check = loop.time() + interval
                continue
            if len(text) > services.settings.max_ws_frame_bytes:
                stream.close(4400, "frame too large")
                return
            try:
                msg = _json(text)
            except BadRequest as exc:
                stream.close(4400, exc.detail)
                return
            if isinstance(msg, dict) and msg.get("type") == "ping":
                stream.push(_frame({"type": "pong"}))
            else:
                stream.close(4400, "unknown frame type")
                return
    except (WebSocketDisconnect, RuntimeError, KeyError, OSError):
        stream.close(1000, "client gone")
