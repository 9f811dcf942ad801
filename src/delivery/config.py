"""Settings of the delivery service, read once from the environment.

Every knob has a safe default so that ``python -m delivery serve`` needs no
configuration at all. The names are the environment variables, documented in
``docs/delivery.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from delivery.errors import ConfigError

# The repository root when running from a checkout (src/delivery/config.py -> repo).
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket: ``capacity`` requests at once, refilled over ``period`` seconds."""

    capacity: int
    period: float

    @property
    def per_second(self) -> float:
        """The refill rate in tokens per second."""
        return self.capacity / self.period

    @classmethod
    def parse(cls, name: str, text: str) -> Rate:
        """Parse ``"COUNT/SECONDS"`` (for example ``"30/60"``: 30 per minute)."""
        count_text, sep, period_text = text.partition("/")
        try:
            capacity = int(count_text)
            period = float(period_text) if sep else 1.0
        except ValueError:
            raise ConfigError(f"{name}: expected COUNT/SECONDS, got {text!r}") from None
        if capacity < 1 or period <= 0:
            raise ConfigError(f"{name}: COUNT must be >= 1 and SECONDS > 0, got {text!r}")
        return cls(capacity, period)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-user (or, before authentication, per-client-address) request budgets."""

    # Shared across processes through PostgreSQL: these guard secrets and scarce resources.
    register: Rate = field(default_factory=lambda: Rate(20, 3600.0))
    login: Rate = field(default_factory=lambda: Rate(10, 60.0))
    key_package_claim: Rate = field(default_factory=lambda: Rate(60, 60.0))
    # Per process, in memory: these are hot paths where an extra write per request would
    # cost throughput, and a budget that is N times larger behind N processes is harmless.
    message_post: Rate = field(default_factory=lambda: Rate(200, 1.0))
    key_package_upload: Rate = field(default_factory=lambda: Rate(30, 60.0))
    read: Rate = field(default_factory=lambda: Rate(300, 1.0))
    group_create: Rate = field(default_factory=lambda: Rate(60, 60.0))
    device_register: Rate = field(default_factory=lambda: Rate(20, 3600.0))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service can be told from outside."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path.cwd() / "data")
    static_dir: Path | None = None
    # Request and frame limits. MLS messages are small except Welcomes and commits in
    # large groups, base64 adds a third. A commit is posted with the GroupInfo of its
    # epoch (the ratchet tree) and any Welcome (the tree again): at 1,000 members that
    # is ~0.3 MB in suite 1 but ~2.6 MB for an update and ~4 MB for an Add in the
    # post-quantum suite 0x004F (1,216-byte X-Wing keys per tree node, 1.1 KB per
    # HPKE ciphertext; docs/delivery.md "Cipher suites and sizes").
    max_body_bytes: int = 8 * 1024 * 1024
    max_ws_frame_bytes: int = 64 * 1024
    max_key_packages_per_upload: int = 100
    max_key_packages_per_device: int = 500
    max_group_id_bytes: int = 256
    page_size_default: int = 100
    page_size_max: int = 500
    # Application messages of an epoch up to this many epochs behind the group's are
    # still accepted: members that sent before seeing a commit should not lose messages.
    app_message_epoch_window: int = 3
    session_idle_seconds: int = 7 * 24 * 3600
    session_absolute_seconds: int = 30 * 24 * 3600
    ws_auth_timeout_seconds: float = 10.0
    # How often an open WebSocket re-checks its session (logout and expiry end it).
    ws_reauth_seconds: float = 60.0
    # Bytes queued for one WebSocket (an empty queue takes any one frame) and for all
    # WebSockets of the process; a socket that takes no frame for ws_stall_seconds is
    # closed (1013) and resumes from its cursors.
    ws_buffer_bytes: int = 4 * 1024 * 1024
    ws_process_buffer_bytes: int = 256 * 1024 * 1024
    ws_stall_seconds: float = 30.0
    ws_max_connections_per_device: int = 8
    # A request head larger than this is refused (431); one not complete this many
    # seconds after the connection opened or its first byte arrived is refused (408),
    # and so is a body not complete in body_timeout_seconds.
    max_header_bytes: int = 16 * 1024
    header_timeout_seconds: float = 10.0
    # An idle kept-alive connection is closed after this long (a client reusing one
    # just as it closes sees a reset: keep it well above the clients' reuse window).
    keepalive_seconds: int = 30
    body_timeout_seconds: float = 30.0
    # A page of messages or Welcomes stops after this many bytes (at least one item).
    page_max_bytes: int = 4 * 1024 * 1024
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are trusted (comma-separated
    # addresses or networks, "*" for any); none by default: the peer address counts.
    forwarded_allow_ips: str | None = None
    # Invitations to join a group by external commit.
    invitation_default_seconds: int = 7 * 24 * 3600
    invitation_max_seconds: int = 30 * 24 * 3600
    # A fixed pool: overflow connections are opened under load and closed right after,
    # and a PostgreSQL connection costs milliseconds to open; requests rather queue for
    # a pooled one.
    db_pool_size: int = 20
    db_max_overflow: int = 0
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4
    rate_limits: RateLimits = field(default_factory=RateLimits)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default)."""
        e = dict(os.environ if env is None else env)
        defaults = cls()

        def integer(name: str, default: int, minimum: int = 0) -> int:
            raw = e.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
            if value < minimum:
                raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
            return value

        def rate(name: str, default: Rate) -> Rate:
            raw = e.get(name)
            return default if not raw else Rate.parse(name, raw)

        rl = defaults.rate_limits
        static_raw = e.get("STATIC_DIR")
        static_dir: Path | None
        if static_raw:
            static_dir = Path(static_raw)
        else:
            candidate = _REPO_ROOT / "web" / "dist"
            static_dir = candidate if candidate.is_dir() else None
        data_raw = e.get("DATA_DIR")
        return cls(
            database_url=e.get("DATABASE_URL") or None,
            data_dir=Path(data_raw) if data_raw else defaults.data_dir,
            static_dir=static_dir,
            max_body_bytes=integer("DS_MAX_BODY_BYTES", defaults.max_body_bytes, 1024),
            max_ws_frame_bytes=integer("DS_MAX_WS_FRAME_BYTES", defaults.max_ws_frame_bytes, 1024),
            max_key_packages_per_upload=integer(
                "DS_MAX_KEY_PACKAGES_PER_UPLOAD", defaults.max_key_packages_per_upload, 1
            ),
            max_key_packages_per_device=integer(
                "DS_MAX_KEY_PACKAGES_PER_DEVICE", defaults.max_key_packages_per_device, 1
            ),
            app_message_epoch_window=integer(
                "DS_APP_MESSAGE_EPOCH_WINDOW", defaults.app_message_epoch_window, 0
            ),
            session_idle_seconds=integer(
                "DS_SESSION_IDLE_SECONDS", defaults.session_idle_seconds, 1
            ),
            session_absolute_seconds=integer(
                "DS_SESSION_ABSOLUTE_SECONDS", defaults.session_absolute_seconds, 1
            ),
            ws_buffer_bytes=integer("DS_WS_BUFFER_BYTES", defaults.ws_buffer_bytes, 64 * 1024),
            ws_process_buffer_bytes=integer(
                "DS_WS_PROCESS_BUFFER_BYTES", defaults.ws_process_buffer_bytes, 1024 * 1024
            ),
            ws_stall_seconds=float(
                integer("DS_WS_STALL_SECONDS", int(defaults.ws_stall_seconds), 1)
            ),
            max_header_bytes=integer("DS_MAX_HEADER_BYTES", defaults.max_header_bytes, 1024),
            keepalive_seconds=integer("DS_KEEPALIVE_SECONDS", defaults.keepalive_seconds, 1),
            header_timeout_seconds=float(
                integer("DS_HEADER_TIMEOUT_SECONDS", int(defaults.header_timeout_seconds), 1)
            ),
            body_timeout_seconds=float(
                integer("DS_BODY_TIMEOUT_SECONDS", int(defaults.body_timeout_seconds), 1)
            ),
            page_max_bytes=integer("DS_PAGE_MAX_BYTES", defaults.page_max_bytes, 1024),
            forwarded_allow_ips=e.get("DS_FORWARDED_ALLOW_IPS") or None,
            ws_auth_timeout_seconds=float(
                integer("DS_WS_AUTH_TIMEOUT_SECONDS", int(defaults.ws_auth_timeout_seconds), 1)
            ),
            ws_reauth_seconds=float(
                integer("DS_WS_REAUTH_SECONDS", int(defaults.ws_reauth_seconds), 1)
            ),
            ws_max_connections_per_device=integer(
                "DS_WS_MAX_CONNECTIONS_PER_DEVICE", defaults.ws_max_connections_per_device, 1
            ),
            db_pool_size=integer("DS_DB_POOL_SIZE", defaults.db_pool_size, 1),
            db_max_overflow=integer("DS_DB_MAX_OVERFLOW", defaults.db_max_overflow, 0),
            # The floor is OWASP's Argon2id minimum (m=19 MiB, t=2, p=1).
            argon2_time_cost=integer("DS_ARGON2_TIME_COST", defaults.argon2_time_cost, 2),
            argon2_memory_kib=integer(
                "DS_ARGON2_MEMORY_KIB", defaults.argon2_memory_kib, 19 * 1024
            ),
            argon2_parallelism=integer("DS_ARGON2_PARALLELISM", defaults.argon2_parallelism, 1),
            rate_limits=RateLimits(
                register=rate("DS_RATE_REGISTER", rl.register),
                login=rate("DS_RATE_LOGIN", rl.login),
                key_package_claim=rate("DS_RATE_KEY_PACKAGE_CLAIM", rl.key_package_claim),
                message_post=rate("DS_RATE_MESSAGE_POST", rl.message_post),
                key_package_upload=rate("DS_RATE_KEY_PACKAGE_UPLOAD", rl.key_package_upload),
                read=rate("DS_RATE_READ", rl.read),
                group_create=rate("DS_RATE_GROUP_CREATE", rl.group_create),
                device_register=rate("DS_RATE_DEVICE_REGISTER", rl.device_register),
            ),
        )
