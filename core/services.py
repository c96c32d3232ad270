"""The service container: backends chosen once from settings, services built on them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.auth.identity import Identity, build_identity
from core.llm.wiring import LLMStack, build_llm
from core.settings import AppSettings
from core.tenants import TenantService
from core.tools import ToolService, ToolSettings, build_sandbox
from db.database import Database, private_dir
from db.migrate import migrate_all

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the UI and API call; built by `build_services`, closed by `close`."""

    settings: AppSettings
    db: Database
    tenants: TenantService
    identity: Identity
    tools: ToolService
    llm_stack: LLMStack
    backends: dict[str, str] = field(default_factory=dict)
    redis: Redis | None = None  # the one client every Redis backend shares (`REDIS_URL` set); closed last

    async def start(self) -> None:
        """Bring storage to head (control plane, then every tenant)."""
        report = await migrate_all(self.db, concurrency=self.settings.db.migrate_concurrency)
        log.info("migrated control plane and %d tenant(s)", len(report.migrated))
        await self.llm_stack.start()

    async def close(self) -> None:
        """Close every service, then the backends they share."""
        await self.llm_stack.close()
        await self.identity.close()
        await self.db.dispose()
        if self.redis is not None:
            await self.redis.aclose()

    async def health(self) -> dict[str, Any]:
        """Which backends are active and whether they answer."""
        checks: dict[str, str] = {}
        try:
            checks["database"] = "ok" if await asyncio.wait_for(self.db.ping(), timeout=5) else "failing"
        except Exception as exc:  # report, never raise: health must answer
            checks["database"] = f"failing: {type(exc).__name__}"
        status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
        return {"status": status, "environment": self.settings.env, "backends": self.backends, "checks": checks}


def describe_backends(settings: AppSettings) -> dict[str, str]:
    """Name the backend chosen for each concern (never the URL: it may hold a password)."""
    return {
        "database": "postgresql" if settings.database_url.startswith("postgresql") else "sqlite",
        "event_bus": "redis" if settings.redis.url else "in-process",
        "rate_limits": "redis" if settings.redis.url else "in-process",
        "usage": "mongodb" if settings.mongo.url else "database",
        "sandbox": settings.sandbox.backend,
        "secrets": "environment" if not settings.is_development else "data-dir",
    }


def _build_tools(settings: AppSettings, db: Database) -> ToolService:
    """The sandbox backend, built once; if it cannot isolate, every tool run is refused."""
    tool_settings = ToolSettings()
    sandbox, unsafe = build_sandbox(settings.sandbox)
    return ToolService(
        db, sandbox, policy=tool_settings.policy(), unsafe=unsafe, max_concurrent_runs=tool_settings.max_concurrent_runs
    )


def build_services(settings: AppSettings) -> Services:
    """Choose every backend from `settings`; nothing connects until `start()`."""
    private_dir(settings.data_dir)
    db = Database(
        settings.database_url,
        data_dir=settings.data_dir,
        pool_size=settings.db.pool_size,
        max_overflow=settings.db.max_overflow,
        echo=settings.db.echo,
    )
    tenants = TenantService(db)
    redis: Redis | None = None
    if settings.redis.url:
        from redis.asyncio import Redis

        # One client (one connection pool) for every Redis backend, instead of one each.
        redis = Redis.from_url(settings.redis.url)
    return Services(
        settings=settings,
        db=db,
        tenants=tenants,
        identity=build_identity(settings, db, tenants, redis),
        tools=_build_tools(settings, db),
        llm_stack=build_llm(settings, db, redis),
        backends=describe_backends(settings),
        redis=redis,
    )
