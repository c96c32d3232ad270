"""Human approval: a run waits, durably, for a person's approve / edit / reject, or for its deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.executions import ExecutionRecord, NodeRunRecord
from core.settings import MailSettings
from tests.api.conftest import identity_settings
from tests.executor.conftest import World, document, edge, make_world, node, started_services
from tests.executor.test_execution import events_of, kinds
from tests.fixtures import smtp as _smtp
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.smtp import MailServer
from wiring.services import build_services

mail_server = _smtp.mail_server

TOPIC = [{"name": "topic", "type": "string"}]
#: A reply without token counts: the call is not priced, so LiteLLM's price list (seconds to load) stays unloaded.
NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0}


def review_flow(world: World, **review: Any) -> dict[str, Any]:
    """input -> draft (llm) -> review (human, with `review` as its data) -> out (the reviewed value)."""
    return document(
        [
            node("in", "input"),
            node("draft", "llm", provider_id=world.provider_id, prompt="Draft about {{ inputs.topic }}", stream=False),
            node("review", "human", **review),
            node("out", "output", value="{{ nodes.review.output }}"),
        ],
        [edge("in", "draft"), edge("draft", "review"), edge("review", "out")],
        TOPIC,
    )


def approval_flow(**review: Any) -> dict[str, Any]:
    """input -> review (human, reviewing a fixed value unless `review` says otherwise) -> out; no LLM."""
    return document(
        [
            node("in", "input"),
            node("review", "human", **{"value": "the plan", **review}),
            node("out", "output", value="{{ nodes.review.output }}"),
        ],
        [edge("in", "review"), edge("review", "out")],
        TOPIC,
    )


async def paused(world: World, flow: dict[str, Any]) -> ExecutionRecord:
    """Run `flow` on the topic "owls" until it pauses; the paused execution."""
    record = await world.run(flow, {"topic": "owls"})
    assert record.status == "waiting", record.error
    return record


async def respond(world: World, record: ExecutionRecord, node_id: str, action: str, **answer: Any) -> ExecutionRecord:
    """`action` by the editor at `node_id`, then the execution once it ends or pauses again."""
    await world.services.executions.pauses.respond(world.editor, record.id, node_id, action, **answer)
    return await world.services.executions.wait(world.editor, record.id, 30)


async def after_deadline(world: World, execution_id: uuid.UUID) -> ExecutionRecord:
    """Fire due deadlines until the execution stops waiting (the background poller may take the timer too)."""
    async with asyncio.timeout(10):
        while (await world.services.executions.get(world.editor, execution_id)).status == "waiting":
            await world.services.executions.pauses.fire_due()
            await asyncio.sleep(0.05)
    return await world.services.executions.wait(world.editor, execution_id, 30)


def run_of(record: ExecutionRecord, node_id: str) -> NodeRunRecord:
    return record.runs_by_node()[node_id]


# -- pausing, and continuing after a restart ----------------------------------------------------------------


async def test_a_run_waits_across_a_restart_and_an_approval_passes_the_proposal_on_without_rerunning_upstream(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    services = await started_services(tmp_path, db_url)
    try:
        world = await make_world(services, llm_server)
        llm_server.script(Reply.say("a draft about owls", **NO_USAGE))
        record = await paused(world, review_flow(world, prompt="Publish the draft about {{ inputs.topic }}?"))
    finally:
        await services.aclose()

    review = run_of(record, "review")
    assert review.status == "waiting"
    assert review.flags["waiting"] == {
        "reason": "human",
        "prompt": "Publish the draft about owls?",
        "proposal": "a draft about owls",
        "actions": ["approve", "reject", "edit"],
        "due_at": None,
        "on_timeout": None,
        "notify": [],
    }
    assert "out" not in record.runs_by_node()
    assert len(llm_server.requests) == 1

    # A new process on the same database: the paused run is still there, and an answer there continues it.
    services = await started_services(tmp_path, db_url)
    try:
        world = dataclasses.replace(world, services=services)
        assert (await services.executions.get(world.editor, record.id)).status == "waiting"

        ended = await respond(world, record, "review", "approve")

        assert ended.status == "completed", ended.error
        assert ended.outputs == {"result": "a draft about owls"}
        assert len(llm_server.requests) == 1  # the draft was not asked for again
        review = run_of(ended, "review")
        assert review.status == "completed"
        assert review.output == "a draft about owls"
        assert "waiting" not in review.flags
        response = review.flags["response"]
        assert response["action"] == "approve"
        assert response["by"] == str(world.editor.user_id)
        assert datetime.fromisoformat(response["at"])
        assert run_of(ended, "draft").attempts == 1
        events = await events_of(world, record.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        started = [str(e.node_id) for e in events if e.type == "node_started"]
        assert sorted(started) == ["draft", "in", "out", "review"]  # each node ran once, across the restart
        assert kinds(events, "review") == ["node_started", "node_waiting", "node_completed"]
        waited = kinds(events).index("execution_waiting")
        assert kinds(events)[waited - 1] == "node_waiting"
        assert kinds(events).count("execution_resumed") == 1
        assert kinds(events).index("execution_resumed") > waited
        completed = next(e for e in events if e.type == "node_completed" and e.node_id == "review")
        assert completed.data["response"]["action"] == "approve"
        assert events[-1].type == "execution_completed"
    finally:
        await services.aclose()


# -- the answers ---------------------------------------------------------------------------------------------


async def test_reject_ends_the_run_failed_with_the_reason(world: World) -> None:
    record = await paused(world, approval_flow())

    ended = await respond(world, record, "review", "reject", reason="the numbers are wrong")

    assert ended.status == "failed"
    assert ended.error is not None
    assert "the numbers are wrong" in ended.error
    assert "node 'review' failed" in ended.error
    review = run_of(ended, "review")
    assert review.status == "failed"
    assert review.flags["response"]["reason"] == "the numbers are wrong"
    assert review.flags["response"]["by"] == str(world.editor.user_id)
    assert "out" not in ended.runs_by_node()


def branching_review() -> dict[str, Any]:
    """input -> review (human, on_reject: branch) -> publish on `approved` | sent back on `rejected`."""
    return document(
        [
            node("in", "input"),
            node("review", "human", value="the plan", on_reject="branch"),
            node("publish", "output", name="published", value="{{ nodes.review.output }}"),
            node("fix", "output", name="sent_back", value="{{ nodes.review.output }}"),
        ],
        [edge("in", "review"), edge("review", "publish", "approved"), edge("review", "fix", "rejected")],
        TOPIC,
    )


async def test_with_on_reject_branch_a_rejection_takes_the_rejected_branch_and_an_approval_the_other(
    world: World,
) -> None:
    record = await paused(world, branching_review())
    assert run_of(record, "review").flags["waiting"]["actions"] == ["approve", "reject", "edit"]

    ended = await respond(world, record, "review", "reject", reason="too vague")

    assert ended.status == "completed", ended.error
    rejection = {"rejected": True, "reason": "too vague", "by": str(world.editor.user_id)}
    assert ended.outputs == {"sent_back": rejection}
    assert run_of(ended, "review").output == rejection
    assert run_of(ended, "publish").status == "skipped"
    assert run_of(ended, "fix").status == "completed"
    events = await events_of(world, record.id)
    completed = next(e for e in events if e.type == "node_completed" and e.node_id == "review")
    assert completed.data["handles"] == ["rejected"]

    approved = await respond(world, await paused(world, branching_review()), "review", "approve")

    assert approved.outputs == {"published": "the plan"}
    assert run_of(approved, "fix").status == "skipped"


async def test_edit_replaces_the_value_downstream_nodes_see(world: World) -> None:
    record = await paused(world, approval_flow())
    assert run_of(record, "review").flags["waiting"]["proposal"] == "the plan"

    ended = await respond(world, record, "review", "edit", output={"plan": "a better plan", "steps": 3})

    assert ended.status == "completed", ended.error
    assert ended.outputs == {"result": {"plan": "a better plan", "steps": 3}}
    review = run_of(ended, "review")
    assert review.output == {"plan": "a better plan", "steps": 3}
    assert review.flags["response"]["action"] == "edit"
    assert review.flags["response"]["output"] == {"plan": "a better plan", "steps": 3}


async def test_edit_is_refused_when_the_node_does_not_allow_it_or_no_value_is_given(world: World) -> None:
    locked = await paused(world, approval_flow(allow_edit=False))
    assert run_of(locked, "review").flags["waiting"]["actions"] == ["approve", "reject"]
    with pytest.raises(InvalidInput):
        await world.services.executions.pauses.respond(world.editor, locked.id, "review", "edit", output="mine")
    with pytest.raises(InvalidInput):
        await world.services.executions.pauses.respond(world.editor, locked.id, "review", "shrug")

    open_ = await paused(world, approval_flow())
    with pytest.raises(InvalidInput):
        await world.services.executions.pauses.respond(world.editor, open_.id, "review", "edit")

    # The refused answers changed nothing: both still wait, and take a proper answer.
    for record in (locked, open_):
        assert run_of(await world.services.executions.get(world.editor, record.id), "review").status == "waiting"
        ended = await respond(world, record, "review", "approve")
        assert ended.outputs == {"result": "the plan"}


# -- deadlines -----------------------------------------------------------------------------------------------


async def test_at_the_deadline_on_timeout_approve_completes_the_run_on_behalf_of_nobody_also_after_a_restart(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    services = await started_services(tmp_path, db_url)
    try:
        world = await make_world(services, llm_server)
        record = await paused(world, approval_flow(respond_within_s=0.2, on_timeout="approve"))
    finally:
        await services.aclose()
    waiting = run_of(record, "review").flags["waiting"]
    assert waiting["on_timeout"] == "approve"
    assert record.started_at is not None
    assert datetime.fromisoformat(waiting["due_at"]) > record.started_at

    # The deadline is stored: a process started after the pause fires it.
    services = await started_services(tmp_path, db_url)
    try:
        world = dataclasses.replace(world, services=services)
        ended = await after_deadline(world, record.id)

        assert ended.status == "completed", ended.error
        assert ended.outputs == {"result": "the plan"}
        response = run_of(ended, "review").flags["response"]
        assert response["action"] == "approve"
        assert response["by"] == "timeout"
    finally:
        await services.aclose()


async def test_at_the_deadline_the_default_rejects_saying_nobody_responded_in_time(world: World) -> None:
    record = await paused(world, approval_flow(respond_within_s=0.2))
    assert run_of(record, "review").flags["waiting"]["on_timeout"] == "reject"

    ended = await after_deadline(world, record.id)

    assert ended.status == "failed"
    assert ended.error is not None
    assert "nobody responded in time" in ended.error
    response = run_of(ended, "review").flags["response"]
    assert response["action"] == "reject"
    assert response["by"] == "timeout"


async def test_an_answer_before_the_deadline_stands_and_the_deadline_does_nothing_later(world: World) -> None:
    record = await paused(world, approval_flow(respond_within_s=0.5))

    ended = await respond(world, record, "review", "approve")
    await asyncio.sleep(0.6)  # past the deadline (not an assertion: the deadline must find nothing to do)

    assert await world.services.executions.pauses.fire_due() == 0
    again = await world.services.executions.get(world.editor, record.id)
    assert again.status == "completed"
    assert again.outputs == ended.outputs
    assert run_of(again, "review").flags["response"]["by"] == str(world.editor.user_id)


# -- several people ------------------------------------------------------------------------------------------


def two_reviews() -> dict[str, Any]:
    """input -> (legal, brand): two human nodes side by side, each with its own output."""
    return document(
        [
            node("in", "input"),
            node("legal", "human", value="contract"),
            node("brand", "human", value="logo"),
            node("legal_out", "output", name="legal", value="{{ nodes.legal.output }}"),
            node("brand_out", "output", name="brand", value="{{ nodes.brand.output }}"),
        ],
        [edge("in", "legal"), edge("in", "brand"), edge("legal", "legal_out"), edge("brand", "brand_out")],
        TOPIC,
    )


async def test_two_parallel_human_nodes_each_wait_for_their_own_answer(world: World) -> None:
    record = await paused(world, two_reviews())
    assert run_of(record, "legal").status == "waiting"
    assert run_of(record, "brand").status == "waiting"

    first = await respond(world, record, "legal", "approve")

    assert first.status == "waiting"
    assert run_of(first, "legal").status == "completed"
    assert run_of(first, "legal_out").status == "completed"
    assert run_of(first, "legal_out").output == "contract"
    assert run_of(first, "brand").status == "waiting"
    assert "brand_out" not in first.runs_by_node()
    events = await events_of(world, record.id)
    assert events[-1].type == "execution_waiting"

    ended = await respond(world, record, "brand", "edit", output="new logo")

    assert ended.status == "completed", ended.error
    assert ended.outputs == {"legal": "contract", "brand": "new logo"}
    events = await events_of(world, record.id)
    assert kinds(events).count("execution_waiting") == 2
    assert kinds(events).count("execution_resumed") == 2
    started = [str(e.node_id) for e in events if e.type == "node_started"]
    assert sorted(started) == ["brand", "brand_out", "in", "legal", "legal_out"]


async def test_an_answer_while_another_branch_still_runs_is_taken_by_the_run_without_a_pause(world: World) -> None:
    flow = document(
        [
            node("in", "input"),
            node("review", "human", value="the plan"),
            node("reviewed", "output", name="reviewed", value="{{ nodes.review.output }}"),
            node("slow", "tool", tool_id=world.slow_tool, arguments={"seconds": 1.0}),
            node("slept", "output", name="slept", value="{{ nodes.slow.output.slept }}"),
        ],
        [edge("in", "review"), edge("review", "reviewed"), edge("in", "slow"), edge("slow", "slept")],
        TOPIC,
    )
    saved = await world.flow(flow)
    started = await world.services.executions.start_run(world.editor, saved.version.flow_id, {"topic": "owls"})
    record = await until_node_waits(world, started.id, "review")
    assert record.status == "running"  # the slow branch goes on

    await world.services.executions.pauses.respond(world.editor, started.id, "review", "approve")
    ended = await world.services.executions.wait(world.editor, started.id, 30)

    assert ended.status == "completed", ended.error
    assert ended.outputs == {"reviewed": "the plan", "slept": 1.0}
    events = await events_of(world, started.id)
    assert "execution_waiting" not in kinds(events)
    done = {e.node_id: e.seq for e in events if e.type == "node_completed"}
    assert done["reviewed"] < done["slow"]  # the answer went on at once, not after the slow branch


async def until_node_waits(world: World, execution_id: uuid.UUID, node_id: str) -> ExecutionRecord:
    """The execution once `node_id`'s stored node run is waiting (polling the store)."""
    async with asyncio.timeout(10):
        while True:
            record = await world.services.executions.get(world.editor, execution_id)
            run = record.runs_by_node().get(node_id)
            if run is not None and run.status == "waiting":
                return record
            await asyncio.sleep(0.02)


