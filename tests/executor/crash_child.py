"""A worker process for the crash test: starts a run whose LLM call hangs, says so, and waits to be killed.

Usage: python crash_child.py DB_URL DATA_DIR LLM_BASE_URL; prints one JSON line
{"execution_id": ..., "tenant": ...} once the run's first events are stored.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.context import Role, TenantContext
from core.providers import ProviderInput
from tests.api.conftest import identity_settings
from wiring.services import build_services


async def main(db_url: str, data_dir: str, base_url: str) -> None:
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
    document = {
        "schema": "crewcanvas.flow/v1",
        "nodes": [
            {"id": "in", "type": "input", "position": {"x": 0, "y": 0}, "data": {}},
            {
                "id": "ask",
                "type": "llm",
                "position": {"x": 1, "y": 0},
                "data": {"provider_id": str(provider.id), "prompt": "hang", "stream": False},
            },
        ],
        "edges": [{"id": "e1", "source": "in", "target": "ask"}],
        "inputs": [],
    }
    saved = await services.flows.create(admin, "crashy", "", document)
    execution = await services.executions.start_run(admin, saved.version.flow_id, {})
    while True:  # until the hanging node has started and that is stored
        events = await services.executions.events(admin, execution.id)
        if any(e.type == "node_started" and e.node_id == "ask" for e in events):
            break
        await asyncio.sleep(0.05)
    print(json.dumps({"execution_id": str(execution.id), "tenant_id": str(info.id)}), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
