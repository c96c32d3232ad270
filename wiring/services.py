"""The service container: backends chosen once from settings (`wiring.backends`), services built on them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from core.auth.identity import Identity, build_identity
from core.llm.wiring import LLMStack, build_llm
from core.settings import AppSettings
from core.tenants import TenantService
from core.tools import ToolService, ToolSettings
from db.database import Database, private_dir
from db.migrate import migrate_all
from wiring.backends import Backends

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the UI and API call; built by `build_services`, started by `start`, closed by `aclose`."""

    settings: AppSettings
    db: Database
    backends: Backends
    tenants: TenantService
    identity: Identity
    tools: ToolService
    llm_stack: LLMStack
    described: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        """Bring storage to head (control plane, then every tenant), then start the backends."""
        report = await migrate_all(self.db, concurrency=self.settings.db.migrate_concurrency)
        log.info("migrated control plane and %d tenant(s)", len(report.migrated))
        await self.backends.start()
        await self.llm_stack.start()

    async def aclose(self) -> None:
        """Close every service, then the backends they share, then the database."""
        try:
            await self.llm_stack.aclose()
        finally:
            try:
                await self.backends.aclose()
            finally:
                await self.db.dispose()

    async def health(self) -> dict[str, Any]:
        """Which backends are active and whether they answer."""
        checks: dict[str, str] = {}
        try:
            checks["database"] = "ok" if await asyncio.wait_for(self.db.ping(), timeout=5) else "failing"
        except Exception as exc:  # report, never raise: health must answer
            checks["database"] = f"failing: {type(exc).__name__}"
        status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
        return {"status": status, "environment": self.settings.env, "backends": self.described, "checks": checks}


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
    backends = Backends.from_settings(settings, db)
    tenants = TenantService(db)
    tool_settings = ToolSettings()
    tools = ToolService(
        db,
        backends.sandbox,
        policy=tool_settings.policy(),
        unsafe=backends.sandbox_unsafe,
        max_concurrent_runs=tool_settings.max_concurrent_runs,
    )
    return Services(
        settings=settings,
        db=db,
        backends=backends,
        tenants=tenants,
        identity=build_identity(settings, db, tenants, attempt_log=backends.attempt_log),
        tools=tools,
        llm_stack=build_llm(settings, db, usage=backends.usage, limiter=backends.limiter),
        described=Backends.describe(settings),
    )
