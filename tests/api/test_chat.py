"""`/api/chat`: REST for chats and their history, and `WebSocket /api/chat/{id}` to talk, over a real server.

The app runs under uvicorn on a loopback port (this event loop), the socket is a real
WebSocket client; crews and flows answer through the scripted LLM server. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.api.conftest import Account, sign_up
from tests.api.test_executions import scripted_provider, until
from tests.api.test_flows import create_flow
from tests.api.test_members import invite, join, member_id
from tests.executor.conftest import document, edge, node, started_services
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from wiring.services import Services

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

FRAME_TIMEOUT_S = 60
PENDING = "a reply is still being written; wait for it or cancel it"


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """Replaces `tests/api/conftest.py`'s: the same, plus loopback LLM endpoints allowed."""
    built = await started_services(tmp_path, db_url)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
async def ws_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn (with WebSockets) on a loopback port, on this event loop; its ws:// URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off", timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started)
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def talking(
    ws_url: str, session_id: str, who: Account | None, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientConnection]:
    """A socket to chat `session_id` as `who` (or with just `headers`)."""
    sent = headers if headers is not None else (who.headers if who else {})
    async with connect(f"{ws_url}/api/chat/{session_id}", additional_headers=sent, open_timeout=10) as ws:
        yield ws


async def receive(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)))


async def send(ws: ClientConnection, frame: dict[str, Any] | str) -> None:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))


def ends_reply(frame: dict[str, Any]) -> bool:
    return frame["type"] in {"reply", "cancelled"} or (frame["type"] == "error" and "reply" in frame)


async def until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    """Frames until (and with) the one that ends a reply."""
    frames = [await receive(ws)]
    while not ends_reply(frames[-1]):
        frames.append(await receive(ws))
    return frames


