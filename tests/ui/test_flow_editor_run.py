"""Runs on the canvas, page logic: Run asks the inputs, saves what changed, and every node's state reaches
the canvas from the run's events; a node's last run is inspected, pinned and run from; `?run=` shows an
earlier run. (The browser tests check the same states in the DOM.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from nicegui.testing.user import User

from core.context import Role, TenantContext
from core.providers import ProviderInput
from tests.executor.conftest import document, edge, node
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.ui.conftest import scripted_provider, sign_in
from tests.ui.test_flow_editor import canvas, eventually
from wiring.services import Services

pytestmark = pytest.mark.ui_settings(loopback_llm=True)

SLOW = 100  # retries of 0.1 s for what a run does in the background
_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server


async def shout_flow(services: Services, ctx: TenantContext, server: ScriptedLLMServer) -> uuid.UUID:
    """in -> shout (an LLM call on the scripted server) -> out, returning what the model said."""
    provider = await scripted_provider(services, ctx, server.base_url)
    flow = document(
        [
            node("in", "input"),
            node("shout", "llm", provider_id=str(provider.id), model="m1", prompt="Shout {{ inputs.topic }}"),
            node("out", "output", value="{{ nodes.shout.output }}"),
        ],
        [edge("in", "shout"), edge("shout", "out")],
        [{"name": "topic", "type": "string"}],
    )
    saved = await services.flows.create(ctx, "Shout", "", flow)
    return saved.version.flow_id


def status(user: User, node_id: str) -> str:
    return str(canvas(user)._nodes[node_id]["data"].get("status"))  # what was sent to the browser


async def open_editor(user: User, services: Services, server: ScriptedLLMServer) -> tuple[TenantContext, uuid.UUID]:
    owner = await sign_in(user, services)
    flow_id = await shout_flow(services, owner.ctx, server)
    await user.open(f"/flows/{flow_id}/edit")
    await user.should_see(marker="flow-canvas")
    return owner.ctx, flow_id


async def run_with(user: User, topic: str) -> None:
    user.find(marker="editor-run").click()
    await user.should_see(marker="run-dialog")
    user.find(marker="run-topic").type(topic)
    user.find(marker="run-submit").click()


async def test_run_shows_every_node_done_on_the_canvas_and_the_outputs(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    ctx, flow_id = await open_editor(user, ui_services, llm_server)
    await user.should_see("No run on the canvas yet.")
    llm_server.script(Reply.say("HELLO!"))
    await run_with(user, "hello")
    await eventually(lambda: all(status(user, n) == "completed" for n in ("in", "shout", "out")))
    await user.should_see(marker="run-pane-outputs", retries=SLOW)
    await user.should_see('"result": "HELLO!"', retries=SLOW)
    await user.should_see("execution_completed")  # the event log
    edges = canvas(user)._edges
    assert {e.get("state") for e in edges.values()} == {"done"}
    runs = await ui_services.executions.list(ctx, flow_id=flow_id)
    assert [r.status for r in runs.items] == ["completed"]


async def test_run_saves_unsaved_changes_first(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    ctx, flow_id = await open_editor(user, ui_services, llm_server)
    user.find(marker="flow-canvas").trigger("node_click", {"id": "out"})
    await user.should_see(marker="node-value")
    user.find(marker="node-value").clear().type("{{ nodes.shout.output }}?")
    await user.should_see("Draft: changes since version 1", retries=50)
    llm_server.script(Reply.say("WHY"))
    await run_with(user, "why")
    await user.should_see('"result": "WHY?"', retries=SLOW)
    assert max(v.version for v in await ui_services.flows.versions(ctx, flow_id)) == 2
    await user.should_see("Version 2: no unsaved changes")


async def test_a_nodes_last_run_is_shown_pinned_and_used_by_the_next_run(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    ctx, flow_id = await open_editor(user, ui_services, llm_server)
    llm_server.script(Reply.say("ONE"), Reply.say("TWO"))
    await run_with(user, "one")
    await user.should_see('"result": "ONE"', retries=SLOW)
    user.find(marker="flow-canvas").trigger("node_click", {"id": "shout"})
    await user.should_see(marker="node-run-output")
    await user.should_see(marker="node-run-inputs")
    user.find(marker="node-run-pin").click()
    await user.should_see(marker="node-run-pinned")
    draft = await ui_services.drafts.open(ctx, flow_id)
    assert next(n for n in draft.document["nodes"] if n["id"] == "shout")["pinned_output"] == "ONE"
    await run_with(user, "two")
    await eventually(lambda: status(user, "shout") == "pinned")
    await user.should_see(marker="run-pane-outputs", retries=SLOW)
    await user.should_see('"result": "ONE"', retries=SLOW)  # the pinned output: the model was not asked again
    user.find(marker="flow-canvas").trigger("undo")  # a pin is a change of the draft: undoable
    await user.should_not_see(marker="node-run-unpin", retries=SLOW)
    draft = await ui_services.drafts.open(ctx, flow_id)
    assert next(n for n in draft.document["nodes"] if n["id"] == "shout").get("pinned_output") is None


async def test_run_from_here_reuses_the_earlier_outputs(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    ctx, flow_id = await open_editor(user, ui_services, llm_server)
    llm_server.script(Reply.say("FIRST"))
    await run_with(user, "first")
    await user.should_see('"result": "FIRST"', retries=SLOW)
    user.find(marker="flow-canvas").trigger("node_click", {"id": "out"})
    await user.should_see(marker="node-run-from")
    user.find(marker="node-run-from").click()
    runs: list[Any] = []

    async def two_runs() -> bool:
        runs[:] = (await ui_services.executions.list(ctx, flow_id=flow_id)).items
        return len(runs) == 2 and runs[0].status == "completed"

    for _ in range(50):
        if await two_runs():
            break
        await asyncio.sleep(0.1)
    assert len(runs) == 2
    assert runs[0].options.get("from_node") == "out"
    assert runs[0].outputs == {"result": "FIRST"}  # the model's earlier answer, not asked again
    assert len(llm_server.requests) == 1
    await eventually(lambda: status(user, "out") == "completed")


async def test_an_earlier_run_opens_on_the_canvas_from_a_link(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_in(user, ui_services)
    flow_id = await shout_flow(ui_services, owner.ctx, llm_server)
    llm_server.script(Reply.say("X"))
    started = await ui_services.executions.start_run(owner.ctx, flow_id, {"topic": "x"})
    await ui_services.executions.wait(owner.ctx, started.id, 10)
    await user.open(f"/flows/{flow_id}/edit?run={started.id}")
    await user.should_see(marker="run-pane-outputs", retries=SLOW)
    assert all(status(user, n) == "completed" for n in ("in", "shout", "out"))


async def test_a_viewer_watches_but_cannot_run(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_in(user, ui_services)
    flow_id = await shout_flow(ui_services, owner.ctx, llm_server)
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open(f"/flows/{flow_id}/edit")
    await user.should_see(marker="run-pane")
    await user.should_not_see(marker="editor-run")
    await user.should_see("Runs an editor starts show here.")


async def test_a_human_node_waits_on_the_canvas_and_is_approved_there(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    flow = document(
        [
            node("in", "input"),
            node("ask", "human", prompt="Publish this?", value="{{ inputs.topic }}"),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        [{"name": "topic", "type": "string"}],
    )
    saved = await ui_services.flows.create(owner.ctx, "Review", "", flow)
    await user.open(f"/flows/{saved.version.flow_id}/edit")
    await run_with(user, "tea")
    await eventually(lambda: status(user, "ask") == "waiting")
    await user.should_see("Publish this?", retries=SLOW)
    assert canvas(user)._nodes["ask"]["data"]["detail"] == "asks: Publish this?"
    user.find(marker="flow-canvas").trigger("node_click", {"id": "ask"})  # the question is on the node too
    await eventually(lambda: len(user.find(marker="answer-ask-approve").elements) == 2)
    user.find(marker="answer-ask-approve").click()
    await eventually(lambda: status(user, "out") == "completed")
    await user.should_see('"result": "tea"', retries=SLOW)


async def test_the_model_picker_follows_the_nodes_provider(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    ctx, flow_id = await open_editor(user, ui_services, llm_server)
    other = await ui_services.llm_stack.providers.create(
        ctx,
        ProviderInput.model_validate(
            {"name": "other", "kind": "openai_compatible", "base_url": llm_server.base_url, "models": ["m2", "m3"]}
        ),
    )
    await user.open(f"/flows/{flow_id}/edit")  # the pickers are read when the editor opens
    user.find(marker="flow-canvas").trigger("node_click", {"id": "shout"})
    await user.should_see(marker="node-model")

    def offered() -> list[str]:
        select = next(iter(user.find(marker="node-model").elements))
        return sorted(str(option) for option in select.options)  # type: ignore[attr-defined]

    assert offered() == ["m1"]
    provider = next(iter(user.find(marker="node-provider_id").elements))
    provider.value = str(other.id)  # type: ignore[attr-defined]
    # The chosen model stays shown (it is what the node holds) beside the new provider's models.
    await eventually(lambda: {"m2", "m3"} <= set(offered()))
    draft = await ui_services.drafts.open(ctx, flow_id)
    stored = next(n for n in draft.document["nodes"] if n["id"] == "shout")["data"]
    # What was chosen is stored, not every default of the form.
    assert stored == {"provider_id": str(other.id), "model": "m1", "prompt": "Shout {{ inputs.topic }}"}
