"""The runs pages as a person uses them: the list with its filter and pages, and one run followed live."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing.user import User

from core.context import Role, TenantContext
from tests.executor.conftest import document, edge, node
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.ui.conftest import scripted_provider, sign_in
from wiring.services import Services

pytestmark = pytest.mark.ui_settings(loopback_llm=True)

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

SLOW = 100  # retries of 0.1 s for what a run does in the background


def echo_flow() -> dict[str, Any]:
    return document(
        [node("in", "input"), node("out", "output", value="{{ inputs.topic }}")],
        [edge("in", "out")],
        [{"name": "topic", "type": "string"}],
    )


def review_flow() -> dict[str, Any]:
    """input -> human approval of the topic -> output: the run waits for a person."""
    return document(
        [
            node("in", "input"),
            node("review", "human", prompt="Publish {{ inputs.topic }}?", value="{{ inputs.topic }}"),
            node("out", "output", value="{{ nodes.review.output }}"),
        ],
        [edge("in", "review"), edge("review", "out")],
        [{"name": "topic", "type": "string"}],
    )


async def start(services: Services, ctx: TenantContext, name: str, flow: dict[str, Any], topic: str) -> uuid.UUID:
    """Create a flow and start a run of it; return once it ended or paused."""
    saved = await services.flows.create(ctx, name, "", flow)
    execution = await services.executions.start_run(ctx, saved.version.flow_id, {"topic": topic})
    await services.executions.wait(ctx, execution.id, 10)
    return execution.id


def element(user: User, testid: str) -> ui.element:
    found = user.find(marker=testid).elements
    assert len(found) == 1, f"{len(found)} elements with test id {testid!r}"
    return next(iter(found))


async def test_no_runs_yet_says_how_to_start_one(user: User, ui_services: Services) -> None:
    await sign_in(user, ui_services)
    await user.open("/runs")
    await user.should_see("No runs yet.")
    await user.should_see(marker="runs-to-flows")


async def test_runs_are_listed_newest_first_filtered_by_status_and_paged(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    done = await start(ui_services, owner.ctx, "Echo", echo_flow(), "first")
    waiting = await start(ui_services, owner.ctx, "Review", review_flow(), "second")
    await user.open("/runs")
    await user.should_see(marker=f"run-{done}")
    await user.should_see(marker=f"run-{waiting}")
    await user.should_see(kind=ui.badge, marker=f"run-status-{done}", content="completed")
    await user.should_see(kind=ui.badge, marker=f"run-status-{waiting}", content="waiting")
    await user.should_see("Echo · v1")

    status = element(user, "runs-status")
    assert isinstance(status, ui.select)
    status.set_value("waiting")  # the filter has an address of its own: /runs?status=waiting
    await user.should_not_see(marker=f"run-{done}", retries=SLOW)
    await user.should_see(marker=f"run-{waiting}")
    await user.open("/runs?status=failed")
    await user.should_see("No runs match.")

    sys.modules["ui.pages.runs"].PAGE_SIZE = 1  # type: ignore[attr-defined]
    await user.open("/runs")
    await user.should_see(marker=f"run-{waiting}")  # the newest
    await user.should_not_see(marker=f"run-{done}", retries=1)
    older = element(user, "runs-older")
    assert isinstance(older, ui.link)
    await user.open(str(older.props["href"]))
    await user.should_see(marker=f"run-{done}")
    await user.should_not_see(marker=f"run-{waiting}", retries=1)
    await user.should_see(marker="runs-newest")


async def test_a_waiting_run_is_approved_on_its_page_and_followed_to_the_end(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    execution_id = await start(ui_services, owner.ctx, "Review", review_flow(), "the plan")
    await user.open(f"/runs/{execution_id}")
    await user.should_see(kind=ui.badge, marker="run-status", content="waiting")
    await user.should_see("Node review asks: Publish the plan?")
    await user.should_see(marker="run-live")
    await user.should_see("execution_waiting")  # the stored part of the event log
    user.find(marker="answer-review-approve").click()
    await user.should_see(kind=ui.badge, marker="run-status", content="completed", retries=SLOW)
    await user.should_see(kind=ui.badge, marker="node-status-out", content="completed", retries=SLOW)
    outputs = element(user, "run-outputs")
    assert isinstance(outputs, ui.code)
    assert '"result": "the plan"' in outputs.content
    await user.should_see("execution_completed", retries=SLOW)  # appended live
    await user.should_not_see(marker="run-live")
    assert (await ui_services.executions.get(owner.ctx, execution_id)).status == "completed"


async def test_streamed_text_shows_under_its_node_while_the_run_goes_on(
    user: User, ui_services: Services, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_in(user, ui_services)
    provider = await scripted_provider(ui_services, owner.ctx, llm_server.base_url)
    words = " ".join(f"w{i}" for i in range(20))
    llm_server.script(Reply.say(words, drip_s=0.05))  # a chunk every 50 ms
    flow = document(
        [
            node("in", "input"),
            node("ask", "llm", provider_id=str(provider.id), prompt="Tell me about {{ inputs.topic }}"),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        [{"name": "topic", "type": "string"}],
    )
    saved = await ui_services.flows.create(owner.ctx, "Ask", "", flow)
    execution = await ui_services.executions.start_run(owner.ctx, saved.version.flow_id, {"topic": "canvas"})
    await user.open(f"/runs/{execution.id}")
    await user.should_see(marker="node-live-ask", retries=SLOW)
    live = element(user, "node-live-ask")
    assert isinstance(live, ui.label)
    for _ in range(SLOW):  # part of the reply is on the page before the run ends
        if live.text.startswith("w0 w1") and live.text != words:
            break
        await asyncio.sleep(0.1)
    assert (await ui_services.executions.get(owner.ctx, execution.id)).status == "running"
    assert live.text.startswith("w0 w1")
    await user.should_see(kind=ui.badge, marker="run-status", content="completed", retries=3 * SLOW)
    await user.should_not_see(marker="node-live-ask")  # the output has it all now
    outputs = element(user, "run-outputs")
    assert isinstance(outputs, ui.code)
    assert words in outputs.content


async def test_a_run_is_cancelled_and_retried_from_its_page(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    execution_id = await start(ui_services, owner.ctx, "Review", review_flow(), "the plan")
    await user.open(f"/runs/{execution_id}")
    await user.should_not_see(marker="run-retry", retries=1)
    user.find(marker="run-cancel").click()
    await user.should_see(kind=ui.badge, marker="run-status", content="cancelled", retries=SLOW)
    await user.should_see(marker="run-error")
    user.find(marker="run-retry").click()
    await user.should_see("retry", retries=SLOW)
    runs = (await ui_services.executions.list(owner.ctx)).items
    assert len(runs) == 2
    assert runs[0].options.get("retry_of") == str(execution_id)
    await user.should_see(marker="waiting-review", retries=SLOW)


async def test_a_viewer_watches_runs_without_controls(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    execution_id = await start(ui_services, owner.ctx, "Review", review_flow(), "the plan")
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open(f"/runs/{execution_id}")
    await user.should_see("Node review asks: Publish the plan?")
    await user.should_see("An editor of this workspace can approve or reject it.")
    for hidden in ("run-cancel", "run-retry", "answer-review-approve", "answer-review-reject"):
        await user.should_not_see(marker=hidden, retries=1)


async def test_another_workspaces_run_and_malformed_ids_are_not_found(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    theirs = await start(ui_services, other.ctx, "Theirs", echo_flow(), "secret topic")
    await sign_in(user, ui_services)
    for execution_id in (str(theirs), "12345", str(uuid.uuid4())):
        response = await user.http_client.get(f"/runs/{execution_id}")
        assert response.status_code == 404, execution_id
        assert "not-found" in response.text
        assert "secret topic" not in response.text
    response = await user.http_client.get("/runs?before=yesterday&status=bogus")
    assert response.status_code == 200  # a malformed filter or page key shows the first page
