"""The service container: backends chosen once from settings (`wiring.backends`), services built on them."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from core.auth.identity import Identity, build_identity
from core.chat import ChatStore
from core.crews import CrewRecords
from core.executions import ExecutionStore
from core.flow_drafts import DraftStore
from core.flow_store import FlowStore
from core.instances import InstanceRegistry
from core.journal import Journal
from core.lifecycle import Component
from core.llm.wiring import LLMStack, build_llm
from core.mail import build_mailer
from core.settings import AppSettings
from core.tenants import TenantService
from core.timers import TimerStore
from core.tools import ToolService, ToolSettings
from db.database import Database, private_dir
from db.migrate import migrate_all
from executor.catalog import CatalogSource
from executor.chat import ChatService
from executor.drafts import DraftService
from executor.flows import FlowService
from executor.registry import Registry, load_registry
from executor.service import ExecutionService
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
    crews: CrewRecords
    llm_stack: LLMStack
    registry: Registry
    journal: Journal
    instances: InstanceRegistry
    flows: FlowService
    drafts: DraftService
    executions: ExecutionService
    chat: ChatService
    described: dict[str, str] = field(default_factory=dict)
    #: Whether `start()` finished (storage migrated, components started): health says "starting" until then.
    started: bool = field(default=False, init=False)

    def components(self) -> list[Component]:
        """Everything with a lifecycle, in start order (closed in reverse)."""
        return [self.backends, self.llm_stack, self.journal, self.instances, self.executions]

    async def start(self) -> None:
        """Bring storage to head (control plane, then every tenant), then start every component.

        Starting the executions interrupts the runs of processes that died (see `core.instances`).
        """
        report = await migrate_all(self.db, concurrency=self.settings.db.migrate_concurrency)
        log.info("migrated control plane and %d tenant(s)", len(report.migrated))
        for component in self.components():
            await component.start()
        self.started = True

    async def aclose(self) -> None:
        """Close every component, last started first (runs still going become `interrupted`), then the database.

        Each is closed even if another failed to close.
        """
        try:
            for component in reversed(self.components()):
                try:
                    await component.aclose()
                except Exception:  # the others must still close
                    log.exception("closing %s failed", type(component).__name__)
        finally:
            await self.db.dispose()

    async def health(self) -> dict[str, Any]:
        """Which backends are active and whether they answer."""
        checks: dict[str, str] = {}
        try:
            checks["database"] = "ok" if await asyncio.wait_for(self.db.ping(), timeout=5) else "failing"
        except Exception as exc:  # report, never raise: health must answer
            checks["database"] = f"failing: {type(exc).__name__}"
        if self.backends.redis is not None:
            try:
                checks["redis"] = "ok" if await asyncio.wait_for(self.backends.redis.ping(), timeout=5) else "failing"
            except Exception as exc:  # report, never raise
                checks["redis"] = f"failing: {type(exc).__name__}"
        if not self.started:  # NiceGUI serves while its start-up handlers run: not ready before they end
            checks["startup"] = "starting: migrating storage and starting components"
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
    llm_stack = build_llm(settings, db, usage=backends.usage, limiter=backends.limiter)
    crews = CrewRecords(db, tools, llm_stack.providers)
    # CrewAI keeps what it stores (memories, knowledge, task outputs) under the data directory, never in ~.
    os.environ.setdefault("CREWAI_STORAGE_DIR", str(settings.data_dir / "crewai"))
    registry = load_registry()
    flow_store = FlowStore(db)
    journal = Journal(db, backends.bus.publish)
    catalog = CatalogSource(llm_stack.providers, tools, flow_store, crews)
    instances = InstanceRegistry(db)
    mailer = build_mailer(settings.mail)

    async def tenant_ids() -> dict[str, uuid.UUID]:
        return {tenant.slug: tenant.id for tenant in await tenants.list()}

    flows = FlowService(flow_store, registry, catalog)
    executions = ExecutionService(
        flows=flow_store,
        store=ExecutionStore(db),
        journal=journal,
        bus=backends.bus,
        registry=registry,
        catalog=catalog,
        llm=llm_stack.llm,
        tools=tools,
        crews=crews,
        runners=instances,
        timers=TimerStore(db),
        mail=mailer,
        tenants=tenant_ids,
        max_concurrency=settings.executor.max_concurrency,
        tenant_concurrency=settings.executor.tenant_concurrency,
        timer_every_s=settings.executor.timer_every_s,
        public_url=settings.base_url,
    )
    return Services(
        settings=settings,
        db=db,
        backends=backends,
        tenants=tenants,
        identity=build_identity(settings, db, tenants, attempt_log=backends.attempt_log, mailer=mailer),
        tools=tools,
        crews=crews,
        llm_stack=llm_stack,
        registry=registry,
        journal=journal,
        instances=instances,
        flows=flows,
        drafts=DraftService(flows, DraftStore(db)),
        executions=executions,
        chat=ChatService(ChatStore(db), executions, crews),
        described=Backends.describe(settings),
    )
