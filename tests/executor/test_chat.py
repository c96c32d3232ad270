"""Chatting with a crew or a flow, at the service: real crews through the scripted LLM server, real databases.

Crew chats run on PostgreSQL only (CrewAI makes them slow enough); flow chats and the
refusals run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from typing import Any

import pytest

from core.context import Role, TenantContext
from core.crew_specs import AgentSpec, CrewSpec, TaskSpec
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from executor.chat import ChatService
from tests.executor.conftest import World, document, edge, node
from tests.fixtures.llm_server import Reply

WAIT_S = 120


def chat_of(world: World) -> ChatService:
    return world.services.chat


async def answering_crew(
    world: World, description: str = "Answer the user: {message}", name: str = "answerer", **crew: Any
) -> Any:
    """One agent on the scripted provider, one task, one crew."""
    records = world.services.crews
    agent = await records.create_agent(
        world.editor,
        AgentSpec(
            name=f"{name}_agent",
            role="Helpful assistant",
            goal="Answer well",
            provider_id=uuid.UUID(world.provider_id),
            max_iter=2,
        ),
    )
    task = await records.create_task(
        world.editor,
        TaskSpec(name=f"{name}_task", description=description, expected_output="An answer.", agent_id=agent.id),
    )
    spec = CrewSpec(name=name, agent_ids=[agent.id], task_ids=[task.id], **crew)
    return await records.create_crew(world.editor, spec)


async def frames_of(world: World, session_id: uuid.UUID, execution_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every frame of one reply, until the frame that ends it."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S):
        async for frame in chat_of(world).reply_stream(world.editor, session_id, execution_id):
            frames.append(frame)
    return frames


async def until_requests(world: World, count: int) -> None:
    """Wait until the scripted LLM server has received `count` requests."""
    async with asyncio.timeout(WAIT_S):
        while True:
            if len(world.server.requests) >= count:
                return
            await asyncio.sleep(0.02)


def sent_text(world: World, index: int) -> str:
    """Everything the scripted LLM server got in request `index`, as JSON text."""
    return json.dumps(world.server.requests[index].json["messages"], ensure_ascii=False)


def other_user(ctx: TenantContext, role: Role = Role.EDITOR) -> TenantContext:
    return replace(ctx, user_id=uuid.uuid4(), role=role)


# -- crews ------------------------------------------------------------------------------------


async def test_a_crew_reply_streams_tokens_and_steps_then_the_stored_reply(pg_world: World) -> None:
    world = pg_world
    chat = chat_of(world)
    crew = await answering_crew(world)
    session = await chat.create(world.editor, crew_id=crew.id)
    assert (session.title, session.crew_id, session.flow_id) == ("answerer", crew.id, None)
    world.server.script(Reply.say("Owls eat mice and voles."))

    execution = await chat.send(world.editor, session.id, "What do owls eat?")
    frames = await frames_of(world, session.id, execution.id)

    kinds = [frame["type"] for frame in frames]
    assert kinds[-1] == "reply"
    assert "token" in kinds
    assert kinds.index("token") < kinds.index("reply")
    tokens = [frame for frame in frames if frame["type"] == "token"]
    assert "".join(frame["text"] for frame in tokens) == "Owls eat mice and voles."
    assert {frame["agent"] for frame in tokens} == {"answerer_agent"}
    steps = [frame for frame in frames if frame["type"] == "step"]
    assert [s["kind"] for s in steps if s["kind"].startswith("crew_task")] == [
        "crew_task_started",
        "crew_task_completed",
    ]
    assert all(step["task"] == "answerer_task" for step in steps if step["kind"].startswith("crew_task"))
    agent_steps = [step for step in steps if step["kind"] == "agent_step"]
    assert agent_steps
    assert (agent_steps[-1]["agent"], agent_steps[-1]["final"]) == ("answerer_agent", True)
    reply = frames[-1]["message"]
    assert (reply["role"], reply["content"], reply["status"]) == ("assistant", "Owls eat mice and voles.", "ok")
    assert reply["execution_id"] == str(execution.id)
    # The placeholder `message` took the text.
    assert "Answer the user: What do owls eat?" in sent_text(world, 0)

    history = await chat.history(world.editor, session.id)
    assert [(m.role, m.content, m.execution_id) for m in history] == [
        ("user", "What do owls eat?", execution.id),
        ("assistant", "Owls eat mice and voles.", execution.id),
    ]
    assert await chat.replying(world.editor, session.id) is None


async def test_the_next_message_runs_with_the_conversation_so_far(pg_world: World) -> None:
    world = pg_world
    chat = chat_of(world)
    crew = await answering_crew(world)
    session = await chat.create(world.editor, crew_id=crew.id)
    world.server.script(Reply.say("Owls eat mice."), Reply.say("Yes, voles too."))

    first = await chat.send(world.editor, session.id, "What do owls eat?")
    await frames_of(world, session.id, first.id)
    second = await chat.send(world.editor, session.id, "Voles as well?")
    frames = await frames_of(world, session.id, second.id)

    assert frames[-1]["message"]["content"] == "Yes, voles too."
    asked = sent_text(world, 1)
    assert "What do owls eat?" in asked
    assert "Owls eat mice." in asked
    assert "Answer the user: Voles as well?" in asked
    assert "Voles as well?" not in sent_text(world, 0)
    assert [m.content for m in await chat.history(world.editor, session.id)] == [
        "What do owls eat?",
        "Owls eat mice.",
        "Voles as well?",
        "Yes, voles too.",
    ]


async def test_a_second_message_while_a_reply_is_written_is_refused_until_it_is_cancelled(pg_world: World) -> None:
    world = pg_world
    chat = chat_of(world)
    crew = await answering_crew(world)
    session = await chat.create(world.editor, crew_id=crew.id)
    world.server.script(Reply.say("word " * 200, drip_s=0.05), Reply.say("Second answer."))

    execution = await chat.send(world.editor, session.id, "Talk for a while.")
    with pytest.raises(Conflict, match="a reply is still being written; wait for it or cancel it"):
        await chat.send(world.editor, session.id, "Hello?")
    assert await chat.replying(world.editor, session.id) == execution.id

    # The crew starts in a thread; on a busy machine it may not have asked yet. Once it has, the
    # long reply is the one being written, and the next message gets "Second answer.".
    await until_requests(world, 1)
    cancelled = await chat.cancel(world.editor, session.id)
    assert cancelled.status == "cancelled"
    frames = await frames_of(world, session.id, execution.id)
    assert frames[-1]["type"] == "cancelled"
    assert frames[-1]["reply"]["status"] == "cancelled"
    with pytest.raises(Conflict, match="nothing to cancel"):
        await chat.cancel(world.editor, session.id)

    again = await chat.send(world.editor, session.id, "Shorter, please.")
    assert (await frames_of(world, session.id, again.id))[-1]["message"]["content"] == "Second answer."
    history = await chat.history(world.editor, session.id)
    assert [(m.role, m.status) for m in history] == [
        ("user", "ok"),
        ("assistant", "cancelled"),
        ("user", "ok"),
        ("assistant", "ok"),
    ]
    # The cancelled reply is not part of the conversation the next run gets.
    ran = await world.services.executions.get(world.editor, again.id)
    assert ran.inputs["messages"] == [
        {"role": "user", "content": "Talk for a while."},
        {"role": "user", "content": "Shorter, please."},
    ]


async def test_a_failed_run_ends_the_stream_with_an_error_and_a_failed_reply(pg_world: World) -> None:
    world = pg_world
    chat = chat_of(world)
    crew = await answering_crew(world)
    session = await chat.create(world.editor, crew_id=crew.id)
    world.server.default = Reply.error(400, "the scripted model refuses")

    execution = await chat.send(world.editor, session.id, "Hello")
    frames = await frames_of(world, session.id, execution.id)

    assert frames[-1]["type"] == "error"
    assert frames[-1]["message"]
    assert frames[-1]["reply"]["status"] == "failed"
    assert frames[-1]["reply"]["content"] == frames[-1]["message"]
    ended = await world.services.executions.get(world.editor, execution.id)
    assert ended.status == "failed"
    assert frames[-1]["message"] == ended.error


async def test_a_reply_that_ended_while_nobody_watched_is_in_the_history(pg_world: World) -> None:
    world = pg_world
    chat = chat_of(world)
    crew = await answering_crew(world, "Answer this question: {question}")
    session = await chat.create(world.editor, crew_id=crew.id)
    world.server.script(Reply.say("Forty-two."))

    execution = await chat.send(world.editor, session.id, "What is the answer?")
    await world.services.executions.wait(world.editor, execution.id, WAIT_S)

    history = await chat.history(world.editor, session.id)
    assert [(m.role, m.content, m.execution_id) for m in history][-1] == ("assistant", "Forty-two.", execution.id)
    # `question` took the text, as the crew has no `message` placeholder.
    assert "Answer this question: What is the answer?" in sent_text(world, 0)
    # Streaming afterwards still ends with the stored reply (stored once).
    frames = await frames_of(world, session.id, execution.id)
    assert frames[-1]["message"]["id"] == str(history[-1].id)
    assert len(await chat.history(world.editor, session.id)) == 2


async def test_the_other_placeholders_take_the_chat_inputs_or_the_crew_defaults(pg_world: World) -> None:
    world = pg_world
    chat = chat_of(world)
    crew = await answering_crew(
        world, "Answer {message} for {audience} in {style}", inputs={"style": "plain words", "audience": "adults"}
    )
    session = await chat.create(world.editor, crew_id=crew.id, inputs={"audience": "children"})
    world.server.script(Reply.say("Owls are birds."))

    execution = await chat.send(world.editor, session.id, "owls {{ 7 * 7 }}")
    await frames_of(world, session.id, execution.id)

    # Text with template syntax stays text: it reaches the crew as an input, never as a template.
    assert "Answer owls {{ 7 * 7 }} for children in plain words" in sent_text(world, 0)


# -- flows ------------------------------------------------------------------------------------


def echo_flow(world: World, *, history: str | None = "array") -> dict[str, Any]:
    """input -> llm (streamed) -> output `answer`: the prompt shows the history and the message."""
    inputs = [{"name": "message", "type": "string"}]
    prompt = "Now: {{ inputs.message }}"
    if history is not None:
        inputs.append({"name": "history", "type": history})
        prompt = "History: {{ inputs.history }} " + prompt
    return document(
        [
            node("in", "input"),
            node("ask", "llm", provider_id=world.provider_id, prompt=prompt),
            node("out", "output", name="answer", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        inputs,
    )


async def test_chat_with_a_flow_whose_input_is_message(world: World) -> None:
    chat = chat_of(world)
    saved = await world.flow(echo_flow(world), name="echo")
    session = await chat.create(world.editor, flow_id=saved.version.flow_id)
    assert session.title == "echo"
    world.server.script(Reply.say("Hello there, friend."), Reply.say("Fine, thanks."))

    first = await chat.send(world.editor, session.id, "Hi!")
    frames = await frames_of(world, session.id, first.id)
    assert "".join(f["text"] for f in frames if f["type"] == "token") == "Hello there, friend."
    assert frames[-1]["type"] == "reply"
    assert frames[-1]["message"]["content"] == "Hello there, friend."
    assert first.flow_id == saved.version.flow_id

    second = await chat.send(world.editor, session.id, "How are you?")
    assert (await frames_of(world, session.id, second.id))[-1]["message"]["content"] == "Fine, thanks."
    prompt = world.server.requests[1].json["messages"][-1]["content"]
    assert prompt.startswith("History: ")
    assert "Hi!" in prompt
    assert "Hello there, friend." in prompt
    assert prompt.endswith("Now: How are you?")
    ended = await world.services.executions.get(world.editor, second.id)
    assert ended.inputs["history"][-1] == {"role": "user", "content": "How are you?"}


async def test_two_messages_at_once_store_one_and_refuse_the_other(world: World) -> None:
    chat = chat_of(world)
    saved = await world.flow(echo_flow(world, history=None))
    session = await chat.create(world.editor, flow_id=saved.version.flow_id)
    # A reply slow enough to be still going when the other messages arrive, however busy the machine.
    world.server.default = Reply.say("one two three four five", drip_s=0.3)

    results = await asyncio.gather(
        *(chat.send(world.editor, session.id, f"message {i}") for i in range(4)), return_exceptions=True
    )

    started = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(started) == 1
    assert all(isinstance(r, Conflict) and "a reply is still being written" in str(r) for r in refused)
    await frames_of(world, session.id, started[0].id)
    history = await chat.history(world.editor, session.id)
    assert [m.role for m in history] == ["user", "assistant"]


# -- who may do what ----------------------------------------------------------------------------


async def test_another_users_chat_is_not_found_and_viewers_cannot_send(world: World) -> None:
    chat = chat_of(world)
    saved = await world.flow(echo_flow(world, history=None))
    session = await chat.create(world.editor, flow_id=saved.version.flow_id)
    stranger = other_user(world.editor)
    admin = other_user(world.editor, Role.ADMIN)

    for who in (stranger, admin):
        with pytest.raises(NotFound):
            await chat.get(who, session.id)
        with pytest.raises(NotFound):
            await chat.history(who, session.id)
        with pytest.raises(NotFound):
            await chat.send(who, session.id, "hello")
        with pytest.raises(NotFound):
            await chat.cancel(who, session.id)
        with pytest.raises(NotFound):
            await chat.delete(who, session.id)
        assert await chat.list(who) == []
    assert [s.id for s in await chat.list(world.editor)] == [session.id]

    demoted = replace(world.editor, role=Role.VIEWER)
    assert await chat.history(demoted, session.id) == []
    with pytest.raises(PermissionDenied, match="editor"):
        await chat.send(demoted, session.id, "hello")
    with pytest.raises(PermissionDenied):
        await chat.create(world.viewer, flow_id=saved.version.flow_id)
    assert world.server.requests == []

    await chat.delete(world.editor, session.id)
    with pytest.raises(NotFound):
        await chat.get(world.editor, session.id)


# -- refusals ---------------------------------------------------------------------------------


async def test_bad_input_is_refused_with_clear_errors(world: World) -> None:
    chat = chat_of(world)
    saved = await world.flow(echo_flow(world, history=None))
    session = await chat.create(world.editor, flow_id=saved.version.flow_id)

    for text in ("", "   \n "):
        with pytest.raises(InvalidInput, match="text is empty; write a message") as refused:
            await chat.send(world.editor, session.id, text)
        assert [p.field for p in refused.value.problems] == ["text"]
    missing = uuid.uuid4()
    with pytest.raises(InvalidInput, match=f"no crew with id {missing}") as refused:
        await chat.create(world.editor, crew_id=missing)
    assert [p.field for p in refused.value.problems] == ["crew_id"]
    with pytest.raises(InvalidInput, match="no flow with id"):
        await chat.create(world.editor, flow_id=missing)
    with pytest.raises(InvalidInput, match="crew_id or flow_id, not both"):
        await chat.create(world.editor)
    with pytest.raises(InvalidInput, match="crew_id or flow_id, not both"):
        await chat.create(world.editor, crew_id=missing, flow_id=saved.version.flow_id)

    topic_only = document(
        [node("in", "input"), node("out", "output", value="{{ inputs.topic }}")],
        [edge("in", "out")],
        [{"name": "topic", "type": "string"}],
    )
    no_message = await world.flow(topic_only, name="no_message")
    with pytest.raises(InvalidInput, match="flow 'no_message' has no input named 'message'") as refused:
        await chat.create(world.editor, flow_id=no_message.version.flow_id)
    assert [p.field for p in refused.value.problems] == ["flow_id"]
    with pytest.raises(InvalidInput, match="'message' is filled by the chat itself"):
        await chat.create(world.editor, flow_id=saved.version.flow_id, inputs={"message": "x"})
    with pytest.raises(InvalidInput, match="the flow has no input 'colour'"):
        await chat.create(world.editor, flow_id=saved.version.flow_id, inputs={"colour": "red"})
    assert world.server.requests == []
    assert await chat.history(world.editor, session.id) == []


async def test_crew_placeholders_are_checked_when_the_chat_starts(world: World) -> None:
    chat = chat_of(world)
    crew = await answering_crew(world, "Answer {question} for {audience}")
    with pytest.raises(InvalidInput, match="needs a value for audience") as refused:
        await chat.create(world.editor, crew_id=crew.id)
    assert [p.field for p in refused.value.problems] == ["inputs"]
    with pytest.raises(InvalidInput) as refused:
        await chat.create(world.editor, crew_id=crew.id, inputs={"question": "x", "audience": "kids", "mood": 1})
    problems = {p.field: p.message for p in refused.value.problems}
    assert problems["inputs.question"] == "'question' takes the text of each message; leave it out"
    assert problems["inputs.mood"].startswith("crew 'answerer' has no placeholder 'mood'")
    started = await chat.create(world.editor, crew_id=crew.id, inputs={"audience": "kids"}, title="For kids")
    assert (started.title, started.inputs) == ("For kids", {"audience": "kids"})

    # Without message/question/query/topic, the only placeholder left without a value takes the text.
    other = await answering_crew(world, "Summarise {text_in} for {audience}", name="summariser")
    with pytest.raises(InvalidInput, match="needs a value for text_in, audience"):
        await chat.create(world.editor, crew_id=other.id)
    assert await chat.create(world.editor, crew_id=other.id, inputs={"audience": "kids"})
