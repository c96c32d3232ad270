"""A real CrewAI crew on our LLM path, against the scripted server: tool calls, streaming events,
usage records, and no connection leaving loopback (telemetry off)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from core.llm.types import CallMeta
from db.database import Database
from executor.crewai.llm import crewai_llm
from tests.fixtures import network
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.llm_stack import Stack, make_stack


@pytest.fixture
async def stack(db: Database) -> Stack:
    return await make_stack(db)


def build_crew(llm: Any) -> Any:
    from crewai import Agent, Crew, Task
    from crewai.tools import tool

    @tool("add")
    def add(a: int, b: int) -> str:
        """Add two integers and return the sum."""
        return str(a + b)

    agent = Agent(role="Calculator", goal="Add numbers", backstory="Precise.", llm=llm, tools=[add], max_iter=3)
    task = Task(description="What is 2 + 3? Use the add tool.", expected_output="The sum", agent=agent)
    return Crew(agents=[agent], tasks=[task], verbose=False)


async def test_a_crew_runs_a_tool_round_trip_through_the_service_without_leaving_loopback(
    stack: Stack, llm_server: ScriptedLLMServer
) -> None:
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    execution = uuid.uuid4()
    llm = crewai_llm(
        stack.llm,
        stack.admin,
        provider_id=provider.id,
        meta=CallMeta(execution_id=execution, node_id="calc"),
        loop=asyncio.get_running_loop(),
    )
    llm_server.script(Reply.call("add", {"a": 2, "b": 3}), Reply.say("The sum is 5."))
    crew = build_crew(llm)
    with network.watch() as seen:
        output = await crew.kickoff_async()

    assert "The sum is 5." in output.raw
    first, second = llm_server.requests[:2]
    assert first.json["tools"][0]["function"]["name"] == "add"
    tool_messages = [m for m in second.json["messages"] if m.get("role") == "tool"]
    assert tool_messages
    assert tool_messages[0]["content"] == "5"
    records = await stack.usage.recent("acme")
    assert len(records) == 2
    assert {(r.execution_id, r.node_id, r.outcome) for r in records} == {(execution, "calc", "ok")}
    assert seen == []


async def test_streaming_chunks_are_emitted_as_crewai_events(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    from crewai import Agent, Crew, CrewOutput, Task
    from crewai.events.stream_context import add_stream_sink, reset_stream_sinks
    from crewai.events.types.llm_events import LLMStreamChunkEvent

    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    llm = crewai_llm(stack.llm, stack.admin, provider_id=provider.id, loop=asyncio.get_running_loop(), stream=True)
    llm_server.script(Reply.say("Paris is the capital"))
    chunks: list[str] = []

    def sink(_source: Any, event: Any) -> None:
        if isinstance(event, LLMStreamChunkEvent):
            chunks.append(event.chunk)

    agent = Agent(role="Geographer", goal="Answer", backstory="Brief.", llm=llm)
    crew = Crew(agents=[agent], tasks=[Task(description="Capital of France?", expected_output="A city", agent=agent)])
    token = add_stream_sink(sink)
    try:
        output = await crew.kickoff_async()
    finally:
        reset_stream_sinks(token)
    assert isinstance(output, CrewOutput)
    assert "Paris is the capital" in output.raw
    assert "".join(chunks) == "Paris is the capital"
    assert llm_server.requests[0].json["stream"] is True
