"""Engine fixtures: the whole service container on each database and bus, a tenant, a scripted provider, a tool."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.context import Role, TenantContext
from core.providers import ProviderInput
from core.tools import ToolSpec
from executor.flows import SavedVersion
from tests.api.conftest import identity_settings
from tests.conftest import pg_url
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import ScriptedLLMServer
from wiring.services import Services, build_services

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

REDIS_URL = "redis://127.0.0.1:6379/0"

SHOUT = """
def run(text: str) -> dict:
    return {"loud": text.upper()}
"""

SLOW = """
import time
def run(seconds: float) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}
"""


@dataclass
class World:
    """Services with one tenant: an editor, a viewer, a scripted provider and two tools."""

    services: Services
    editor: TenantContext
    viewer: TenantContext
    provider_id: str
    shout_tool: str
    slow_tool: str
    server: ScriptedLLMServer

    async def flow(self, document: dict[str, Any], name: str | None = None) -> SavedVersion:
        saved = await self.services.flows.create(self.editor, name or f"flow_{uuid.uuid4().hex[:8]}", "", document)
        assert saved.problems == [], saved.problems
        return saved

    async def run(self, document: dict[str, Any], inputs: dict[str, Any] | None = None, wait_s: float = 30) -> Any:
        """Create a flow from `document`, run it and wait for the end; the final execution record."""
        saved = await self.flow(document)
        started = await self.services.executions.start_run(self.editor, saved.version.flow_id, inputs or {})
        return await self.services.executions.wait(self.editor, started.id, wait_s)


async def make_world(services: Services, server: ScriptedLLMServer, slug: str = "acme") -> World:
    info = await services.tenants.create(slug)
    admin = TenantContext(info.id, slug, uuid.uuid4(), Role.ADMIN)
    editor = TenantContext(info.id, slug, uuid.uuid4(), Role.EDITOR)
    viewer = TenantContext(info.id, slug, uuid.uuid4(), Role.VIEWER)
    provider = await services.llm_stack.providers.create(
        admin,
        ProviderInput.model_validate(
            {"name": "scripted", "kind": "openai_compatible", "base_url": server.base_url, "models": ["m1"]}
        ),
    )
    shout = await services.tools.create(
        editor,
        ToolSpec(
            name="shout",
            code=SHOUT,
            input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        ),
    )
    slow = await services.tools.create(
        editor,
        ToolSpec(
            name="slow",
            code=SLOW,
            input_schema={"type": "object", "properties": {"seconds": {"type": "number"}}, "required": ["seconds"]},
            limits={"wall_seconds": 30},
        ),
    )
    return World(services, editor, viewer, str(provider.id), str(shout.id), str(slow.id), server)


@pytest.fixture(params=["memory", "redis"])
def bus(request: pytest.FixtureRequest) -> str:
    """The event bus the world runs on: in-process, or Redis pub/sub."""
    return str(request.param)


async def started_services(tmp_path: Path, db_url: str, bus: str = "memory") -> Services:
    settings = identity_settings(tmp_path, db_url)
    settings.llm.allow_private_endpoints = True
    if bus == "redis":
        settings.redis.url = REDIS_URL
    services = build_services(settings)
    await services.start()
    return services


@pytest.fixture
async def world(db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer) -> AsyncIterator[World]:
    """A world on each database, with the in-process bus."""
    services = await started_services(tmp_path, db_url)
    try:
        yield await make_world(services, llm_server)
    finally:
        await services.aclose()


@pytest.fixture
async def pg_world(pg_database: str, tmp_path: Path, llm_server: ScriptedLLMServer) -> AsyncIterator[World]:
    """A world on PostgreSQL only, for tests too slow to run on both databases (crews, chat)."""
    services = await started_services(tmp_path, pg_url(pg_database))
    try:
        yield await make_world(services, llm_server)
    finally:
        await services.aclose()


def node(node_id: str, node_type: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}


def edge(source: str, target: str, source_handle: str = "out", target_handle: str = "in") -> dict[str, Any]:
    return {
        "id": f"{source}.{source_handle}-{target}",
        "source": source,
        "source_handle": source_handle,
        "target": target,
        "target_handle": target_handle,
    }


def document(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]], inputs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"schema": "crewcanvas.flow/v1", "nodes": nodes, "edges": edges, "inputs": inputs or []}
