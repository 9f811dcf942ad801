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

Close codes: 4400 bad frame, 4401 not authenticated (also when the session is
revoked or expires while connected), 4403 no device, 4408 authentication
timeout, 4429 too many connections, 1013 client too slow (reconnect and
resume), 1011 internal error.
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
from delivery.hub import ClientStream
from delivery.principal import DevicePrincipal
from delivery.services import Services, services_of

log = logging.getLogger("delivery.ws")
router = APIRouter()

_MAX_CURSORS = 10_000


def _frame(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def _parse_auth(text: str, services: Services) -> tuple[str, dict[bytes, int], int]:
    try:
        msg = json.loads(text)
    except ValueError:
        raise BadRequest("the first frame must be a JSON auth message") from None
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
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest(f"cursor of group {key!r} must be a non-negative integer")
        cursors[decode_group_id(str(key), services.settings.max_group_id_bytes)] = value
    welcome_after = msg.get("welcome_after", 0)
    if not isinstance(welcome_after, int) or isinstance(welcome_after, bool) or welcome_after < 0:
        raise BadRequest("welcome_after must be a non-negative integer")
    return token, cursors, welcome_after


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close(code=code, reason=reason[:120])


async def _refuse(ws: WebSocket, exc: APIError) -> None:
    code = {401: 4401, 403: 4403, 429: 4429}.get(exc.status, 4400)
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await ws.send_text(_frame({"type": "error", **exc.body()}))
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

    stream = ClientStream(services.hub, device, settings.ws_queue_max)
    stream.push(_frame({"type": "ready", "user_id": device.user_id, "device_id": device.device_id}))
    sender = asyncio.create_task(_send_loop(ws, stream))
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
        with contextlib.suppress(asyncio.QueueFull):
            stream.outbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(sender, 1.0)
        sender.cancel()
        code, reason = stream.close_reason or (1000, "bye")
        await _close(ws, code, reason)


async def _send_loop(ws: WebSocket, stream: ClientStream) -> None:
    try:
        while True:
            text = await stream.outbox.get()
            if text is None:
                return
            await ws.send_text(text)
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
                msg = json.loads(text)
            except ValueError:
                stream.close(4400, "frames must be JSON")
                return
            if isinstance(msg, dict) and msg.get("type") == "ping":
                stream.push(_frame({"type": "pong"}))
            else:
                stream.close(4400, "unknown frame type")
                return
    except (WebSocketDisconnect, RuntimeError, KeyError, OSError):
        stream.close(1000, "client gone")
