"""The inbox as a person uses it: what waits for them, answered in place (approve, edit, reject)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from nicegui import ui
from nicegui.testing.user import User

from core.context import Role, TenantContext
from core.executions import TERMINAL_STATUSES, ExecutionRecord
from executor.reuse import RunOptions
from tests.executor.conftest import document, edge, node
from tests.ui.conftest import sign_in
from ui.layout import NAV_SECTIONS
from wiring.services import Services

SLOW = 100  # retries of 0.1 s for what a run does in the background


def review_flow(**human: Any) -> dict[str, Any]:
    """input -> human approval of `plan` -> output: the run waits for a person."""
    human = {"prompt": "Publish {{ inputs.plan }}?", "value": "{{ inputs.plan }}", **human}
    return document(
        [
            node("in", "input"),
            node("review", "human", **human),
            node("out", "output", value="{{ nodes.review.output }}"),
        ],
        [edge("in", "review"), edge("review", "out")],
        [{"name": "plan", "type": "string"}],
    )


async def waiting_run(
    services: Services, ctx: TenantContext, plan: str = "the plan", *, name: str = "Review", **human: Any
) -> uuid.UUID:
    """Start a run of a review flow and return once it waits at the human node."""
    saved = await services.flows.create(ctx, name, "", review_flow(**human))
    execution = await services.executions.start_run(ctx, saved.version.flow_id, {"plan": plan})
    record = await services.executions.wait(ctx, execution.id, 10)
    assert record.status == "waiting"
    return execution.id


async def finished(services: Services, ctx: TenantContext, execution_id: uuid.UUID) -> ExecutionRecord:
    """The run once it has ended (it goes on in the background after an answer)."""
    for _ in range(SLOW):
        record = await services.executions.get(ctx, execution_id)
        if record.status in TERMINAL_STATUSES:
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {execution_id} did not end; it is {record.status}")


def element(user: User, testid: str) -> ui.element:
    found = user.find(marker=testid).elements
    assert len(found) == 1, f"{len(found)} elements with test id {testid!r}"
    return next(iter(found))


def set_text(user: User, testid: str, text: str) -> None:
    user.find(marker=testid).clear().type(text)


async def test_an_empty_inbox_says_what_puts_runs_there(user: User, ui_services: Services) -> None:
    await sign_in(user, ui_services)
    await user.open("/inbox")
    await user.should_see(marker="inbox-empty")
    await user.should_see("Nothing is waiting for you")
    await user.should_see("human approval node")
    await user.should_see(kind=ui.label, content="Inbox")  # in the navigation, right after Runs
    build = [item.target for item in dict(NAV_SECTIONS)["Build"]]
    assert build[build.index("/runs") + 1] == "/inbox"


async def test_a_waiting_run_is_listed_with_its_question_and_links(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    execution_id = await waiting_run(ui_services, owner.ctx)
    record = await ui_services.executions.get(owner.ctx, execution_id)
    await user.open("/inbox")
    await user.should_see(marker=f"inbox-{execution_id}")
    with user.scope(marker=f"inbox-{execution_id}"):
        await user.should_see("Review · v1")
        await user.should_see("run started by you")
        await user.should_see("Node review asks: Publish the plan?")
        value = element(user, "answer-review-value")
        assert isinstance(value, ui.label)
        assert value.text == "the plan"
        for control in ("approve", "edit", "reject"):
            await user.should_see(marker=f"answer-review-{control}")
        run_link = element(user, f"inbox-run-{execution_id}")
        editor_link = element(user, f"inbox-editor-{execution_id}")
    assert isinstance(run_link, ui.link)
    assert isinstance(editor_link, ui.link)
    assert run_link.props["href"] == f"/runs/{execution_id}"
    assert editor_link.props["href"] == f"/flows/{record.flow_id}/edit?run={execution_id}"
    await user.should_not_see(marker="inbox-empty", retries=1)


async def test_approve_resumes_the_run_and_it_leaves_the_inbox(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    execution_id = await waiting_run(ui_services, owner.ctx)
    await user.open("/inbox")
    user.find(marker="answer-review-approve").click()
    await user.should_see(marker="inbox-empty", retries=SLOW)
    await user.should_not_see(marker=f"inbox-{execution_id}")
    record = await finished(ui_services, owner.ctx, execution_id)
    assert record.status == "completed"
    assert record.outputs == {"result": "the plan"}


async def test_edit_completes_the_run_with_the_new_value(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    execution_id = await waiting_run(ui_services, owner.ctx)
    await user.open("/inbox")
    await user.should_not_see(marker="answer-review-edit-value", retries=1)  # until Edit opens it
    user.find(marker="answer-review-edit").click()
    box = element(user, "answer-review-edit-value")
    assert isinstance(box, ui.textarea)
    assert box.value == "the plan"  # prefilled with the value under review
    set_text(user, "answer-review-edit-value", "the better plan")
    user.find(marker="answer-review-edit-confirm").click()
    await user.should_see(marker="inbox-empty", retries=SLOW)
    record = await finished(ui_services, owner.ctx, execution_id)
    assert record.status == "completed"
    assert record.runs_by_node()["review"].output == "the better plan"
    assert record.outputs == {"result": "the better plan"}


async def test_an_edited_json_value_must_parse_before_it_is_sent(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    flow = document(
        [node("in", "input"), node("review", "human", value="{{ inputs.plan }}"), node("out", "output")],
        [edge("in", "review"), edge("review", "out")],
        [{"name": "plan", "type": "object"}],
    )
    saved = await ui_services.flows.create(owner.ctx, "Plan", "", flow)
    started = await ui_services.executions.start_run(owner.ctx, saved.version.flow_id, {"plan": {"steps": 2}})
    await ui_services.executions.wait(owner.ctx, started.id, 10)
    await user.open("/inbox")
    user.find(marker="answer-review-edit").click()
    box = element(user, "answer-review-edit-value")
    assert isinstance(box, ui.textarea)
    assert '"steps": 2' in str(box.value)
    set_text(user, "answer-review-edit-value", "{steps: 3")
    user.find(marker="answer-review-edit-confirm").click()
    await user.should_see(marker="answer-review-edit-error")
    await user.should_see("its replacement must be too")
    assert (await ui_services.executions.get(owner.ctx, started.id)).status == "waiting"  # nothing was sent
    set_text(user, "answer-review-edit-value", '{"steps": 3}')
    user.find(marker="answer-review-edit-confirm").click()
    await user.should_see(marker="inbox-empty", retries=SLOW)
    record = await finished(ui_services, owner.ctx, started.id)
    assert record.runs_by_node()["review"].output == {"steps": 3}


async def test_reject_with_a_reason_ends_the_run_with_it(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    execution_id = await waiting_run(ui_services, owner.ctx)
    await user.open("/inbox")
    user.find(marker="answer-review-reject").click()
    set_text(user, "answer-review-reject-reason", "too vague")
    user.find(marker="answer-review-reject-confirm").click()
    await user.should_see(marker="inbox-empty", retries=SLOW)
    record = await finished(ui_services, owner.ctx, execution_id)
    assert record.status == "failed"
    assert "too vague" in (record.error or "")


async def test_a_node_without_edit_offers_no_edit(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    await waiting_run(ui_services, owner.ctx, allow_edit=False)
    await user.open("/inbox")
    await user.should_see(marker="answer-review-approve")
    await user.should_not_see(marker="answer-review-edit", retries=1)


async def test_an_answer_given_elsewhere_first_is_reported_once(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    execution_id = await waiting_run(ui_services, owner.ctx)
    await user.open("/inbox")
    await user.should_see(marker="answer-review-approve")
    await ui_services.executions.pauses.respond(owner.ctx, execution_id, "review", "approve")
    user.find(marker="answer-review-approve").click()
    await user.should_see(marker="inbox-empty", retries=SLOW)  # the stale question went away
    assert len(user.notify.messages) == 1, user.notify.messages
    assert str(execution_id) in user.notify.messages[0]  # the run has ended, or its node was answered


async def test_a_viewer_sees_the_question_without_buttons(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    await waiting_run(ui_services, owner.ctx)
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/inbox")
    await user.should_see("Node review asks: Publish the plan?")
    await user.should_see("An editor of this workspace can approve or reject it.")
    await user.should_see(f"run started by {owner.email}")
    for hidden in ("approve", "edit", "reject", "edit-value", "reject-reason"):
        await user.should_not_see(marker=f"answer-review-{hidden}", retries=1)


async def test_only_runs_waiting_for_a_person_of_this_workspace_are_listed(user: User, ui_services: Services) -> None:
    other = await sign_in(User(user.http_client), ui_services)
    theirs = await waiting_run(ui_services, other.ctx, "their secret plan", name="Theirs")
    owner = await sign_in(user, ui_services)
    ours = await waiting_run(ui_services, owner.ctx, "our plan")
    saved = await ui_services.flows.create(owner.ctx, "Paused", "", review_flow())
    paused = await ui_services.executions.start_run(
        owner.ctx, saved.version.flow_id, {"plan": "later"}, options=RunOptions(breakpoints=("review",))
    )
    assert (await ui_services.executions.wait(owner.ctx, paused.id, 10)).status == "waiting"
    await user.open("/inbox")
    await user.should_see(marker=f"inbox-{ours}")
    await user.should_not_see(marker=f"inbox-{theirs}", retries=1)
    await user.should_not_see("their secret plan", retries=1)
    await user.should_not_see(marker=f"inbox-{paused.id}", retries=1)  # a breakpoint asks nobody


async def test_the_newest_question_comes_first(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    first = await waiting_run(ui_services, owner.ctx, "first", name="First")
    second = await waiting_run(ui_services, owner.ctx, "second", name="Second")
    await user.open("/inbox")
    await user.should_see(marker=f"inbox-{first}")
    items = element(user, "inbox-items")
    order = [child.props.get("data-testid") for child in items.default_slot.children]
    assert order == [f"inbox-{second}", f"inbox-{first}"]
