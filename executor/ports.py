"""What node runners need from the rest of the platform, as protocols.

The engine sees only these; `wiring` passes the real services (`core.llm.LLMService`,
`core.tools.ToolService`, the execution service for subflows), tests may pass their own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from core.context import TenantContext
from core.llm.types import CallMeta, ChatRequest, LLMResult, StreamChunk

if TYPE_CHECKING:
    from core.crews import AgentView, CrewBundle
    from core.tools import ToolView


class LLMPort(Protocol):
    """Chat completions on a tenant's providers (`core.llm.service.LLMService` fits)."""

    async def complete(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> LLMResult: ...

    def stream(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> AsyncIterator[StreamChunk]: ...


class ToolPort(Protocol):
    """Runs a saved tool in the sandbox (`core.tools.ToolService` fits)."""

    async def run_saved(self, ctx: TenantContext, tool_id: uuid.UUID, arguments: Mapping[str, Any]) -> Any:
        """The tool's output; raises `core.errors.CoreError` subclasses when the run failed."""
        ...


class SubflowPort(Protocol):
    """Runs another saved flow at a pinned version and returns its outputs."""

    async def run_subflow(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        version: int,
        inputs: Mapping[str, Any],
        *,
        parent_execution: uuid.UUID,
        parent_node: str,
    ) -> dict[str, Any]: ...


class CrewPort(Protocol):
    """A tenant's saved agents, crews and tools, read for one run (`core.crews.CrewRecords` fits)."""

    async def bundle(self, ctx: TenantContext, crew_id: uuid.UUID) -> CrewBundle:
        """The crew with its agents, tasks (in order) and tools; `NotFound` if it does not exist."""
        ...

    async def get_agent(self, ctx: TenantContext, agent_id: uuid.UUID) -> AgentView: ...

    async def tools_by_id(self, ctx: TenantContext, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ToolView]: ...


@dataclass(frozen=True, slots=True)
class NodeServices:
    """The services runners reach through `NodeContext.services`."""

    llm: LLMPort
    tools: ToolPort
    subflows: SubflowPort
    crews: CrewPort | None = None  # None: agent and crew nodes cannot run here


class Runners(Protocol):
    """The app instances that run executions (`core.instances.InstanceRegistry` fits)."""

    id: uuid.UUID

    async def live(self) -> set[uuid.UUID]: ...

    async def reap(self) -> set[uuid.UUID]: ...