async def closed_with(ws_url: str, session_id: str, who: Account | None, **kw: Any) -> tuple[int, str]:
    """The close code and reason of a socket the server refuses."""
    async with talking(ws_url, session_id, who, **kw) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def created(client: httpx.AsyncClient, path: str, who: Account, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, headers=who.headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def answering_crew(client: httpx.AsyncClient, who: Account, server: ScriptedLLMServer) -> str:
    """One agent on the scripted provider, one task answering `{message}`, one crew; the crew's id."""
    provider = await scripted_provider(client, who, server)
    agent = await created(
        client,
        "/api/agents",
        who,
        {"name": "helper", "role": "Helpful assistant", "goal": "Answer well", "provider_id": provider, "max_iter": 2},
    )
    task = await created(
        client,
        "/api/tasks",
        who,
        {
            "name": "answer",
            "description": "Answer the user: {message}",
            "expected_output": "An answer.",
            "agent_id": agent["id"],
        },
    )
    crew = await created(
        client, "/api/crews", who, {"name": "helpers", "agent_ids": [agent["id"]], "task_ids": [task["id"]]}
    )
    return str(crew["id"])


async def echo_flow(client: httpx.AsyncClient, who: Account, server: ScriptedLLMServer) -> str:
    """input(message, messages) -> llm (streamed) -> output: a flow to chat with; its id."""
    provider = await scripted_provider(client, who, server)
    flow = document(
        [
            node("in", "input"),
            node("ask", "llm", provider_id=provider, prompt="So far: {{ inputs.messages }} Now: {{ inputs.message }}"),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        [{"name": "message", "type": "string"}, {"name": "messages", "type": "array"}],
    )
    made = await create_flow(client, who, flow, name="echo")
    assert made["problems"] == [], made["problems"]
    return str(made["version"]["flow_id"])


async def start_chat(client: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    return await created(client, "/api/chat/sessions", who, body)


def tokens_of(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["text"] for frame in frames if frame["type"] == "token")


# -- talking -----------------------------------------------------------------------------------


async def test_a_crew_reply_streams_over_the_socket_and_a_reconnect_shows_both_messages(
    client: httpx.AsyncClient, ws_url: str, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    crew_id = await answering_crew(client, owner, llm_server)
    chat = await start_chat(client, owner, crew_id=crew_id)
    assert (chat["title"], chat["crew_id"], chat["flow_id"]) == ("helpers", crew_id, None)
    llm_server.script(Reply.say("Owls eat mice and voles."), Reply.say("Yes, shrews too."))

    async with talking(ws_url, chat["id"], owner) as ws:
        hello = await receive(ws)
        assert (hello["type"], hello["messages"], hello["replying"]) == ("history", [], None)
        assert hello["session"]["id"] == chat["id"]
        await send(ws, {"type": "message", "text": "What do owls eat?"})
        frames = await until_end(ws)

    kinds = [frame["type"] for frame in frames]
    assert kinds[-1] == "reply"
    assert "token" in kinds
    assert kinds.index("token") < len(kinds) - 1
    assert tokens_of(frames) == "Owls eat mice and voles."
    reply = frames[-1]["message"]
    assert (reply["role"], reply["content"], reply["status"]) == ("assistant", "Owls eat mice and voles.", "ok")
    steps = {frame["kind"] for frame in frames if frame["type"] == "step"}
    assert {"crew_task_started", "agent_step", "crew_task_completed"} <= steps
    assert {frame["agent"] for frame in frames if frame["type"] in {"token", "step"}} == {"helper"}

    async with talking(ws_url, chat["id"], owner) as ws:
        hello = await receive(ws)
        assert hello["replying"] is None
        history = hello["messages"]
        assert [(m["role"], m["content"]) for m in history] == [
            ("user", "What do owls eat?"),
            ("assistant", "Owls eat mice and voles."),
        ]
        assert {m["execution_id"] for m in history} == {reply["execution_id"]}
        await send(ws, {"type": "message", "text": "Shrews as well?"})
        assert (await until_end(ws))[-1]["message"]["content"] == "Yes, shrews too."

    # The second run got the first exchange.
    second_request = json.dumps(llm_server.requests[1].json["messages"])
    assert "What do owls eat?" in second_request
    assert "Owls eat mice and voles." in second_request
    assert "Answer the user: Shrews as well?" in second_request
    listed = await client.get(f"/api/chat/sessions/{chat['id']}/messages", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    assert [m["content"] for m in listed.json()] == [
        "What do owls eat?",
        "Owls eat mice and voles.",
        "Shrews as well?",
        "Yes, shrews too.",
    ]
    execution = await client.get(f"/api/executions/{reply['execution_id']}", headers=owner.headers)
    assert execution.json()["status"] == "completed"


async def test_a_second_message_is_refused_while_a_reply_streams_and_a_reconnect_keeps_streaming(
    client: httpx.AsyncClient, ws_url: str, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    chat = await start_chat(client, owner, flow_id=await echo_flow(client, owner, llm_server))
    words = " ".join(f"w{i}" for i in range(40))
    llm_server.script(Reply.say(words, drip_s=0.05))

    async with talking(ws_url, chat["id"], owner) as ws:
        await receive(ws)
        await send(ws, {"type": "message", "text": "Count for me."})
        first = await receive(ws)
        assert first["type"] == "token"
        await send(ws, {"type": "message", "text": "Hello?"})
        frame = await receive(ws)
        while frame["type"] == "token":
            frame = await receive(ws)
        assert frame == {"type": "error", "message": PENDING}

    async with talking(ws_url, chat["id"], owner) as ws:
        hello = await receive(ws)
        assert [m["content"] for m in hello["messages"]] == ["Count for me."]
        assert hello["replying"] == hello["messages"][0]["execution_id"]
        frames = await until_end(ws)
    # The stream starts over from the reply's beginning, then goes on live to its end.
    assert tokens_of(frames) == words
    assert frames[-1]["message"]["content"] == words
    assert len(llm_server.requests) == 1  # "Hello?" never ran


async def test_cancel_over_the_socket_ends_the_reply_as_cancelled(
    client: httpx.AsyncClient, ws_url: str, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    chat = await start_chat(client, owner, flow_id=await echo_flow(client, owner, llm_server))
    llm_server.script(Reply.say("word " * 200, drip_s=0.05))

    async with talking(ws_url, chat["id"], owner) as ws:
        await receive(ws)
        await send(ws, {"type": "message", "text": "Talk for a while."})
        assert (await receive(ws))["type"] == "token"
        await send(ws, {"type": "cancel"})
        frames = await until_end(ws)
        assert frames[-1]["type"] == "cancelled"
        assert frames[-1]["reply"]["status"] == "cancelled"
        await send(ws, {"type": "cancel"})
        assert await receive(ws) == {
            "type": "error",
            "message": "no reply is being written in this chat; there is nothing to cancel",
        }

    detail = await client.get(f"/api/chat/sessions/{chat['id']}", headers=owner.headers)
    assert detail.json()["replying"] is None
    execution = await client.get(f"/api/executions/{frames[-1]['reply']['execution_id']}", headers=owner.headers)
    assert execution.json()["status"] == "cancelled"


async def test_chat_with_a_flow_whose_input_is_message(
    client: httpx.AsyncClient, ws_url: str, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await echo_flow(client, owner, llm_server)
    chat = await start_chat(client, owner, flow_id=flow_id, title="Echo chat")
    assert (chat["title"], chat["flow_id"], chat["crew_id"]) == ("Echo chat", flow_id, None)
    llm_server.script(Reply.say("Hello, friend."))

    async with talking(ws_url, chat["id"], owner) as ws:
        await receive(ws)
        await send(ws, {"type": "message", "text": "  Hi!  "})
        frames = await until_end(ws)

    assert tokens_of(frames) == "Hello, friend."
    assert frames[-1]["message"]["content"] == "Hello, friend."
    assert llm_server.requests[0].json["messages"][-1]["content"].endswith("Now: Hi!")
    execution = await client.get(f"/api/executions/{frames[-1]['message']['execution_id']}", headers=owner.headers)
    assert execution.json()["flow_id"] == flow_id
    assert execution.json()["inputs"]["messages"] == [{"role": "user", "content": "Hi!"}]
    listed = await client.get("/api/chat/sessions", headers=owner.headers)
    assert [c["id"] for c in listed.json()] == [chat["id"]]


# -- who may do what ---------------------------------------------------------------------------


async def test_another_users_chat_and_bad_credentials_are_refused(
    client: httpx.AsyncClient, ws_url: str, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    chat = await start_chat(client, owner, flow_id=await echo_flow(client, owner, llm_server))
    editor = await join(client, await invite(client, owner, "editor"), "ed@example.com")
    outsider = await sign_up(client, "eve@example.com", "evil")

    for who in (editor, outsider):
        for path in (f"/api/chat/sessions/{chat['id']}", f"/api/chat/sessions/{chat['id']}/messages"):
            assert (await client.get(path, headers=who.headers)).status_code == 404
        assert (await client.delete(f"/api/chat/sessions/{chat['id']}", headers=who.headers)).status_code == 404
        assert (await client.get("/api/chat/sessions", headers=who.headers)).json() == []
        code, reason = await closed_with(ws_url, chat["id"], who)
        assert code == 4404
        assert reason.startswith(f"no chat with id {chat['id']} of yours")

    assert (await closed_with(ws_url, chat["id"], None))[0] == 4401
    assert (await closed_with(ws_url, chat["id"], None, headers={"Authorization": "Bearer nope"}))[0] == 4401
    assert (await closed_with(ws_url, "not-a-uuid", owner))[0] == 4404
    bad_tenant = owner.headers | {"X-Tenant": "NOT A SLUG"}
    assert (await closed_with(ws_url, chat["id"], None, headers=bad_tenant))[0] == 4400
    assert llm_server.requests == []

    # The owner still has it, and deletes it.
    assert (await client.get(f"/api/chat/sessions/{chat['id']}", headers=owner.headers)).status_code == 200
    assert (await client.delete(f"/api/chat/sessions/{chat['id']}", headers=owner.headers)).status_code == 204
    assert (await closed_with(ws_url, chat["id"], owner))[0] == 4404


async def test_a_demoted_editor_reads_their_chat_but_cannot_send(
    client: httpx.AsyncClient, ws_url: str, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await echo_flow(client, owner, llm_server)
    editor = await join(client, await invite(client, owner, "editor"), "ed@example.com")
    chat = await start_chat(client, editor, flow_id=flow_id)
    viewer = await join(client, await invite(client, owner, "viewer"), "vi@example.com")
    refused = await client.post("/api/chat/sessions", headers=viewer.headers, json={"flow_id": flow_id})
    assert refused.status_code == 403

    async with talking(ws_url, chat["id"], editor) as ws:
        await receive(ws)
        demoted = await client.patch(
            f"/api/members/{await member_id(client, owner, 'ed@example.com')}",
            headers=owner.headers,
            json={"role": "viewer"},
        )
        assert demoted.status_code == 200, demoted.text
        await send(ws, {"type": "message", "text": "Still here?"})
        frame = await receive(ws)
    assert frame["type"] == "error"
    assert "your role 'viewer' cannot chat" in frame["message"]
    assert llm_server.requests == []
    listed = await client.get(f"/api/chat/sessions/{chat['id']}/messages", headers=editor.headers)
    assert (listed.status_code, listed.json()) == (200, [])


# -- refusals ----------------------------------------------------------------------------------


async def test_bad_input_gets_clear_errors(
    client: httpx.AsyncClient, ws_url: str, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await echo_flow(client, owner, llm_server)

    unknown = await client.post("/api/chat/sessions", headers=owner.headers, json={"crew_id": str(uuid.uuid4())})
    assert unknown.status_code == 422, unknown.text
    assert [p["field"] for p in unknown.json()["problems"]] == ["crew_id"]
    assert "no crew with id" in unknown.json()["detail"]
    neither = await client.post("/api/chat/sessions", headers=owner.headers, json={})
    assert neither.status_code == 422
    assert "give crew_id or flow_id" in neither.json()["detail"]
    plain = document(
        [node("in", "input"), node("out", "output", value="{{ inputs.topic }}")],
        [edge("in", "out")],
        [{"name": "topic", "type": "string"}],
    )
    no_message = (await create_flow(client, owner, plain, name="plain"))["version"]["flow_id"]
    refused = await client.post("/api/chat/sessions", headers=owner.headers, json={"flow_id": no_message})
    assert refused.status_code == 422
    assert "flow 'plain' has no input named 'message'" in refused.json()["detail"]
    assert [p["field"] for p in refused.json()["problems"]] == ["flow_id"]

    chat = await start_chat(client, owner, flow_id=flow_id)
    llm_server.script(Reply.say("Fine."))
    async with talking(ws_url, chat["id"], owner) as ws:
        await receive(ws)
        for frame, answer in (
            ({"type": "message", "text": "   "}, "text is empty; write a message"),
            ({"type": "message"}, 'a message frame needs its text: {"type": "message", "text": "..."}'),
            ({"type": "dance"}, 'unknown frame type; send {"type": "message", "text": "..."} or {"type": "cancel"}'),
            ("not json", 'frames are JSON objects: {"type": "message", "text": "..."} or {"type": "cancel"}'),
            ({"type": "message", "text": "bad\x00text"}, "text contains a NUL character"),
        ):
            await send(ws, frame)
            refusal = await receive(ws)
            assert refusal["type"] == "error"
            assert refusal["message"].startswith(answer), refusal
        # The socket stays usable after refusals.
        await send(ws, {"type": "message", "text": "Hello"})
        assert (await until_end(ws))[-1]["message"]["content"] == "Fine."
    assert len(llm_server.requests) == 1
