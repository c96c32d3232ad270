"""The example crew every new workspace gets answers on the bundled local model, with no network."""

from __future__ import annotations

import ipaddress
import sys
import uuid
from pathlib import Path
from typing import Any

from core.context import Role, TenantContext
from tests.api.conftest import identity_settings
from tests.executor.conftest import document, edge, node
from wiring.services import build_services

_outbound: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record every connection or name lookup that is not loopback, while a test switches it on."""
    if _outbound is None:
        return
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1]:
        host = str(args[1][0])
        try:
            if ipaddress.ip_address(host.split("%")[0]).is_loopback:
                return
        except ValueError:
            pass
        _outbound.append(f"connect {args[1]}")
    elif event == "socket.getaddrinfo" and args[0] not in {None, "localhost", "127.0.0.1", "::1", b"localhost"}:
        _outbound.append(f"lookup {args[0]!r}")


sys.addaudithook(_audit)  # cannot be removed; idle unless `_outbound` is a list


async def test_the_example_crew_answers_on_the_local_model(tmp_path: Path) -> None:
    global _outbound
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
        _outbound = []
        try:
            started = await services.executions.start_run(editor, saved.version.flow_id, {})
            ended = await services.executions.wait(editor, started.id, 240)
            seen = list(_outbound)
        finally:
            _outbound = None
        assert ended.status == "completed", ended.error
        tasks = ended.runs_by_node()["team"].output["tasks"]
        assert [t["name"] for t in tasks] == ["draft_answer", "polish_answer"]
        assert all(t["raw"].strip() for t in tasks)
        assert ended.outputs["result"].strip()
        assert seen == []
    finally:
        await services.aclose()
