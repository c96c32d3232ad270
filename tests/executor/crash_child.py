"""A worker process for the crash tests: starts a run whose LLM call hangs, says so, and waits to be killed.

Usage: python crash_child.py DB_URL DATA_DIR LLM_BASE_URL [MODE]; prints one JSON line
{"execution_id": ..., "tenant_id": ...} once the hanging node `ask` has started and that is stored.

MODE "single" (the default): in -> ask (llm, hangs). MODE "chain": in -> draft (llm, answers)
-> ask (llm, hangs) -> out, so one LLM node completed before the kill (the parent scripts
the draft's reply, then a hanging one). MODE "human": in -> (ask (llm, hangs), review (human)),
so a node waits for a person, its wait stored, while the run is still running. MODE "paused":
in -> draft (llm, answers) -> review (human) -> out, said once the run has paused (it holds
nothing then: the kill takes no run with it).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.context import Role, TenantContext
from core.providers import ProviderInput
from tests.api.conftest import identity_settings
from wiring.services import build_services


def nodes_and_edges(mode: str, provider_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The flow's nodes and edges for `mode`."""

    def llm(node_id: str, x: int, prompt: str) -> dict[str, Any]:
        data = {"provider_id": provider_id, "prompt": prompt, "stream": False}
        return {"id": node_id, "type": "llm", "position": {"x": x, "y": 0}, "data": data}

    start = {"id": "in", "type": "input", "position": {"x": 0, "y": 0}, "data": {}}
    if mode == "single":
        return [start, llm("ask", 1, "hang")], [{"id": "e1", "source": "in", "target": "ask"}]
    if mode == "chain":
        out = {"id": "out", "type": "output", "position": {"x": 3, "y": 0}, "data": {"value": "{{ nodes.ask.output }}"}}
        nodes = [start, llm("draft", 1, "draft"), llm("ask", 2, "Improve: {{ nodes.draft.output }}"), out]
        edges = [
            {"id": "e1", "source": "in", "target": "draft"},
            {"id": "e2", "source": "draft", "target": "ask"},
            {"id": "e3", "source": "ask", "target": "out"},
        ]
        return nodes, edges
    if mode == "human":
        review = {"id": "review", "type": "human", "position": {"x": 1, "y": 1}, "data": {"value": "the plan"}}
        edges = [{"id": "e1", "source": "in", "target": "ask"}, {"id": "e2", "source": "in", "target": "review"}]
        return [start, llm("ask", 1, "hang"), review], edges
    if mode == "paused":
        review = {"id": "review", "type": "human", "position": {"x": 2, "y": 0}, "data": {}}
        out = {
            "id": "out",
            "type": "output",
            "position": {"x": 3, "y": 0},
            "data": {"value": "{{ nodes.review.output }}"},
        }
        edges = [
            {"id": "e1", "source": "in", "target": "draft"},
            {"id": "e2", "source": "draft", "target": "review"},
            {"id": "e3", "source": "review", "target": "out"},
        ]
        return [start, llm("draft", 1, "draft"), review, out], edges
    raise SystemExit(f"unknown mode {mode!r}: single, chain, human or paused")


async def main(db_url: str, data_dir: str, base_url: str, mode: str = "single") -> None:
    settings = identity_settings(Path(data_dir), db_url)
    settings.llm.allow_private_endpoints = True
    services = build_services(settings)
    await services.start()
    info = await services.tenants.create("acme")
    admin = TenantContext(info.id, "acme", uuid.uuid4(), Role.ADMIN)
    provider = await services.llm_stack.providers.create(
        admin,
        ProviderInput.model_validate(
            {"name": "scripted", "kind": "openai_compatible", "base_url": base_url, "models": ["m1"]}
        ),
    )
    nodes, edges = nodes_and_edges(mode, str(provider.id))
    document = {"schema": "crewcanvas.flow/v1", "nodes": nodes, "edges": edges, "inputs": []}
    saved = await services.flows.create(admin, "crashy", "", document)
    execution = await services.executions.start_run(admin, saved.version.flow_id, {})
    expected = {("node_started", "ask")} | ({("node_waiting", "review")} if mode == "human" else set())
    if mode == "paused":
        expected = {("execution_waiting", None)}
    while True:  # until the hanging node has started (and the human node waits) and that is stored
        events = await services.executions.events(admin, execution.id)
        if expected <= {(e.type, e.node_id) for e in events}:
            break
        await asyncio.sleep(0.05)
    print(json.dumps({"execution_id": str(execution.id), "tenant_id": str(info.id)}), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
