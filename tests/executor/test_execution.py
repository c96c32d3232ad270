"""Flows run end to end: the real services, the scripted LLM server, the bubblewrap sandbox, both databases and buses."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.errors import Conflict, InvalidInput, PermissionDenied
from core.executions import EventRecord
from executor.errors import FlowInvalid
from tests.executor.conftest import World, document, edge, make_world, node, started_services
from tests.fixtures.llm_server import Reply, ScriptedLLMServer

TOPIC_INPUT = [{"name": "topic", "type": "string"}]


def branching_flow(world: World) -> dict[str, Any]:
    """input -> llm (JSON score) -> condition -> (tool -> output | llm -> output)."""
    return document(
        [
            node("in", "input"),
            node(
                "classify",
                "llm",
                provider_id=world.provider_id,
                prompt="How interesting is {{ inputs.topic }}? Answer with JSON.",
                json_schema={"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]},
                stream=False,
            ),
            node("good", "condition", expression="nodes.classify.output.score > 0.5"),
            node("shout", "tool", tool_id=world.shout_tool, arguments={"text": "{{ inputs.topic }}"}),
            node("apologise", "llm", provider_id=world.provider_id, prompt="Say sorry about {{ inputs.topic }}"),
            node("loud", "output", name="loud", value="{{ nodes.shout.output.loud }}"),
            node("sorry", "output", name="sorry", value="{{ nodes.apologise.output }}"),
        ],
        [
            edge("in", "classify"),
            edge("classify", "good"),
            edge("good", "shout", "true"),
            edge("good", "apologise", "false"),
            edge("shout", "loud"),
            edge("apologise", "sorry"),
        ],
        TOPIC_INPUT,
    )


async def events_of(world: World, execution_id: uuid.UUID) -> list[EventRecord]:
    return await world.services.executions.events(world.editor, execution_id, after_seq=0, limit=1000)


def kinds(events: list[EventRecord], node_id: str | None = None) -> list[str]:
    return [e.type for e in events if node_id is None or e.node_id == node_id]


async def test_a_branching_flow_runs_end_to_end_on_each_database_and_bus(
    db_url: str, bus: str, tmp_path: Path, llm_server: ScriptedLLMServer
) -> None:
    services = await started_services(tmp_path, db_url, bus)
    try:
        world = await make_world(services, llm_server)
        llm_server.script(Reply.say('{"score": 0.9}', prompt_tokens=11, completion_tokens=5))
        ended = await world.run(branching_flow(world), {"topic": "owls"})

        assert ended.status == "completed", ended.error
        assert ended.outputs == {"loud": "OWLS"}
        events = await events_of(world, ended.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))  # gap-free, in order
        assert events[0].type == "execution_started"
        assert events[-1].type == "execution_completed"
        completed = [e.node_id for e in events if e.type == "node_completed"]
        assert completed == ["in", "classify", "good", "shout", "loud"]
        assert sorted(e.node_id for e in events if e.type == "node_skipped") == ["apologise", "sorry"]
        assert next(e for e in events if e.node_id == "good" and e.type == "node_completed").data["handles"] == ["true"]

        runs = {run.node_id: run for run in ended.node_runs}
        assert {node_id: run.status for node_id, run in runs.items()} == {
            "in": "completed",
            "classify": "completed",
            "good": "completed",
            "shout": "completed",
            "loud": "completed",
            "apologise": "skipped",
            "sorry": "skipped",
        }
        assert runs["classify"].output == {"score": 0.9}
        assert runs["shout"].output == {"loud": "OWLS"}
        assert runs["shout"].inputs["nodes"] == {"good": {"result": True}}
        assert runs["shout"].inputs["rendered"] == {"{{ inputs.topic }}": "owls"}
        assert all(run.attempts == 1 and run.started_at and run.finished_at for run in runs.values() if run.attempts)
        # Tokens and cost of a node are those of its usage records.
        usage = [u for u in await services.llm_stack.usage.recent("acme", 50) if u.execution_id == ended.id]
        assert [(u.node_id, u.prompt_tokens, u.completion_tokens) for u in usage] == [("classify", 11, 5)]
        assert (runs["classify"].prompt_tokens, runs["classify"].completion_tokens) == (11, 5)
        assert runs["classify"].cost_usd == usage[0].cost_usd
        assert (runs["shout"].prompt_tokens, runs["shout"].completion_tokens) == (0, 0)
    finally:
        await services.aclose()


async def test_the_other_branch_runs_when_the_condition_is_false(world: World) -> None:
    world.server.script(Reply.say('{"score": 0.1}'), Reply.say("Sorry about that."))
    ended = await world.run(branching_flow(world), {"topic": "mud"})
    assert ended.status == "completed", ended.error
    assert ended.outputs == {"sorry": "Sorry about that."}
    events = await events_of(world, ended.id)
    assert sorted(e.node_id for e in events if e.type == "node_skipped") == ["loud", "shout"]
    assert "token" in kinds(events, "apologise")  # the second call streamed


async def test_a_router_takes_the_first_matching_case_and_skips_the_rest(world: World) -> None:
    flow = document(
        [
            node("in", "input"),
            node(
                "route",
                "router",
                cases=[
                    {"name": "small", "expression": "inputs.n < 10"},
                    {"name": "medium", "expression": "inputs.n < 100"},
                ],
            ),
            node("s", "output", name="small", value="small"),
            node("m", "output", name="medium", value="medium"),
            node("d", "output", name="large", value="large"),
        ],
        [
            edge("in", "route"),
            edge("route", "s", "small"),
            edge("route", "m", "medium"),
            edge("route", "d", "default"),
        ],
        [{"name": "n", "type": "integer"}],
    )
    saved = await world.flow(flow)
    for n, expected in [(5, {"small": "small"}), (50, {"medium": "medium"}), (500, {"large": "large"})]:
        started = await world.services.executions.start_run(world.editor, saved.version.flow_id, {"n": n})
        ended = await world.services.executions.wait(world.editor, started.id, 30)
        assert (ended.status, ended.outputs) == ("completed", expected)


async def test_a_join_runs_when_one_branch_is_taken_and_is_skipped_when_none_is(world: World) -> None:
    def flow(expression: str) -> dict[str, Any]:
        return document(
            [
                node("in", "input"),
                node("c", "condition", expression=expression),
                node("yes", "output", name="yes", value="y"),
                node("join", "output", name="join", value="joined"),
            ],
            [edge("in", "c"), edge("c", "yes", "true"), edge("c", "join", "true"), edge("c", "join", "false")],
        )

    ended = await world.run(flow("false"))
    assert ended.outputs == {"join": "joined"}
    skipped = [e.node_id for e in await events_of(world, ended.id) if e.type == "node_skipped"]
    assert skipped == ["yes"]


async def test_a_subflow_runs_once_per_item_in_order_within_its_bound(world: World) -> None:
    child = await world.flow(
        document(
            [
                node("in", "input"),
                node("work", "tool", tool_id=world.slow_tool, arguments={"seconds": "{{ inputs.item }}"}),
                node("out", "output", name="slept", value="{{ nodes.work.output.slept }}"),
            ],
            [edge("in", "work"), edge("work", "out")],
            [{"name": "item", "type": "number"}],
        ),
        name="child",
    )
    # Longer items first: if order were completion order, the result would come out reversed.
    items = [0.6, 0.4, 0.2, 0.0]
    parent = document(
        [
            node("in", "input"),
            node(
                "each",
                "subflow",
                flow_id=str(child.version.flow_id),
                version=1,
                for_each="{{ inputs.items }}",
                item_input="item",
                concurrency=2,
            ),
            node("out", "output", name="all", value="{{ nodes.each.output }}"),
        ],
        [edge("in", "each"), edge("each", "out")],
        [{"name": "items", "type": "array"}],
    )
    ended = await world.run(parent, {"items": items}, wait_s=60)
    assert ended.status == "completed", ended.error
    assert ended.outputs == {"all": [{"slept": s} for s in items]}
    children = [
        await world.services.executions.get(world.editor, e.id)
        for e in (await world.services.executions.list(world.editor, limit=50)).items
        if e.parent_execution_id == ended.id
    ]
    assert len(children) == len(items)
    assert {c.parent_node_id for c in children} == {"each"}
    # At most two children ran at once.
    spans = sorted((c.started_at, c.finished_at) for c in children)
    for moment, _ in spans:
        running = [s for s in spans if s[0] <= moment < s[1]]
        assert len(running) <= 2


async def test_a_failing_node_is_retried_with_backoff_then_succeeds(world: World) -> None:
    world.server.script(Reply.error(500), Reply.error(500), Reply.error(500), Reply.say("third time lucky"))
    flow = document(
        [
            node("in", "input"),
            node(
                "ask",
                "llm",
                provider_id=world.provider_id,
                prompt="hello",
                stream=False,
                retry={"attempts": 3, "backoff_s": 0.05},
            ),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
    )
    ended = await world.run(flow)
    assert ended.status == "completed", ended.error
    assert ended.outputs == {"result": "third time lucky"}
    events = await events_of(world, ended.id)
    assert kinds(events, "ask").count("node_retrying") >= 1
    run = next(r for r in ended.node_runs if r.node_id == "ask")
    assert run.attempts >= 2


async def test_a_node_past_its_timeout_fails_the_execution_and_keeps_partial_results(world: World) -> None:
    world.server.script(Reply.hanging())
    flow = document(
        [
            node("in", "input"),
            node("first", "condition", expression="true"),
            node("ask", "llm", provider_id=world.provider_id, prompt="hello", stream=False, timeout_s=0.5),
        ],
        [edge("in", "first"), edge("first", "ask", "true")],
    )
    started_at = time.monotonic()
    ended = await world.run(flow)
    assert time.monotonic() - started_at < 10
    assert ended.status == "failed"
    assert ended.error is not None
    assert "node 'ask' failed" in ended.error
    assert "timeout of 0.5 s" in ended.error
    runs = {r.node_id: r for r in ended.node_runs}
    assert runs["first"].status == "completed"
    assert runs["first"].output == {"result": True}
    assert runs["ask"].status == "failed"
    assert "timeout" in (runs["ask"].error or "")


async def test_on_error_continue_passes_the_error_on_as_the_output(world: World) -> None:
    world.server.script(Reply.error(400, "bad request"))
    flow = document(
        [
            node("in", "input"),
            node("ask", "llm", provider_id=world.provider_id, prompt="hi", stream=False, on_error="continue"),
            node("out", "output", value="{{ nodes.ask.output.error }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
    )
    ended = await world.run(flow)
    assert ended.status == "completed", ended.error
    assert "scripted" in ended.outputs["result"] or "400" in ended.outputs["result"]
    run = next(r for r in ended.node_runs if r.node_id == "ask")
    assert run.status == "failed"
    assert run.flags == {"continued": True}


@pytest.mark.parametrize("slow_part", ["llm", "sandbox"])
async def test_cancel_stops_a_run_midway(world: World, slow_part: str) -> None:
    if slow_part == "llm":
        world.server.script(Reply.say("x" * 200, drip_s=0.2))
        slow = node("slow", "llm", provider_id=world.provider_id, prompt="write a lot")
    else:
        slow = node("slow", "tool", tool_id=world.slow_tool, arguments={"seconds": 20})
    flow = document([node("in", "input"), slow], [edge("in", "slow")])
    saved = await world.flow(flow)
    started = await world.services.executions.start_run(world.editor, saved.version.flow_id, {})
    events: list[EventRecord] = []
    async with asyncio.timeout(20):
        async for event in world.services.executions.follow(world.editor, started.id):
            assert isinstance(event, EventRecord)
            events.append(event)
            if event.type == "node_started" and event.node_id == "slow":
                break
    await asyncio.sleep(0.3)  # well inside the slow part
    asked = time.monotonic()
    cancelled = await world.services.executions.cancel(world.editor, started.id)
    # Stopped, not waited for: the slow part would take 20 s (tool) or 40 s (model). How soon (well
    # within a second on an idle machine, seconds on a loaded one) is a timing goal, not a test.
    assert time.monotonic() - asked < 10.0
    assert cancelled.status == "cancelled"
    runs = {r.node_id: r for r in cancelled.node_runs}
    assert runs["slow"].status == "cancelled"
    assert runs["in"].status == "completed"
    assert (await events_of(world, started.id))[-1].type == "execution_cancelled"
    with pytest.raises(Conflict):
        await world.services.executions.cancel(world.editor, started.id)


async def test_every_node_of_a_failed_run_has_its_stored_run(world: World) -> None:
    world.server.script(Reply.error(401, "no key"))
    flow = document(
        [
            node("in", "input"),
            node("ask", "llm", provider_id=world.provider_id, prompt="{{ inputs.q }}", stream=False),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        [{"name": "q", "type": "string"}],
    )
    ended = await world.run(flow, {"q": "why"})
    assert ended.status == "failed"
    runs = {r.node_id: r for r in ended.node_runs}
    assert runs["in"].output == {"q": "why"}
    assert runs["ask"].status == "failed"
    assert runs["ask"].inputs["rendered"] == {"{{ inputs.q }}": "why"}
    assert runs["ask"].error
    assert runs["ask"].finished_at is not None
    assert "out" not in runs  # never reached: no run stored for it


async def test_a_run_refuses_a_flow_with_problems_and_bad_inputs(world: World) -> None:
    broken = document([node("in", "input"), node("c", "condition", expression="nodes.nowhere.x")], [edge("in", "c")])
    saved = await world.services.flows.create(world.editor, "broken", "", broken)
    assert saved.problems
    with pytest.raises(FlowInvalid) as refused:
        await world.services.executions.start_run(world.editor, saved.version.flow_id, {})
    assert refused.value.problems[0].node_id == "c"
    good = await world.flow(document([node("in", "input")], [], TOPIC_INPUT))
    with pytest.raises(InvalidInput) as bad:
        await world.services.executions.start_run(world.editor, good.version.flow_id, {"topic": 42})
    assert bad.value.problems[0].field == "inputs.topic"


async def test_a_viewer_can_watch_but_not_start_or_cancel(world: World) -> None:
    saved = await world.flow(document([node("in", "input")], []))
    with pytest.raises(PermissionDenied):
        await world.services.executions.start_run(world.viewer, saved.version.flow_id, {})
    started = await world.services.executions.start_run(world.editor, saved.version.flow_id, {})
    ended = await world.services.executions.wait(world.viewer, started.id, 10)
    assert ended.status == "completed"
    with pytest.raises(PermissionDenied):
        await world.services.executions.cancel(world.viewer, started.id)
