"""Flows as CrewAI's declarative `crewai.flow/v1`: every export validates with CrewAI's `FlowDefinition`,
what does not map is listed with the reason, and a branching flow runs in CrewAI as it runs here."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from executor.crewai.declarative import DeclarativeExport, References, export_flow, export_saved_flow
from tests.executor.conftest import World, document, edge, node
from tests.fixtures.llm_server import Reply


def validated(export: DeclarativeExport) -> Any:
    from crewai.flow.flow_definition import FlowDefinition

    return FlowDefinition.model_validate(export.document)


async def save_crew(world: World) -> tuple[uuid.UUID, uuid.UUID]:
    """A one-agent crew and that agent's id."""
    agent_id, task_id = uuid.uuid4(), uuid.uuid4()
    provider = uuid.UUID(world.provider_id)
    crew = await world.services.crews.save_all(
        world.editor,
        {
            agent_id: AgentSpec(
                name="poet",
                role="Poet of {topic}",
                goal="Rhyme",
                provider_id=provider,
                tool_ids=[uuid.UUID(world.shout_tool)],
            )
        },
        {task_id: TaskSpec(name="poem", description="A poem on {topic}", expected_output="Verse", agent_id=agent_id)},
        CrewSpec(name="poets", agent_ids=[agent_id], task_ids=[task_id]),
    )
    return crew.id, agent_id


def every_node_type(world: World, crew_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any]:
    nodes = [
        node("input", "input"),
        node("ask-llm", "llm", prompt="Summarise {{ inputs.topic }}", provider_id=world.provider_id, temperature=0.2),
        node("check", "condition", expression='size(nodes["ask-llm"].output) > 3 && inputs.topic != "nodes.x.output"'),
        node("route", "router", cases=[{"name": "long", "expression": "size(inputs.topic) > 10"}]),
        node("shout", "tool", tool_id=world.shout_tool, arguments={"text": "{{ nodes['ask-llm'].output }}"}),
        node("review", "human", prompt="Publish?", on_reject="branch"),
        node("team", "crew", crew_id=str(crew_id), inputs={"topic": "{{ inputs.topic }} today"}),
        node("solo", "agent", role="Critic", goal="Judge", task="Judge {{ nodes.team.output.raw }}"),
        node("saved", "agent", agent_id=str(agent_id), task="Write about {{ inputs.topic }}"),
        node("nested", "subflow", flow_id=str(uuid.uuid4()), version=1),
        node("result", "output", value="Verdict: {{ nodes.solo.output }}"),
    ]
    edges = [
        edge("input", "ask-llm"),
        edge("ask-llm", "check"),
        edge("check", "shout", "true"),
        edge("check", "route", "false"),
        edge("route", "review", "long"),
        edge("review", "team", "approved"),
        edge("shout", "team"),
        edge("team", "solo"),
        edge("input", "saved"),
        edge("saved", "nested"),
        edge("solo", "result"),
    ]
    return document(nodes, edges, [{"name": "topic", "type": "string"}])


