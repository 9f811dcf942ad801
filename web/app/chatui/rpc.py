"""Requests to the client core in the worker (``core_js``, web/js/core_client.mjs)."""

import json

import core_js


class CoreError(Exception):
    """The core refused or failed a request: ``kind`` (e.g. "wrong-password",
    "refused", "offline", "locked", "released", "stopped"), ``field`` (the form
    field it is about, or None) and a message for people."""

    def __init__(self, kind, message, field=None, status=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field
        self.status = status


async def call(method, **params):
    """The result of ``method``; raises :class:`CoreError`."""
    reply = json.loads(await core_js.call(method, json.dumps(params)))
    if "error" in reply:
        e = reply["error"]
        raise CoreError(e.get("kind") or "failed", e.get("message") or "failed",
                        e.get("field"), e.get("status"))
    return reply.get("ok")


def send(method, **params):
    """Fire and forget (the answer arrives as events)."""
    return core_js.call(method, json.dumps(params))
