"""Debugging runs: run from a node, overrides, pinned outputs, retry, breakpoints with step and resume."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.errors import Conflict, InvalidInput
from core.executions import ExecutionRecord
from executor.reuse import RunOptions
from tests.executor.conftest import World, document, edge, make_world, node, started_services
from tests.executor.test_execution import events_of, kinds
from tests.fixtures.llm_server import Reply, ScriptedLLMServer

TOPIC = [{"name": "topic", "type": "string"}]


def chain(world: World, *, pin_draft: Any = None) -> dict[str, Any]:
    """input -> draft (llm) -> polish (llm) -> out: each LLM reply is scripted per test."""
    draft = node("draft", "llm", provider_id=world.provider_id, prompt="Draft about {{ inputs.topic }}", stream=False)
    if pin_draft is not None:
        draft["pinned_output"] = pin_draft
    return document(
        [
            node("in", "input"),
            draft,
            node(
                "polish", "llm", provider_id=world.provider_id, prompt="Polish: {{ nodes.draft.output }}", stream=False
            ),
            node("out", "output", value="{{ nodes.polish.output }}"),
        ],
        [edge("in", "draft"), edge("draft", "polish"), edge("polish", "out")],
        TOPIC,
    )


async def start(
    world: World, flow_id: uuid.UUID, options: RunOptions | None = None, *, version: int | None = None
) -> ExecutionRecord:
    started = await world.services.executions.start_run(
        world.editor, flow_id, {"topic": "owls"}, version=version, options=options
    )
    return await world.services.executions.wait(world.editor, started.id, 30)


def runs(execution: ExecutionRecord) -> dict[str, Any]:
    return execution.runs_by_node()


def prompts(world: World) -> list[str]:
    """The user message of every request the scripted LLM server got, in order."""
    return [request.json["messages"][-1]["content"] for request in world.server.requests]


async def test_run_from_a_node_reuses_upstream_outputs_without_calling_their_llm_again(world: World) -> None:
    saved = await world.flow(chain(world))
    world.server.script(Reply.say("first draft"), Reply.say("first polish"))
    first = await start(world, saved.version.flow_id)
    assert first.outputs == {"result": "first polish"}
    assert len(world.server.requests) == 2

    world.server.script(Reply.say("second polish"))
    again = await start(world, saved.version.flow_id, RunOptions(from_node="polish", reuse_execution=first.id))

    assert again.status == "completed", again.error
    assert again.outputs == {"result": "second polish"}
    assert len(world.server.requests) == 3  # only `polish` asked the model
    assert prompts(world)[-1] == "Polish: first draft"
    reused = runs(again)["draft"]
    assert (reused.status, reused.output, reused.flags["reused_from"]) == ("completed", "first draft", str(first.id))
    assert "reused_from" not in runs(again)["polish"].flags
    assert again.options["from_node"] == "polish"
    assert again.options["reuse_execution"] == str(first.id)
    events = await events_of(world, again.id)
    assert kinds(events, "draft") == ["node_completed"]  # announced, never started
    assert "node_started" in kinds(events, "polish")


async def test_run_from_without_an_execution_reuses_the_flows_latest_run(world: World) -> None:
    saved = await world.flow(chain(world))
    world.server.script(Reply.say("d1"), Reply.say("p1"))
    first = await start(world, saved.version.flow_id)
    again = await start(world, saved.version.flow_id, RunOptions(from_node="polish"))
    assert again.options["reuse_execution"] == str(first.id)
    assert runs(again)["draft"].output == "d1"


async def test_a_missing_upstream_output_names_the_node_to_run_from(world: World) -> None:
    saved = await world.flow(chain(world))
    world.server.script(Reply.error(400, "bad request"))
    failed = await start(world, saved.version.flow_id)
    assert failed.status == "failed"
    count = len(world.server.requests)

    with pytest.raises(InvalidInput) as caught:
        await start(world, saved.version.flow_id, RunOptions(from_node="polish", reuse_execution=failed.id))
    message = str(caught.value)
    assert "'draft'" in message
    assert "run from 'draft'" in message
    assert caught.value.problems[0].field == "from_node"
    assert len(world.server.requests) == count  # nothing ran

    with pytest.raises(InvalidInput, match="not in this version"):
        await start(world, saved.version.flow_id, RunOptions(from_node="nope", reuse_execution=failed.id))


async def test_an_override_fills_in_a_missing_upstream_output_and_is_marked(world: World) -> None:
    saved = await world.flow(chain(world))
    world.server.script(Reply.error(400, "bad request"))
    failed = await start(world, saved.version.flow_id)
    world.server.script(Reply.say("polished"))
    options = RunOptions(from_node="polish", reuse_execution=failed.id, overrides={"draft": "hand-written draft"})
    fixed = await start(world, saved.version.flow_id, options)
    assert fixed.status == "completed", fixed.error
    assert prompts(world)[-1] == "Polish: hand-written draft"
    assert runs(fixed)["draft"].flags["overridden"] is True
    assert fixed.options["overrides"] == {"draft": "hand-written draft"}


async def test_overrides_replace_a_nodes_output_in_a_full_run(world: World) -> None:
    saved = await world.flow(chain(world))
    world.server.script(Reply.say("polished"))
    ended = await start(world, saved.version.flow_id, RunOptions(overrides={"draft": "given draft"}))
    assert ended.status == "completed", ended.error
    assert len(world.server.requests) == 1  # draft never asked the model
    assert prompts(world) == ["Polish: given draft"]
    assert runs(ended)["draft"].flags == {"overridden": True}
    events = await events_of(world, ended.id)
    pinned = next(e for e in events if e.node_id == "draft")
    assert (pinned.type, pinned.data["source"], pinned.data["output"]) == ("node_pinned", "override", "given draft")


async def test_pinned_outputs_are_used_only_in_runs_that_ask_for_pins(world: World) -> None:
    saved = await world.flow(chain(world, pin_draft="pinned draft"))
    world.server.script(Reply.say("fresh draft"), Reply.say("p1"))
    plain = await start(world, saved.version.flow_id)
    assert prompts(world) == ["Draft about owls", "Polish: fresh draft"]  # the program API ignores pins
    assert "pinned" not in runs(plain)["draft"].flags

    world.server.script(Reply.say("p2"))
    pinned = await start(world, saved.version.flow_id, RunOptions(use_pins=True))
    assert pinned.status == "completed", pinned.error
    assert prompts(world)[2:] == ["Polish: pinned draft"]
    assert runs(pinned)["draft"].flags == {"pinned": True}
    assert runs(pinned)["draft"].output == "pinned draft"
    assert "node_pinned" in kinds(await events_of(world, pinned.id), "draft")


async def test_a_pinned_condition_takes_the_branch_its_output_says(world: World) -> None:
    flow = document(
        [
            node("in", "input"),
            {**node("check", "condition", expression="1 == 2"), "pinned_output": {"result": True}},
            node("yes", "output", name="yes", value="took true"),
            node("no", "output", name="no", value="took false"),
        ],
        [edge("in", "check"), edge("check", "yes", "true"), edge("check", "no", "false")],
        TOPIC,
    )
    saved = await world.flow(flow)
    pinned = await start(world, saved.version.flow_id, RunOptions(use_pins=True))
    assert pinned.outputs == {"yes": "took true"}
    assert runs(pinned)["no"].status == "skipped"
    plain = await start(world, saved.version.flow_id)
    assert plain.outputs == {"no": "took false"}


async def test_retry_on_the_same_version_reruns_only_the_failed_node_and_links_back(world: World) -> None:
    saved = await world.flow(chain(world))
    world.server.script(Reply.say("good draft"), Reply.error(400, "polish broke"))
    failed = await start(world, saved.version.flow_id)
    assert failed.status == "failed"
    world.server.script(Reply.say("polished at last"))

    retried = await world.services.executions.retry(world.editor, failed.id)
    ended = await world.services.executions.wait(world.editor, retried.id, 30)

    assert ended.status == "completed", ended.error
    assert ended.outputs == {"result": "polished at last"}
    assert prompts(world)[-1] == "Polish: good draft"
    assert len(world.server.requests) == 3
    assert ended.options["retry_of"] == str(failed.id)
    assert ended.version == failed.version
    assert runs(ended)["draft"].flags["reused_from"] == str(failed.id)


async def test_retry_on_the_latest_version_runs_what_changed(world: World) -> None:
    saved = await world.flow(chain(world))
    flow_id = saved.version.flow_id
    world.server.script(Reply.say("good draft"), Reply.error(400, "polish broke"))
    failed = await start(world, flow_id)
    fixed = chain(world)
    fixed["nodes"][2]["data"]["prompt"] = "Polish carefully: {{ nodes.draft.output }}"
    await world.services.flows.save(world.editor, flow_id, fixed)
    world.server.script(Reply.say("careful polish"))

    retried = await world.services.executions.retry(world.editor, failed.id, latest=True)
    ended = await world.services.executions.wait(world.editor, retried.id, 30)

    assert ended.status == "completed", ended.error
    assert ended.version == 2
    assert prompts(world)[-1] == "Polish carefully: good draft"  # the new version's node, the old draft
    assert len(world.server.requests) == 3


async def test_only_ended_unsuccessful_runs_can_be_retried(world: World) -> None:
    saved = await world.flow(chain(world))
    done = await start(world, saved.version.flow_id)
    assert done.status == "completed"
    with pytest.raises(Conflict, match="only a failed, cancelled or interrupted run"):
        await world.services.executions.retry(world.editor, done.id)


def diamond(world: World) -> dict[str, Any]:
    """in -> a -> (b, c) -> out: three tool nodes, so no LLM replies are needed."""
    shout = {"tool_id": world.shout_tool}
    return document(
        [
            node("in", "input"),
            node("a", "tool", **shout, arguments={"text": "a"}),
            node("b", "tool", **shout, arguments={"text": "{{ nodes.a.output.loud }}b"}),
            node("c", "tool", **shout, arguments={"text": "{{ nodes.a.output.loud }}c"}),
            node("out", "output", value="{{ nodes.b.output.loud }}+{{ nodes.c.output.loud }}"),
        ],
        [edge("in", "a"), edge("a", "b"), edge("a", "c"), edge("b", "out"), edge("c", "out")],
        TOPIC,
    )


async def test_a_breakpoint_pauses_before_its_node_and_resume_finishes_the_run(world: World) -> None:
    saved = await world.flow(diamond(world))
    paused = await start(world, saved.version.flow_id, RunOptions(breakpoints=("b",)))

    assert paused.status == "waiting"
    states = {run.node_id: run.status for run in paused.node_runs}
    assert states["a"] == "completed"
    assert states["c"] == "completed"
    assert states["b"] == "waiting"
    assert runs(paused)["b"].attempts == 0  # paused before it ran
    assert "out" not in states
    events = await events_of(world, paused.id)
    assert events[-1].type == "execution_waiting"
    assert next(e for e in events if e.type == "node_waiting").data["reason"] == "breakpoint"

    await world.services.executions.pauses.resume(world.editor, paused.id)
    ended = await world.services.executions.wait(world.editor, paused.id, 30)

    assert ended.status == "completed", ended.error
    assert ended.outputs == {"result": "AB+AC"}
    assert runs(ended)["a"].attempts == 1  # nothing that completed ran again
    events = await events_of(world, paused.id)
    assert kinds(events).count("execution_resumed") == 1
    started = [e.node_id for e in events if e.type == "node_started"]
    assert sorted(started) == ["a", "b", "c", "in", "out"]  # each node ran once, across the pause
    with pytest.raises(Conflict):
        await world.services.executions.pauses.resume(world.editor, paused.id)


async def test_step_runs_the_next_nodes_and_pauses_again(world: World) -> None:
    saved = await world.flow(diamond(world))
    paused = await start(world, saved.version.flow_id, RunOptions(breakpoints=("a",)))
    assert {r.node_id for r in paused.node_runs if r.status == "waiting"} == {"a"}

    await world.services.executions.pauses.resume(world.editor, paused.id, step=True)
    stepped = await wait_for_status(world, paused.id, "waiting", after_resumes=1)
    assert runs(stepped)["a"].status == "completed"
    assert {r.node_id for r in stepped.node_runs if r.status == "waiting"} == {"b", "c"}

    await world.services.executions.pauses.resume(world.editor, paused.id, step=True)
    stepped = await wait_for_status(world, paused.id, "waiting", after_resumes=2)
    assert {r.node_id for r in stepped.node_runs if r.status == "waiting"} == {"out"}

    await world.services.executions.pauses.resume(world.editor, paused.id)
    ended = await world.services.executions.wait(world.editor, paused.id, 30)
    assert ended.status == "completed"
    assert ended.outputs == {"result": "AB+AC"}


async def test_cancel_while_paused_ends_the_run_and_its_waiting_nodes(world: World) -> None:
    saved = await world.flow(diamond(world))
    paused = await start(world, saved.version.flow_id, RunOptions(breakpoints=("b", "c")))
    assert paused.status == "waiting"

    cancelled = await world.services.executions.cancel(world.editor, paused.id)

    assert cancelled.status == "cancelled"
    assert runs(cancelled)["b"].status == "cancelled"
    assert runs(cancelled)["c"].status == "cancelled"
    events = await events_of(world, paused.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "execution_cancelled"
    with pytest.raises(Conflict):
        await world.services.executions.pauses.resume(world.editor, paused.id)


async def wait_for_status(world: World, execution_id: uuid.UUID, status: str, *, after_resumes: int) -> ExecutionRecord:
    """The execution once it is in `status` after `after_resumes` resumptions (polling the store)."""
    async with asyncio.timeout(30):
        while True:
            events = await events_of(world, execution_id)
            resumes = kinds(events).count("execution_resumed")
            record = await world.services.executions.get(world.editor, execution_id)
            if resumes >= after_resumes and record.status == status and events[-1].type == f"execution_{status}":
                return record
            await asyncio.sleep(0.05)


async def test_a_response_given_to_another_replica_reaches_the_replica_running_the_flow(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    """Two app processes on one database and Redis: B stores the answer and wakes A, which runs the flow."""
    first = await started_services(tmp_path, db_url, "redis")
    second = await started_services(tmp_path, db_url, "redis")
    try:
        world = await make_world(first, llm_server)
        flow = document(
            [
                node("in", "input"),
                node("ask", "human", prompt="Go on?"),
                node("after", "output", name="after", value="{{ nodes.ask.output }}"),
                node("wait", "tool", tool_id=world.slow_tool, arguments={"seconds": 3}),
            ],
            [edge("in", "ask"), edge("ask", "after"), edge("in", "wait")],
        )
        saved = await world.flow(flow)
        started = await first.executions.start_run(world.editor, saved.version.flow_id, {})
        await until_node(world, started.id, "ask", "waiting")

        await second.executions.pauses.respond(world.editor, started.id, "ask", "edit", output="from B")

        await until_node(world, started.id, "after", "completed")
        assert runs(await first.executions.get(world.editor, started.id))["wait"].status == "running"
        ended = await first.executions.wait(world.editor, started.id, 30)
        assert ended.outputs == {"after": "from B"}
    finally:
        await second.aclose()
        await first.aclose()


async def test_a_stored_answer_whose_process_stopped_before_waking_the_run_is_taken_up_on_restart(
    db_url: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    services = await started_services(tmp_path, db_url)
    try:
        world = await make_world(services, llm_server)
        flow = document(
            [node("in", "input"), node("ask", "human"), node("out", "output", value="{{ nodes.ask.output }}")],
            [edge("in", "ask"), edge("ask", "out")],
        )
        paused = await world.run(flow)
        assert paused.status == "waiting"
        # The answer is stored, as `respond` stores it, but the process stops before it wakes the run.
        response = {"action": "edit", "by": str(world.editor.user_id), "at": "2026-12-03T00:00:00+00:00", "output": 7}
        stored = await services.executions.store.answer_node(
            "acme", paused.id, "ask", "answered", {"response": response}
        )
        assert stored is None
    finally:
        await services.aclose()

    restarted = await started_services(tmp_path, db_url)
    try:
        ended = await restarted.executions.wait(world.editor, paused.id, 30)
        assert ended.status == "completed", ended.error
        assert ended.outputs == {"result": 7}
    finally:
        await restarted.aclose()


async def until_node(world: World, execution_id: uuid.UUID, node_id: str, status: str) -> None:
    """Return once the node's stored run has `status` (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            run = runs(await world.services.executions.get(world.editor, execution_id)).get(node_id)
            if run is not None and run.status == status:
                return
            await asyncio.sleep(0.05)


async def test_a_breakpoint_on_a_pinned_node_pauses_before_the_pin_is_used(world: World) -> None:
    saved = await world.flow(chain(world, pin_draft="pinned draft"))
    world.server.script(Reply.say("polished"))
    paused = await start(world, saved.version.flow_id, RunOptions(use_pins=True, breakpoints=("draft",)))
    assert runs(paused)["draft"].status == "waiting"

    await world.services.executions.pauses.resume(world.editor, paused.id)
    ended = await world.services.executions.wait(world.editor, paused.id, 30)
    assert ended.status == "completed", ended.error
    assert runs(ended)["draft"].flags == {"pinned": True}
    assert prompts(world) == ["Polish: pinned draft"]