async def test_every_node_type_maps_or_is_listed_and_the_document_validates(world: World) -> None:
    crew_id, agent_id = await save_crew(world)
    flow = await world.services.flows.create(
        world.editor, "everything", "All node types", every_node_type(world, crew_id, agent_id)
    )
    services = world.services

    export = await export_saved_flow(
        world.viewer,
        flow.version.flow_id,
        flows=services.flows,
        crews=services.crews,
        tools=services.tools,
        providers=services.llm_stack.providers,
    )

    definition = validated(export)
    assert definition.name == "everything"
    methods = export.document["methods"]
    assert set(methods) == {
        "input",
        "ask_llm",
        "check",
        "route",
        "shout",
        "review",
        "team",
        "solo",
        "saved",
        "nested",
        "result",
    }
    assert [(u.node_id, u.type) for u in export.unmapped] == [("nested", "subflow")]
    assert "no action that runs another flow" in export.unmapped[0].reason
    assert methods["nested"]["do"] == {"call": "expression", "expr": "null"}
    assert methods["nested"]["listen"] == "saved"  # its place in the graph is kept

    assert methods["input"] == {
        "description": "The flow's inputs.",
        "do": {"call": "expression", "expr": "state"},
        "start": True,
    }
    assert methods["ask_llm"]["do"]["with"]["input"] == "Summarise ${state.topic}"
    assert methods["ask_llm"]["do"]["with"]["llm"] == {"model": "openai/m1", "temperature": 0.2}
    assert methods["check"]["router"] is True
    assert methods["check"]["do"]["expr"] == (
        '(size(outputs.ask_llm.raw) > 3 && state.topic != "nodes.x.output") ? "check_true" : "check_false"'
    )
    assert methods["shout"] == {
        "do": {"call": "tool", "ref": "tools.shout:ShoutTool", "with": {"text": "${outputs.ask_llm.raw}"}},
        "listen": "check_true",
    }
    assert methods["route"]["listen"] == "check_false"
    assert methods["review"]["human_feedback"]["emit"] == ["review_approved", "review_rejected"]
    crew_action = methods["team"]["do"]
    assert crew_action["inputs"] == {"topic": "${state.topic} today"}
    assert crew_action["with"]["agents"]["poet"]["tools"] == ["custom:shout"]
    assert crew_action["with"]["tasks"] == [
        {"name": "poem", "description": "A poem on {topic}", "expected_output": "Verse", "agent": "poet"}
    ]
    assert methods["team"]["listen"] == {"and": ["review_approved", "shout"]}
    assert methods["solo"]["do"]["with"]["input"].startswith("Judge ${outputs.team.raw}")
    assert methods["saved"]["listen"] == "input"
    assert methods["saved"]["do"]["with"]["role"] == "Poet of {topic}"
    assert methods["result"]["do"]["expr"] == '"Verdict: " + string(outputs.solo.raw)'
    assert set(export.files) == {"tools/shout.py"}
    assert "class ShoutTool" in export.files["tools/shout.py"]
    noted = {note.node_id for note in export.notes}
    assert {"ask-llm", "team", "saved", None} <= noted


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("{{ nodes.input.output | upper }}", "filters, calls or operators"),
        ("{% if inputs.topic %}x{% endif %}", "{% %} statements"),
        ("{{ nodes.ghost.output }}", "the flow does not have"),
        ("{{ nodes.input.status }}", "other than nodes.<id>.output"),
        ("Costs ${5}", "would read as an expression"),
        ("{{ unclosed", "not a valid template"),
    ],
)
def test_templates_that_do_not_map_are_listed_not_guessed(prompt: str, reason: str) -> None:
    flow = document(
        [node("input", "input"), node("ask", "llm", prompt=prompt)], [edge("input", "ask")], [{"name": "topic"}]
    )
    export = export_flow(flow, name="templated")
    validated(export)
    assert [(u.node_id, u.type) for u in export.unmapped] == [("ask", "llm")]
    assert reason in export.unmapped[0].reason
    assert export.document["methods"]["ask"]["description"].startswith("NOT MAPPED")


def test_an_unmapped_node_leaves_no_notes_or_files_behind() -> None:
    tool = type("Tool", (), {"id": uuid.uuid4(), "name": "shout", "description": "", "kind": "python"})()
    tool.input_schema, tool.code = {"type": "object", "properties": {}}, "def run():\n    return 1\n"
    flow = document(
        [
            node("input", "input"),
            node("solo", "agent", role="R", goal="G", tool_ids=[str(tool.id)], task="{{ x | e }}"),
        ],
        [edge("input", "solo")],
    )
    export = export_flow(flow, name="partial", references=References(tools={str(tool.id): tool}))
    assert [u.node_id for u in export.unmapped] == ["solo"]
    assert export.files == {}
    assert [note for note in export.notes if note.node_id == "solo"] == []


def test_a_node_whose_record_is_gone_is_listed() -> None:
    flow = document(
        [
            node("input", "input"),
            node("team", "crew", crew_id=str(uuid.uuid4())),
            node("use", "tool", tool_id=str(uuid.uuid4())),
            node("who", "agent", agent_id=str(uuid.uuid4()), task="Go"),
        ],
        [edge("input", "team"), edge("team", "use"), edge("use", "who")],
    )
    export = export_flow(flow, name="dangling", references=References())
    validated(export)
    assert {u.node_id for u in export.unmapped} == {"team", "use", "who"}
    assert all("does not exist" in u.reason for u in export.unmapped)


