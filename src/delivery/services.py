"""The objects one server process shares between requests, and how routes reach them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from starlette.requests import HTTPConnection

from delivery.config import Settings
from delivery.db import Database
from delivery.ratelimit import DatabaseRateLimiter, MemoryRateLimiter
from delivery.security import PasswordHasher
from delivery.throttle import LoginThrottle

if TYPE_CHECKING:
    from delivery.hub import Hub
    from delivery.posting import Sequencer


@dataclass(slots=True)
class Services:
    """Settings, database, password hasher, rate limiters, the event hub and the
    per-group message sequencer."""

    settings: Settings
    db: Database
    passwords: PasswordHasher
    local_limits: MemoryRateLimiter
    shared_limits: DatabaseRateLimiter
    hub: Hub
    sequencer: Sequencer
    login_throttle: LoginThrottle


def services_of(conn: HTTPConnection) -> Services:
    """The process's :class:`Services`, from a request or WebSocket."""
    return cast(Services, conn.app.state.services)


# FastAPI runs plain ``def`` dependencies in a thread pool; these are ``async`` so that
# resolving them costs a function call, not a thread hand-off per request.


async def get_services(conn: HTTPConnection) -> Services:
    """FastAPI dependency: the process's :class:`Services`."""
    return services_of(conn)


async def client_address(conn: HTTPConnection) -> str:
    """FastAPI dependency: the peer address (uvicorn resolves X-Forwarded-For only from
    the proxies named by ``DS_FORWARDED_ALLOW_IPS``)."""
    return conn.client.host if conn.client is not None else "unknown"
