"""Every backend, chosen from settings here and nowhere else.

| concern      | embedded default              | production (setting)                        |
|--------------|-------------------------------|---------------------------------------------|
| Redis client | none                          | one client for all of the below (REDIS_URL) |
| event bus    | `MemoryEventBus`              | `RedisEventBus`                             |
| rate limits  | `MemoryRateLimiter`           | `RedisRateLimiter`                          |
| login log    | `MemoryAttemptLog`            | `RedisAttemptLog`                           |
| usage        | `DatabaseUsageStore`          | `MongoUsageStore` (MONGODB_URL)             |
| sandbox      | bubblewrap                    | gVisor or Kubernetes (SANDBOX_BACKEND)      |

`Backends` owns them: the services built on top use them and never close them.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.auth.throttle import AttemptLog, MemoryAttemptLog, RedisAttemptLog
from core.events import EventBus, MemoryEventBus, RedisEventBus
from core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from core.settings import AppSettings, SandboxSettings
from core.tools import ToolRunner, UnavailableSandbox
from core.usage import DatabaseUsageStore, MongoUsageStore, UsageStore
from db.database import Database
from sandbox.base import SandboxUnavailable
from sandbox.factory import create_backend

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


def build_sandbox(settings: SandboxSettings) -> tuple[ToolRunner, bool]:
    """The configured backend, built once, and whether it is the unsafe one.

    A backend that cannot be built (binary missing, unknown name) becomes an
    `UnavailableSandbox`: the app still starts, and every run is refused with the reason.
    """
    options: dict[str, Any] = {}
    if settings.backend in {"bwrap", "gvisor", "unsafe-subprocess"}:
        options["python_path"] = settings.python
    elif settings.backend == "kubernetes":
        options.update(
            namespace=settings.kubernetes_namespace,
            runtime_class=settings.kubernetes_runtime_class or None,
            image=settings.kubernetes_image,
            python_path=settings.kubernetes_python,
            cpu=settings.kubernetes_cpu,
            memory=settings.kubernetes_memory,
            ephemeral_storage=settings.kubernetes_ephemeral_storage,
        )
    try:
        backend: ToolRunner = create_backend(settings.backend, **options)
    except SandboxUnavailable as exc:
        log.error("sandbox backend %r is unavailable; every tool run will be refused: %s", settings.backend, exc)
        return UnavailableSandbox(settings.backend, str(exc)), False
    unsafe = bool(getattr(backend, "UNSAFE", False)) or settings.backend == "unsafe-subprocess"
    return backend, unsafe


@dataclass
class Backends:
    """The backends of one app process; `aclose` releases them (the Redis client last)."""

    redis: Redis | None
    bus: EventBus
    limiter: RateLimiter
    attempt_log: AttemptLog
    usage: UsageStore
    sandbox: ToolRunner
    sandbox_unsafe: bool

    @classmethod
    def from_settings(cls, settings: AppSettings, db: Database) -> Backends:
        """Choose each backend; nothing connects until `start` (or first use)."""
        redis: Redis | None = None
        if settings.redis.url:
            from redis.asyncio import Redis

            redis = Redis.from_url(settings.redis.url)
        sandbox, unsafe = build_sandbox(settings.sandbox)
        return cls(
            redis=redis,
            bus=RedisEventBus(redis) if redis is not None else MemoryEventBus(),
            limiter=RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter(),
            attempt_log=RedisAttemptLog(redis) if redis is not None else MemoryAttemptLog(),
            usage=(
                MongoUsageStore(settings.mongo.url, settings.mongo.database)
                if settings.mongo.url
                else DatabaseUsageStore(db)
            ),
            sandbox=sandbox,
            sandbox_unsafe=unsafe,
        )

    @staticmethod
    def describe(settings: AppSettings) -> dict[str, str]:
        """Name the backend chosen for each concern (never the URL: it may hold a password)."""
        return {
            "database": "postgresql" if settings.database_url.startswith("postgresql") else "sqlite",
            "event_bus": "redis" if settings.redis.url else "in-process",
            "rate_limits": "redis" if settings.redis.url else "in-process",
            "usage": "mongodb" if settings.mongo.url else "database",
            "sandbox": settings.sandbox.backend,
            "secrets": "environment" if not settings.is_development else "data-dir",
        }

    async def start(self) -> None:
        await self.usage.start()
        await self.bus.start()

    async def aclose(self) -> None:
        """Close every backend, each even if another failed to close."""
        closers = (self.bus.aclose, self.usage.close, self.limiter.close, self.attempt_log.close, self.sandbox.aclose)
        for close in closers:
            try:
                await close()
            except Exception:  # closing goes on: one backend failing to close must not leak the others
                log.exception("closing %s failed", close)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
