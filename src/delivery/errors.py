"""Errors the delivery service reports to clients.

Every refusal is an :class:`APIError` carrying an HTTP status, a stable
machine-readable ``code`` and a human-readable ``detail`` that names what was
wrong. The app turns them into ``{"error": code, "detail": detail, ...}``
bodies; nothing else is ever sent to a client, so no stack trace or secret
can leak through an error.
"""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """The environment holds a setting the service cannot use."""


class APIError(Exception):
    """A request the service refuses, with the status and body to answer it with."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": self.code, "detail": self.detail, **self.extra}


class BadRequest(APIError):
    """The request is malformed: bad JSON, bad base64, malformed MLS bytes (400)."""

    status = 400
    code = "bad_request"


class Unauthorized(APIError):
    """No valid credentials were presented (401)."""

    status = 401
    code = "unauthorized"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extra)


class Forbidden(APIError):
    """Authenticated, but not allowed: not a member, not your device (403)."""

    status = 403
    code = "forbidden"


class NotFound(APIError):
    """The named user, device or group does not exist (404)."""

    status = 404
    code = "not_found"


class Conflict(APIError):
    """The request lost a race or repeats something already done (409)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(APIError):
    """The request body exceeds the configured limit (413)."""

    status = 413
    code = "payload_too_large"


class TooManyRequests(APIError):
    """A rate limit is exhausted (429); ``Retry-After`` says when to come back."""

    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(detail, headers={"Retry-After": str(seconds)}, retry_after=seconds)


class ServiceUnavailable(APIError):
    """The database is unreachable or overloaded; the client should retry (503)."""

    status = 503
    code = "unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})