def branching() -> dict[str, Any]:
    return document(
        [
            node("input", "input"),
            node("check", "condition", expression="inputs.n > 3"),
            node("big", "output", name="big", value="big {{ inputs.n }}"),
            node("small", "output", name="small", value="{{ nodes.input.output.n }}"),
        ],
        [edge("input", "check"), edge("check", "big", "true"), edge("check", "small", "false")],
        [{"name": "n", "type": "integer"}],
    )


async def test_a_branching_flow_runs_in_crewai_as_it_runs_here(world: World) -> None:
    from crewai import Flow

    export = export_flow(branching(), name="branching")
    validated(export)
    assert export.unmapped == []

    def crewai_run(n: int) -> Any:
        return Flow.from_declaration(contents=export.document).kickoff(inputs={"n": n})

    here_big = await world.run(branching(), {"n": 5})
    here_small = await world.run(branching(), {"n": 1})
    assert (here_big.outputs, here_small.outputs) == ({"big": "big 5"}, {"small": 1})
    assert await asyncio.to_thread(crewai_run, 5) == "big 5"
    assert await asyncio.to_thread(crewai_run, 1) == 1


def test_node_ids_become_method_names_and_events_never_collide() -> None:
    flow = document(
        [
            node("in", "input"),
            node("1st", "condition", expression="true"),
            node("1st_true", "output", value="{{ nodes['1st'].output }}"),
            node("a.b", "output", value="x"),
            node("a-b", "output", value="y"),
        ],
        [edge("in", "1st"), edge("1st", "1st_true", "true"), edge("1st", "a.b", "false"), edge("in", "a-b")],
    )
    export = export_flow(flow, name="names")
    validated(export)
    methods = export.document["methods"]
    assert set(methods) == {"node_in", "node_1st", "node_1st_true", "a_b", "a_b_2"}
    assert methods["node_1st"]["emit"] == ["node_1st_true_2", "node_1st_false"]
    assert methods["node_1st_true"]["listen"] == "node_1st_true_2"


async def test_an_agent_flow_gives_the_same_answer_in_crewai_as_here(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exported flow with an agent runs in CrewAI's own runtime, against the same scripted server."""
    from crewai import Flow

    flow = document(
        [
            node("input", "input"),
            node(
                "ask",
                "agent",
                role="Geographer",
                goal="Name capitals",
                provider_id=world.provider_id,
                task="What is the capital of {{ inputs.country }}?",
                stream=False,
            ),
            node("out", "output", name="answer", value="{{ nodes.ask.output }}"),
        ],
        [edge("input", "ask"), edge("ask", "out")],
        [{"name": "country", "type": "string"}],
    )
    saved = await world.flow(flow)
    services = world.services
    export = await export_saved_flow(
        world.editor,
        saved.version.flow_id,
        flows=services.flows,
        crews=services.crews,
        tools=services.tools,
        providers=services.llm_stack.providers,
    )
    validated(export)
    assert export.unmapped == []

    world.server.script(Reply.say("Paris"))
    started = await services.executions.start_run(world.editor, saved.version.flow_id, {"country": "France"})
    ours = await services.executions.wait(world.editor, started.id, 60)
    assert ours.status == "completed", ours.error
    asked_here = json.dumps(world.server.requests[-1].json["messages"])

    # CrewAI's own OpenAI client, pointed at the scripted server the provider points at.
    monkeypatch.setenv("OPENAI_API_KEY", "scripted")
    monkeypatch.setenv("OPENAI_BASE_URL", world.server.base_url)
    monkeypatch.setenv("OPENAI_API_BASE", world.server.base_url)
    world.server.script(Reply.say("Paris"))
    theirs = await asyncio.to_thread(
        lambda: Flow.from_declaration(contents=export.document).kickoff(inputs={"country": "France"})
    )
    asked_there = json.dumps(world.server.requests[-1].json["messages"])
    assert "What is the capital of France?" in asked_here
    assert "What is the capital of France?" in asked_there
    assert ours.outputs == {"answer": "Paris"}
    assert theirs == ours.outputs["answer"]