async def test_a_run_that_cannot_continue_after_an_answer_fails_and_its_other_waiting_node_takes_no_more_answers(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    services = await started_services(tmp_path, db_url)
    try:
        world = await make_world(services, llm_server)
        flow = document(
            [
                node("in", "input"),
                node("legal", "human", value="contract"),
                node("brand", "human", value="logo"),
                node("shout", "tool", tool_id=world.shout_tool, arguments={"text": "{{ nodes.legal.output }}"}),
            ],
            [edge("in", "legal"), edge("in", "brand"), edge("legal", "shout")],
            TOPIC,
        )
        record = await paused(world, flow)
        await services.tools.delete(world.editor, uuid.UUID(world.shout_tool))  # the flow is no longer valid
    finally:
        await services.aclose()

    services = await started_services(tmp_path, db_url)  # days later, in another process
    try:
        world = dataclasses.replace(world, services=services)
        ended = await respond(world, record, "legal", "approve")

        assert ended.status == "failed"
        assert ended.error is not None
        assert "could not resume" in ended.error
        with pytest.raises(Conflict):  # the run has ended
            await services.executions.pauses.respond(world.editor, record.id, "brand", "approve")
        after = await services.executions.get(world.editor, record.id)
        assert after.status == "failed"
        paused_states = {"waiting", "answered", "released"}
        assert {run.node_id: run.status for run in after.node_runs if run.status in paused_states} == {}
    finally:
        await services.aclose()


# -- who may answer what, and when ---------------------------------------------------------------------------


async def test_a_response_to_a_node_that_is_not_waiting_is_a_conflict(world: World) -> None:
    pauses = world.services.executions.pauses
    record = await paused(world, two_reviews())

    await respond(world, record, "legal", "approve")
    with pytest.raises(Conflict):  # answered already (the run still waits, for the other node)
        await pauses.respond(world.editor, record.id, "legal", "reject", reason="second thoughts")
    with pytest.raises(Conflict):  # a node that is not a human node
        await pauses.respond(world.editor, record.id, "in", "approve")
    with pytest.raises(Conflict):  # a node not reached yet
        await pauses.respond(world.editor, record.id, "brand_out", "approve")
    with pytest.raises(Conflict):  # no such node
        await pauses.respond(world.editor, record.id, "nowhere", "approve")
    still = await world.services.executions.get(world.editor, record.id)
    assert still.status == "waiting"
    assert run_of(still, "legal").output == "contract"
    assert run_of(still, "legal").flags["response"]["action"] == "approve"

    await pauses.respond(world.editor, record.id, "brand", "approve")
    with pytest.raises(Conflict):  # answered a moment ago, whether or not the run has continued yet
        await pauses.respond(world.editor, record.id, "brand", "reject", reason="too late")
    ended = await world.services.executions.wait(world.editor, record.id, 30)
    assert ended.status == "completed"
    assert ended.outputs == {"legal": "contract", "brand": "logo"}
    with pytest.raises(Conflict):  # the run has ended
        await pauses.respond(world.editor, record.id, "brand", "approve")


async def test_a_viewer_cannot_respond(world: World) -> None:
    record = await paused(world, approval_flow())

    with pytest.raises(PermissionDenied):
        await world.services.executions.pauses.respond(world.viewer, record.id, "review", "approve")

    seen = await world.services.executions.get(world.viewer, record.id)  # a viewer sees what waits
    assert seen.status == "waiting"
    assert run_of(seen, "review").status == "waiting"


async def test_another_tenant_can_neither_see_nor_answer_a_waiting_run(world: World) -> None:
    other = await make_world(world.services, world.server, slug="other")
    record = await paused(world, approval_flow())

    with pytest.raises(NotFound):
        await other.services.executions.get(other.editor, record.id)
    with pytest.raises(NotFound):
        await other.services.executions.pauses.respond(other.editor, record.id, "review", "approve")

    assert (await world.services.executions.get(world.editor, record.id)).status == "waiting"
    ended = await respond(world, record, "review", "approve")
    assert ended.status == "completed"


async def test_waiting_runs_are_listed_for_their_tenant_only(world: World) -> None:
    other = await make_world(world.services, world.server, slug="other")
    record = await paused(world, approval_flow())
    done = await world.run(document([node("in", "input"), node("out", "output", value="x")], [edge("in", "out")]))
    assert done.status == "completed"

    listed = await world.services.executions.list(world.editor, status="waiting")
    assert [item.id for item in listed.items] == [record.id]
    asking = listed.items[0].node_runs  # the inbox shows what each paused run asks
    assert [(run.node_id, run.flags["waiting"]["proposal"]) for run in asking] == [("review", "the plan")]
    assert (await world.services.executions.list(world.editor)).items[0].node_runs == []  # the finished run
    assert (await other.services.executions.list(other.editor, status="waiting")).items == []

    await respond(world, record, "review", "approve")
    assert (await world.services.executions.list(world.editor, status="waiting")).items == []


# -- mail ----------------------------------------------------------------------------------------------------


@pytest.fixture
async def mailing_world(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer, mail_server: MailServer
) -> AsyncIterator[World]:
    """A world whose SMTP_* settings point at the loopback mail server."""
    settings = identity_settings(tmp_path, db_url)
    settings.llm.allow_private_endpoints = True
    settings.mail = MailSettings(
        host=mail_server.host, port=mail_server.port, sender="CrewCanvas <noreply@example.com>", security="none"
    )
    services = build_services(settings)
    await services.start()
    try:
        yield await make_world(services, llm_server)
    finally:
        await services.aclose()


async def test_the_people_to_notify_get_one_mail_with_the_prompt_when_their_node_starts_waiting(
    mailing_world: World, mail_server: MailServer
) -> None:
    world = mailing_world
    flow = document(
        [
            node("in", "input"),
            node("legal", "human", prompt="Sign the {{ inputs.topic }} contract?", notify=["ops@example.com"]),
            node("brand", "human", prompt="Like the {{ inputs.topic }} logo?", notify=["brand@example.com"]),
        ],
        [edge("in", "legal"), edge("in", "brand")],
        TOPIC,
    )
    record = await paused(world, flow)
    assert run_of(record, "legal").flags["waiting"]["notify"] == ["ops@example.com"]

    await mailed(mail_server, "ops@example.com")
    await mailed(mail_server, "brand@example.com")
    again = await respond(world, record, "legal", "approve")
    assert again.status == "waiting"  # paused again, still for `brand`: its people are not mailed twice
    ended = await respond(world, record, "brand", "approve")
    assert ended.status == "completed"
    await world.services.aclose()  # waits for mail still being sent: nothing more may come

    [mail] = mail_server.to("ops@example.com")
    assert "Sign the owls contract?" in mail.text()
    assert str(record.id) in mail.text()
    [mail] = mail_server.to("brand@example.com")
    assert "Like the owls logo?" in mail.text()
    assert len(mail_server.messages) == 2


async def mailed(server: MailServer, address: str) -> None:
    """Until a message to `address` has arrived (mail goes out in the background)."""
    async with asyncio.timeout(10):
        while True:
            if server.to(address):
                return
            await asyncio.sleep(0.05)


# -- cancelling ----------------------------------------------------------------------------------------------


async def test_cancelling_a_run_that_waits_for_a_person_cancels_it_and_its_human_node(world: World) -> None:
    record = await paused(world, approval_flow(respond_within_s=0.5))

    cancelled = await world.services.executions.cancel(world.editor, record.id)

    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    review = run_of(cancelled, "review")
    assert review.status == "cancelled"
    assert "waiting" not in review.flags
    events = await events_of(world, record.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "execution_cancelled"
    with pytest.raises(Conflict):
        await world.services.executions.pauses.respond(world.editor, record.id, "review", "approve")
    await asyncio.sleep(0.6)  # past the deadline, which went with the run
    assert await world.services.executions.pauses.fire_due() == 0
    assert (await world.services.executions.get(world.editor, record.id)).status == "cancelled"


async def test_a_human_node_inside_a_subflow_fails_the_subflow_node_saying_why(world: World) -> None:
    child = await world.flow(approval_flow(), name="needs_approval")
    parent = document(
        [
            node("in", "input"),
            node("sub", "subflow", flow_id=str(child.version.flow_id), version=1, inputs={"topic": "x"}),
        ],
        [edge("in", "sub")],
    )
    ended = await world.run(parent)

    assert ended.status == "failed"
    assert "pauses work only in the flow a run starts with" in (ended.error or "")
    children = (await world.services.executions.list(world.editor, flow_id=child.version.flow_id)).items
    assert [run.status for run in children] == ["cancelled"]  # the child does not wait forever
