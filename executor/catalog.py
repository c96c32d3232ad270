"""What a tenant has (providers, tools, flows, crews, agents), gathered for validating a flow against it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from core.context import TenantContext
from executor.nodes.base import Catalog


class _Providers(Protocol):
    async def list(self, ctx: TenantContext) -> Any: ...


class _Tools(Protocol):
    async def list(self, ctx: TenantContext) -> Any: ...


class _Crews(Protocol):
    async def list_crews(self, ctx: TenantContext) -> Any: ...

    async def list_agents(self, ctx: TenantContext) -> Any: ...


class _Flows(Protocol):
    async def list(self, ctx: TenantContext) -> Any: ...

    async def version_index(self, ctx: TenantContext) -> dict[str, frozenset[int]]: ...

    async def latest_documents(self, ctx: TenantContext) -> dict[str, dict[str, Any]]: ...


def subflow_graph(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    """Flow id -> ids of the flows its subflow nodes call (read from raw documents, which may be invalid)."""
    graph: dict[str, set[str]] = {}
    for flow_id, document in documents.items():
        called: set[str] = set()
        nodes = document.get("nodes") if isinstance(document, Mapping) else None
        for node in nodes if isinstance(nodes, list) else []:
            if isinstance(node, Mapping) and node.get("type") == "subflow":
                data = node.get("data")
                if isinstance(data, Mapping) and data.get("flow_id"):
                    called.add(str(data["flow_id"]))
        graph[flow_id] = called
    return graph


class CatalogSource:
    """Reads the tenant's providers, tools and flows through their core services."""

    def __init__(self, providers: _Providers, tools: _Tools, flows: _Flows, crews: _Crews | None = None) -> None:
        self._providers = providers
        self._tools = tools
        self._flows = flows
        self._crews = crews

    async def load(self, ctx: TenantContext) -> tuple[Catalog, dict[str, set[str]]]:
        """The catalog and the subflow graph of the tenant, as the caller may see them."""
        providers = await self._providers.list(ctx)
        tools = await self._tools.list(ctx)
        crews = await self._crews.list_crews(ctx) if self._crews is not None else []
        agents = await self._crews.list_agents(ctx) if self._crews is not None else []
        catalog = Catalog(
            providers=frozenset(str(provider.id) for provider in providers),
            tools={str(tool.id): {"name": tool.name, "input_schema": tool.input_schema} for tool in tools},
            flows=await self._flows.version_index(ctx),
            crews={
                str(crew.id): {
                    "name": crew.name,
                    "placeholders": list(crew.placeholders),
                    "inputs": dict(crew.inputs),
                    "problems": [str(problem.message) for problem in crew.problems],
                }
                for crew in crews
            },
            agents={str(agent.id): {"name": agent.name, "placeholders": list(agent.placeholders)} for agent in agents},
        )
        return catalog, subflow_graph(await self._flows.latest_documents(ctx))

    async def names(self, ctx: TenantContext) -> dict[str, dict[str, str]]:
        """Id -> name of the tenant's providers, tools and flows (for export and import)."""
        crews = await self._crews.list_crews(ctx) if self._crews is not None else []
        agents = await self._crews.list_agents(ctx) if self._crews is not None else []
        return {
            "providers": {str(p.id): p.name for p in await self._providers.list(ctx)},
            "tools": {str(t.id): t.name for t in await self._tools.list(ctx)},
            "flows": {str(f.id): f.name for f in await self._flows.list(ctx)},
            "crews": {str(c.id): c.name for c in crews},
            "agents": {str(a.id): a.name for a in agents},
        }
