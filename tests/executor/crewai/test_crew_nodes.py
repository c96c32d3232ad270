"""Crew and agent nodes in real flows: CrewAI runs for real against the scripted LLM server,
tools run in the sandbox, events are captured per run, cancel stops a crew, usage is attributed."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from core.executions import EventRecord
from tests.executor.conftest import World, document, edge, node
from tests.fixtures.llm_server import Reply

TOPIC = [{"name": "topic", "type": "string"}]
CREW_EVENTS = {"crew_task_started", "crew_task_completed", "crew_task_failed", "agent_step", "token"}


async def save_crew(
    world: World,
    prefix: str = "",
    *,
    tool: bool = True,
    process: str = "sequential",
    roles: tuple[str, str, str] = ("Researcher of {topic}", "Writer", "Editor"),
) -> Any:
    """Three agents and a chain of three tasks (each reads the one before); the writer has the shout tool."""
    crews = world.services.crews
    provider = uuid.UUID(world.provider_id)
    agents = []
    for index, (name, role) in enumerate(zip(("researcher", "writer", "editor"), roles, strict=True)):
        tools = [uuid.UUID(world.shout_tool)] if tool and name == "writer" else []
        spec = AgentSpec(
            name=f"{prefix}{name}",
            role=role,
            goal=f"Do the {name} part well",
            backstory=f"Agent number {index}.",
            provider_id=provider,
            tool_ids=tools,
            max_iter=3,
        )
        agents.append(await crews.create_agent(world.editor, spec))
    hierarchical = process == "hierarchical"
    tasks: list[Any] = []
    for task_name, agent, text in zip(
        ("research", "write", "edit"),
        agents,
        ("Research {topic}.", "Write about {topic}, shouting the title with the shout tool.", "Edit the text."),
        strict=True,
    ):
        task = TaskSpec(
            name=f"{prefix}{task_name}",
            description=text,
            expected_output=f"The {task_name} result",
            agent_id=None if hierarchical else agent.id,
            context_ids=[tasks[-1].id] if tasks else [],
        )
        tasks.append(await crews.create_task(world.editor, task))
    crew = CrewSpec(
        name=f"{prefix}crew",
        process=process,  # type: ignore[arg-type]
        agent_ids=[a.id for a in agents],
        task_ids=[t.id for t in tasks],
        manager_provider_id=provider if hierarchical else None,
        manager_model="m1" if hierarchical else None,
    )
    return await crews.create_crew(world.editor, crew)


def crew_flow(crew_id: uuid.UUID, world: World) -> dict[str, Any]:
    """input -> crew -> condition -> (agent -> output | output)."""
    return document(
        [
            node("in", "input"),
            node("team", "crew", crew_id=str(crew_id), inputs={"topic": "{{ inputs.topic }}"}),
            node("good", "condition", expression='nodes.team.output.raw.contains("edited")'),
            node(
                "check",
                "agent",
                role="Checker",
                goal="Approve texts",
                provider_id=world.provider_id,
                task="Approve this text: {{ nodes.team.output.raw }}",
            ),
            node("approved", "output", name="approved", value="{{ nodes.check.output }}"),
            node("rejected", "output", name="rejected", value="{{ nodes.team.output.raw }}"),
        ],
        [
            edge("in", "team"),
            edge("team", "good"),
            edge("good", "check", "true"),
            edge("good", "rejected", "false"),
            edge("check", "approved"),
        ],
        TOPIC,
    )


async def events_of(world: World, execution_id: uuid.UUID) -> list[EventRecord]:
    return await world.services.executions.events(world.editor, execution_id, after_seq=0, limit=5000)


async def test_a_crew_in_a_flow_runs_its_tasks_in_order_with_a_sandboxed_tool(world: World) -> None:
    crew = await save_crew(world)
    assert crew.placeholders == ["topic"]
    world.server.script(
        Reply.say("Owls hunt at night."),
        Reply.call("shout", {"text": "owls"}),
        Reply.say("OWLS: they hunt at night."),
        Reply.say("edited: OWLS hunt at night."),
        Reply.say("Approved."),
    )
    ended = await world.run(crew_flow(crew.id, world), {"topic": "owls"}, wait_s=120)

    assert ended.status == "completed", ended.error
    assert ended.outputs == {"approved": "Approved."}
    events = await events_of(world, ended.id)
    team = [e for e in events if e.node_id == "team"]
    started = [e.data["task"] for e in team if e.type == "crew_task_started"]
    completed = [e.data["task"] for e in team if e.type == "crew_task_completed"]
    assert started == completed == ["research", "write", "edit"]
    assert [e.data["agent"] for e in team if e.type == "crew_task_started"] == ["researcher", "writer", "editor"]
    # CrewAI's own order: task events of a crew never go backwards.
    sequence = [e.data["crew_seq"] for e in team if "crew_seq" in e.data]
    assert sequence == sorted(sequence)
    streamed = "".join(e.data["text"] for e in team if e.type == "token" and e.data["agent"] == "researcher")
    assert streamed == "Owls hunt at night."
    assert {e.data["agent"] for e in team if e.type == "token"} == {"researcher", "writer", "editor"}
    steps = [e for e in team if e.type == "agent_step"]
    assert steps
    assert {e.data["task"] for e in steps} <= {"research", "write", "edit"}
    assert any(e.data.get("tool_calls") == [{"tool": "shout", "arguments": '{"text": "owls"}'}] for e in steps)
    tool_events = [e for e in team if e.type.startswith("tool_")]
    assert [e.type for e in tool_events] == ["tool_started", "tool_finished"]
    assert tool_events[0].data["tool"] == "shout"
    assert tool_events[0].data["agent"] == "writer"
    # The output can only come from the tool's code, which runs only in the sandbox.
    assert json.loads(tool_events[1].data["output"]) == {"loud": "OWLS"}
    tool_reply = [m for m in world.server.requests[2].json["messages"] if m.get("role") == "tool"]
    assert json.loads(tool_reply[0]["content"]) == {"loud": "OWLS"}
    # Context: the editor's request holds the writer's result; placeholders were filled.
    assert "OWLS: they hunt at night." in json.dumps(world.server.requests[3].json["messages"])
    assert "Researcher of owls" in json.dumps(world.server.requests[0].json["messages"])
    # The crew's result reached the agent node downstream.
    assert "edited: OWLS hunt at night." in json.dumps(world.server.requests[4].json["messages"])
    runs = ended.runs_by_node()
    output = runs["team"].output
    assert [(t["name"], t["agent"]) for t in output["tasks"]] == [
        ("research", "researcher"),
        ("write", "writer"),
        ("edit", "editor"),
    ]
    assert output["tasks"][0]["raw"] == "Owls hunt at night."
    assert output["raw"] == "edited: OWLS hunt at night."
    assert runs["team"].prompt_tokens == 4 * 7
    assert runs["team"].completion_tokens == 4 * 3
    assert runs["check"].output == "Approved."
    usage = [u for u in await world.services.llm_stack.usage.recent("acme", 50) if u.execution_id == ended.id]
    assert sorted(u.node_id or "" for u in usage) == ["check", "team", "team", "team", "team"]


async def test_a_hierarchical_crew_delegates_through_its_manager(pg_world: World) -> None:
    world = pg_world
    crew = await save_crew(world, tool=False, process="hierarchical", roles=("Researcher", "Writer", "Editor"))
    world.server.script(
        Reply.call(
            "delegate_work_to_coworker", {"task": "Find owl facts", "context": "owls", "coworker": "Researcher"}
        ),
        Reply.say("Owls have silent wings."),
        Reply.say("Research done: owls have silent wings."),
    )
    flow = document(
        [node("in", "input"), node("team", "crew", crew_id=str(crew.id), inputs={"topic": "{{ inputs.topic }}"})],
        [edge("in", "team")],
        TOPIC,
    )
    world.server.default = Reply.say("Done.")
    ended = await world.run(flow, {"topic": "owls"}, wait_s=120)

    assert ended.status == "completed", ended.error
    manager_tools = [t["function"]["name"] for t in world.server.requests[0].json["tools"]]
    assert "delegate_work_to_coworker" in manager_tools
    coworker_request = json.dumps(world.server.requests[1].json["messages"])
    assert "Find owl facts" in coworker_request
    assert "Researcher" in coworker_request
    events = [e for e in await events_of(world, ended.id) if e.node_id == "team"]
    delegated = [e for e in events if e.type == "tool_started"]
    assert delegated
    assert "delegate" in delegated[0].data["tool"].lower()
    assert ended.runs_by_node()["team"].output["tasks"][0]["raw"] == "Research done: owls have silent wings."


async def test_four_crews_at_once_each_see_only_their_own_events(pg_world: World) -> None:
    world = pg_world
    prefixes = ["a_", "b_", "c_", "d_"]
    crews = [await save_crew(world, prefix, tool=False) for prefix in prefixes]
    world.server.default = Reply.say("step done " * 5, drip_s=0.02)
    flows = [await world.flow(crew_flow_only(crew.id)) for crew in crews]
    started = await asyncio.gather(
        *(world.services.executions.start_run(world.editor, f.version.flow_id, {"topic": "owls"}) for f in flows)
    )
    ended = [await world.services.executions.wait(world.editor, s.id, 180) for s in started]
    assert [e.status for e in ended] == ["completed"] * 4, [e.error for e in ended]
    for prefix, execution in zip(prefixes, ended, strict=True):
        crew_events = [e for e in await events_of(world, execution.id) if e.type in CREW_EVENTS]
        tasks = {e.data["task"] for e in crew_events if e.data.get("task")}
        agents = {e.data["agent"] for e in crew_events if e.data.get("agent")}
        assert tasks == {f"{prefix}research", f"{prefix}write", f"{prefix}edit"}
        assert agents == {f"{prefix}researcher", f"{prefix}writer", f"{prefix}editor"}
        assert sum(1 for e in crew_events if e.type == "crew_task_completed") == 3


def crew_flow_only(crew_id: uuid.UUID) -> dict[str, Any]:
    return document(
        [node("in", "input"), node("team", "crew", crew_id=str(crew_id), inputs={"topic": "{{ inputs.topic }}"})],
        [edge("in", "team")],
        TOPIC,
    )


async def test_cancel_stops_a_crew_at_its_next_llm_call(pg_world: World) -> None:
    world = pg_world
    crew = await save_crew(world, tool=False)
    world.server.script(Reply.say("Owls hunt."), Reply.say("word " * 40, drip_s=0.1))
    world.server.default = Reply.say("should never be asked")
    saved = await world.flow(crew_flow_only(crew.id))
    started = await world.services.executions.start_run(world.editor, saved.version.flow_id, {"topic": "owls"})
    async with asyncio.timeout(60):
        async for event in world.services.executions.follow(world.editor, started.id):
            if isinstance(event, EventRecord) and event.type == "token" and event.data.get("task") == "write":
                break  # the second task's reply is streaming now
    cancelled = await world.services.executions.cancel(world.editor, started.id)
    assert cancelled.status == "cancelled"
    assert cancelled.runs_by_node()["team"].status == "cancelled"
    await asyncio.sleep(1.5)  # long enough for a crew that kept going to ask again
    assert len(world.server.requests) == 2
    usage = [u for u in await world.services.llm_stack.usage.recent("acme", 50) if u.execution_id == started.id]
    assert usage
    assert {u.node_id for u in usage} == {"team"}


async def test_a_saved_agent_node_and_bad_crew_inputs(pg_world: World) -> None:
    world = pg_world
    crew = await save_crew(world, tool=False)
    flow = document(
        [node("in", "input"), node("team", "crew", crew_id=str(crew.id), inputs={"subject": "x"})],
        [edge("in", "team")],
    )
    saved = await world.services.flows.create(world.editor, "bad_inputs", "", flow)
    fields = {(p.node_id, p.field) for p in saved.problems}
    assert ("team", "inputs.topic") in fields
    assert ("team", "inputs.subject") in fields
    researcher = (await world.services.crews.list_agents(world.editor, "researcher"))[0]
    world.server.script(Reply.say("Owls are birds."))
    agent_flow = document(
        [
            node("in", "input"),
            node(
                "ask", "agent", agent_id=str(researcher.id), task="Say what {{ inputs.topic }} are. {not_a_placeholder}"
            ),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        TOPIC,
    )
    ended = await world.run(agent_flow, {"topic": "owls"}, wait_s=60)
    assert ended.status == "completed", ended.error
    assert ended.outputs == {"result": "Owls are birds."}
    sent = json.dumps(world.server.requests[0].json["messages"])
    # The saved agent's own placeholder has no input in an agent node, and braces in the task stay as written.
    assert "Say what owls are. {not_a_placeholder}" in sent
