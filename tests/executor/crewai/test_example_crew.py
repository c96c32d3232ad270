"""The example crew every new workspace gets answers on the bundled local model, with no network."""

from __future__ import annotations

import uuid
from pathlib import Path

from core.context import Role, TenantContext
from tests.api.conftest import identity_settings
from tests.executor.conftest import document, edge, node
from tests.fixtures import network
from wiring.services import build_services


async def test_the_example_crew_answers_on_the_local_model(tmp_path: Path) -> None:
    settings = identity_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    services = build_services(settings)
    await services.start()
    try:
        info = await services.tenants.create("fresh")
        editor = TenantContext(info.id, "fresh", uuid.uuid4(), Role.EDITOR)
        crews = await services.crews.list_crews(editor)
        assert [c.name for c in crews] == ["example_crew"]
        crew = crews[0]
        assert crew.problems == []
        assert crew.placeholders == ["question"]
        agent = (await services.crews.list_agents(editor))[0]
        providers = {p.id: p.kind for p in await services.llm_stack.providers.list(editor)}
        assert providers[agent.provider_id] == "local"
        flow = document(
            [
                node("in", "input"),
                node("team", "crew", crew_id=str(crew.id), stream=False),
                node("out", "output", value="{{ nodes.team.output.raw }}"),
            ],
            [edge("in", "team"), edge("team", "out")],
        )
        saved = await services.flows.create(editor, "example", "", flow)
        assert saved.problems == []
        with network.watch() as seen:
            started = await services.executions.start_run(editor, saved.version.flow_id, {})
            ended = await services.executions.wait(editor, started.id, 240)
        assert ended.status == "completed", ended.error
        tasks = ended.runs_by_node()["team"].output["tasks"]
        assert [t["name"] for t in tasks] == ["draft_answer", "polish_answer"]
        assert all(t["raw"].strip() for t in tasks)
        assert ended.outputs["result"].strip()
        assert seen == []
    finally:
        await services.aclose()
