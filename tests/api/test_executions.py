"""Running flows over HTTP: start, wait or stream, list, read, cancel and watch runs (SSE with replay and snapshot).

Real app, real tokens, on SQLite and PostgreSQL; slow steps come from the scripted LLM
server dripping its reply. Where a client must hang up mid-stream, the app is served by
uvicorn on loopback (httpx's ASGI transport only answers once the response is complete).
The replica tests run two service containers on one PostgreSQL database and Redis.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import install_api
from core.events import MemoryEventBus, RedisEventBus
from tests.api.conftest import Account, sign_up
from tests.api.test_flows import broken_flow, create_flow, echo_flow
from tests.api.test_members import invite, join
from tests.conftest import pg_url
from tests.executor.conftest import document, edge, node, started_services
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from wiring.services import Services

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

# -- fixtures and helpers ----------------------------------------------------------------------


def api_app(services: Services) -> FastAPI:
    application = FastAPI()
    install_api(application, services)
    return application


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """Replaces `tests/api/conftest.py`'s: the same, plus loopback LLM endpoints allowed."""
    built = await started_services(tmp_path, db_url)
    try:
        yield built
    finally:
        await built.aclose()


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    """Return once `condition()` holds (polled)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` served by uvicorn on a loopback port, on this event loop; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="error", lifespan="off", timeout_graceful_shutdown=1, ws="none")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass(frozen=True)
class Message:
    """One server-sent event."""

    id: int | None
    event: str
    data: Any


class SSEReader:
    """Turns SSE lines into messages; comments (heartbeats) are counted, not returned."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.comments = 0

    def feed(self, line: str) -> Message | None:
        if line == "":
            fields, self.fields = self.fields, {}
            if not fields:
                return None
            event_id = int(fields["id"]) if "id" in fields else None
            return Message(event_id, fields.get("event", "message"), json.loads(fields.get("data", "null")))
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        self.fields[name] = value.removeprefix(" ")
        return None


def parse_sse(text: str) -> list[Message]:
    reader = SSEReader()
    return [m for m in (reader.feed(line) for line in text.split("\n")) if m is not None]


def seqs(messages: Iterable[Message]) -> list[int | None]:
    return [m.id for m in messages]


async def scripted_provider(client: httpx.AsyncClient, who: Account, server: ScriptedLLMServer) -> str:
    spec = {"name": "scripted", "kind": "openai_compatible", "base_url": server.base_url, "models": ["m1"]}
    response = await client.post("/api/providers", headers=who.headers, json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def llm_flow(provider_id: str) -> dict[str, Any]:
    """input -> llm (streamed: one `token` event per chunk) -> output."""
    return document(
        [
            node("in", "input"),
            node("ask", "llm", provider_id=provider_id, prompt="Tell me about {{ inputs.topic }}"),
            node("out", "output", value="{{ nodes.ask.output }}"),
        ],
        [edge("in", "ask"), edge("ask", "out")],
        [{"name": "topic", "type": "string"}],
    )


def reply_text(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


def slow_reply(words: int, drip_s: float) -> Reply:
    """A streamed reply of `words` words, one chunk every `drip_s` seconds."""
    return Reply.say(reply_text(words), drip_s=drip_s)


async def start(client: httpx.AsyncClient, who: Account, flow_id: str, **body: Any) -> str:
    response = await client.post(f"/api/flows/{flow_id}/executions", headers=who.headers, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "running"
    return str(response.json()["id"])


async def ended(client: httpx.AsyncClient, who: Account, execution_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The execution once it is no longer running (polled)."""
    async with asyncio.timeout(timeout_s):
        while True:
            response = await client.get(f"/api/executions/{execution_id}", headers=who.headers)
            assert response.status_code == 200, response.text
            if response.json()["status"] not in {"running", "pending", "waiting"}:
                return dict(response.json())
            await asyncio.sleep(0.05)


async def until_event(
    client: httpx.AsyncClient, who: Account, execution_id: str, kind: str, timeout_s: float = 60
) -> dict[str, Any]:
    """The first stored event of `kind` (polled)."""
    async with asyncio.timeout(timeout_s):
        while True:
            events = (await client.get(f"/api/executions/{execution_id}/events", headers=who.headers)).json()
            found = [e for e in events if e["type"] == kind]
            if found:
                return dict(found[0])
            await asyncio.sleep(0.02)


async def stored_events(client: httpx.AsyncClient, who: Account, execution_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/executions/{execution_id}/events?limit=1000", headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


# -- starting, waiting, listing ----------------------------------------------------------------


async def test_the_runs_a_subflow_node_started_are_listed_by_their_parent(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    child = (await create_flow(client, owner, echo_flow("{{ inputs.topic }}?"), name="child"))["version"]["flow_id"]
    calls = node("sub", "subflow", flow_id=child, version=1, inputs={"topic": "{{ inputs.topic }}"})
    parent_flow = document([node("in", "input"), calls], [edge("in", "sub")], [{"name": "topic"}])
    parent = (await create_flow(client, owner, parent_flow, name="parent"))["version"]["flow_id"]
    run = await start(client, owner, parent, inputs={"topic": "owls"})
    assert (await ended(client, owner, run))["status"] == "completed"
    alone = await start(client, owner, child, inputs={"topic": "not a subflow"})
    assert (await ended(client, owner, alone))["status"] == "completed"

    listed = await client.get("/api/executions", headers=owner.headers, params={"parent": run})
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["flow_id"], item["parent_execution_id"], item["parent_node_id"]) == (child, run, "sub")
    assert item["outputs"] == {"result": "owls?"}
    assert (await client.get("/api/executions", headers=owner.headers, params={"parent": "x"})).status_code == 422


async def test_a_started_run_completes_and_is_listed_paged_and_its_events_read(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = (await create_flow(client, owner, echo_flow("{{ inputs.topic }}!"), name="echo"))["version"]["flow_id"]
    other_flow = (await create_flow(client, owner, echo_flow(), name="other"))["version"]["flow_id"]
    runs = [await start(client, owner, flow_id, inputs={"topic": f"t{i}"}) for i in range(3)]
    other_run = await start(client, owner, other_flow, inputs={"topic": "x"})

    done = await ended(client, owner, runs[0])
    assert (done["status"], done["outputs"], done["error"]) == ("completed", {"result": "t0!"}, None)
    assert (done["flow_id"], done["version"], done["inputs"]) == (flow_id, 1, {"topic": "t0"})
    assert done["finished_at"] is not None
    node_runs = {r["node_id"]: r for r in done["node_runs"]}
    assert {k: (r["status"], r["output"]) for k, r in node_runs.items()} == {
        "in": ("completed", {"topic": "t0"}),
        "out": ("completed", "t0!"),
    }
    for execution_id in [*runs[1:], other_run]:
        assert (await ended(client, owner, execution_id))["status"] == "completed"

    url = "/api/executions"
    query = {"flow": flow_id, "status": "completed", "limit": 1}
    pages: list[list[str]] = []
    cursor: dict[str, str] = {}
    while True:
        page = await client.get(url, headers=owner.headers, params=query | cursor)
        assert page.status_code == 200, page.text
        pages.append([item["id"] for item in page.json()["items"]])
        if page.json()["next_before"] is None:
            break
        cursor = {"before": page.json()["next_before"], "before_id": page.json()["next_before_id"]}
    assert pages == [[runs[2]], [runs[1]], [runs[0]]]  # newest first, one per page, none twice
    everything = (await client.get(url, headers=owner.headers)).json()
    assert [item["id"] for item in everything["items"]] == [other_run, *reversed(runs)]
    assert everything["next_before"] is None
    assert (await client.get(url, headers=owner.headers, params={"status": "failed"})).json()["items"] == []
    assert (await client.get(url, headers=owner.headers, params={"status": "exploded"})).status_code == 422

    assert (await client.get(url, headers=owner.headers, params={"parent": runs[0]})).json()["items"] == []

    events = await stored_events(client, owner, runs[0])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert (events[0]["type"], events[-1]["type"]) == ("execution_started", "execution_completed")
    later = (await client.get(f"{url}/{runs[0]}/events?after=2", headers=owner.headers)).json()
    assert later == events[2:]
    assert [e["seq"] for e in later] == list(range(3, len(events) + 1))
    assert (await client.get(f"{url}/{runs[0]}/events?after=2&limit=2", headers=owner.headers)).json() == events[2:4]
    # Numbers past the database's INTEGER are refused, not sent to it.
    huge = "99999999999"
    too_far = [
        await client.get(f"{url}/{runs[0]}/events?after={huge}", headers=owner.headers),
        await client.get(f"{url}/{runs[0]}/stream?after={huge}", headers=owner.headers),
        await client.get(f"{url}/{runs[0]}/stream", headers=owner.headers | {"Last-Event-ID": huge}),
        await client.post(f"/api/flows/{flow_id}/executions", headers=owner.headers, json={"version": int(huge)}),
    ]
    assert [r.status_code for r in too_far] == [422] * len(too_far)


async def test_run_waits_for_the_outputs_or_streams_the_events(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = (await create_flow(client, owner, echo_flow(), name="echo"))["version"]["flow_id"]
    waited = await client.post(f"/api/flows/{flow_id}/run", headers=owner.headers, json={"inputs": {"topic": "owls"}})
    assert waited.status_code == 200, waited.text
    result = waited.json()
    assert (result["status"], result["outputs"], result["error"], result["finished"]) == (
        "completed",
        {"result": "owls"},
        None,
        True,
    )
    assert (await client.get(f"/api/executions/{result['execution_id']}", headers=owner.headers)).json()[
        "status"
    ] == "completed"

    streamed = await client.post(
        f"/api/flows/{flow_id}/run", headers=owner.headers, json={"inputs": {"topic": "bats"}, "stream": True}
    )
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    messages = parse_sse(streamed.text)
    assert seqs(messages) == list(range(1, len(messages) + 1))
    assert messages[0].event == "execution_started"
    assert messages[-1].event == "execution_completed"
    assert messages[-1].data["data"]["outputs"] == {"result": "bats"}
    assert all(m.data["seq"] == m.id and m.data["type"] == m.event for m in messages)

    # A run still going at the timeout answers with where it stands.
    provider = await scripted_provider(client, owner, llm_server)
    slow_flow = (await create_flow(client, owner, llm_flow(provider), name="slow"))["version"]["flow_id"]
    llm_server.script(slow_reply(10, 0.1))
    early = await client.post(
        f"/api/flows/{slow_flow}/run", headers=owner.headers, json={"inputs": {"topic": "x"}, "timeout_s": 0.2}
    )
    assert early.status_code == 200, early.text
    assert (early.json()["status"], early.json()["finished"], early.json()["outputs"]) == ("running", False, {})
    late = await ended(client, owner, early.json()["execution_id"])
    assert late["outputs"] == {"result": reply_text(10)}


async def test_bad_runs_are_refused_saying_what_to_fix(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = (await create_flow(client, owner, echo_flow(), name="echo"))["version"]["flow_id"]
    url = f"/api/flows/{flow_id}"

    wrong_type = await client.post(f"{url}/executions", headers=owner.headers, json={"inputs": {"topic": 42}})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["error"] == "InvalidInput"
    assert [p["field"] for p in wrong_type.json()["problems"]] == ["inputs.topic"]
    assert "must be a string, not an integer" in wrong_type.json()["detail"]
    unknown_input = await client.post(f"{url}/run", headers=owner.headers, json={"inputs": {"topic": "x", "colour": 1}})
    assert unknown_input.status_code == 422
    assert [p["field"] for p in unknown_input.json()["problems"]] == ["inputs.colour"]
    nul = await client.post(f"{url}/executions", headers=owner.headers, json={"inputs": {"topic": "a\x00b"}})
    assert nul.status_code == 422
    extra = await client.post(f"{url}/executions", headers=owner.headers, json={"inputs": {}, "priority": 1})
    assert extra.status_code == 422
    assert [p["field"] for p in extra.json()["problems"]] == ["priority"]

    saved = await client.post(f"{url}/versions", headers=owner.headers, json={"document": broken_flow()})
    assert saved.status_code == 201, saved.text
    assert saved.json()["valid"] is False
    refused = [
        await client.post(f"{url}/executions", headers=owner.headers, json={}),
        await client.post(f"{url}/run", headers=owner.headers, json={}),
        await client.post(f"{url}/run", headers=owner.headers, json={"stream": True}),
    ]
    for answer in refused:
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "FlowInvalid"
        assert [(p["node_id"], p["field"]) for p in answer.json()["problems"]] == [("check", "expression")]
    # The earlier version still runs.
    assert await start(client, owner, flow_id, inputs={"topic": "x"}, version=1)
    assert (await client.post(f"{url}/executions", headers=owner.headers, json={"version": 7})).status_code == 404

    unknown = uuid.uuid4()
    assert (await client.post(f"/api/flows/{unknown}/executions", headers=owner.headers, json={})).status_code == 404
    assert (await client.post(f"/api/flows/{unknown}/run", headers=owner.headers, json={})).status_code == 404
    assert (await client.get(f"/api/executions/{unknown}", headers=owner.headers)).status_code == 404
    assert (await client.get(f"/api/executions/{unknown}/events", headers=owner.headers)).status_code == 404
    assert (await client.get(f"/api/executions/{unknown}/stream", headers=owner.headers)).status_code == 404
    assert (await client.post(f"/api/executions/{unknown}/cancel", headers=owner.headers)).status_code == 404
    assert (await client.get("/api/executions", headers=owner.headers, params={"flow": "nope"})).status_code == 422
    resume = await client.get(
        f"/api/executions/{unknown}/stream", headers=owner.headers | {"Last-Event-ID": "not a number"}
    )
    assert resume.status_code == 422


async def test_a_required_input_left_out_is_refused(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = (await create_flow(client, owner, echo_flow(), name="echo"))["version"]["flow_id"]
    missing = await client.post(f"/api/flows/{flow_id}/executions", headers=owner.headers, json={"inputs": {}})
    assert missing.status_code == 422, missing.text
    assert [p["field"] for p in missing.json()["problems"]] == ["inputs.topic"]


# -- who may do what ---------------------------------------------------------------------------


async def test_a_viewer_watches_runs_but_cannot_start_or_cancel_them(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    viewer = await join(client, await invite(client, owner, "viewer"), "viewer@example.com")
    provider = await scripted_provider(client, owner, llm_server)
    flow_id = (await create_flow(client, owner, llm_flow(provider), name="slow"))["version"]["flow_id"]
    llm_server.script(slow_reply(10, 0.1))
    execution_id = await start(client, owner, flow_id, inputs={"topic": "x"})
    url = f"/api/executions/{execution_id}"

    refused = [
        await client.post(f"/api/flows/{flow_id}/executions", headers=viewer.headers, json={"inputs": {"topic": "x"}}),
        await client.post(f"/api/flows/{flow_id}/run", headers=viewer.headers, json={"inputs": {"topic": "x"}}),
        await client.post(f"{url}/cancel", headers=viewer.headers),
    ]
    assert [r.status_code for r in refused] == [403] * 3
    assert "needs 'editor'" in refused[0].json()["detail"]
    assert "needs 'editor'" in refused[2].json()["detail"]

    watched = await client.get(f"{url}/stream", headers=viewer.headers)  # follows the run to its end
    assert watched.status_code == 200
    assert parse_sse(watched.text)[-1].event == "execution_completed"
    read = [
        await client.get("/api/executions", headers=viewer.headers),
        await client.get(url, headers=viewer.headers),
        await client.get(f"{url}/events", headers=viewer.headers),
        await client.get(f"{url}/stream?snapshot=1", headers=viewer.headers),
    ]
    assert [r.status_code for r in read] == [200] * 4
    assert [item["id"] for item in read[0].json()["items"]] == [execution_id]
    assert read[1].json()["status"] == "completed"  # the viewer's cancel changed nothing
    assert len(llm_server.requests) == 1  # and no run of theirs ever started


async def test_another_tenants_execution_is_not_found(client: httpx.AsyncClient) -> None:
    acme = await sign_up(client, "owner@acme.example", "acme")
    globex = await sign_up(client, "owner@globex.example", "globex")
    flow_id = (await create_flow(client, acme, echo_flow(), name="echo"))["version"]["flow_id"]
    execution_id = await start(client, acme, flow_id, inputs={"topic": "private"})
    await ended(client, acme, execution_id)
    url = f"/api/executions/{execution_id}"
    answers = [
        await client.get(url, headers=globex.headers),
        await client.get(f"{url}/events", headers=globex.headers),
        await client.get(f"{url}/stream", headers=globex.headers),
        await client.get(f"{url}/stream?snapshot=1", headers=globex.headers),
        await client.post(f"{url}/cancel", headers=globex.headers),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert all("private" not in a.text for a in answers)
    assert (await client.get("/api/executions", headers=globex.headers)).json()["items"] == []
    assert (await client.get(f"/api/executions?flow={flow_id}", headers=globex.headers)).json()["items"] == []
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=acme.headers)).json()["outputs"] == {"result": "private"}


# -- watching: SSE replay, resume and snapshots ----------------------------------------------


async def test_a_watcher_that_reconnects_with_last_event_id_gets_every_event_exactly_once(
    services: Services, app: FastAPI, client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = await scripted_provider(client, owner, llm_server)
    flow_id = (await create_flow(client, owner, llm_flow(provider), name="slow"))["version"]["flow_id"]
    llm_server.script(slow_reply(30, 0.05))
    execution_id = await start(client, owner, flow_id, inputs={"topic": "owls"})
    stream_url = f"/api/executions/{execution_id}/stream"

    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        first: list[Message] = []
        reader = SSEReader()
        async with http.stream("GET", stream_url, headers=owner.headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                message = reader.feed(line)
                if message is not None:
                    first.append(message)
                if len([m for m in first if m.event == "token"]) >= 3:
                    break  # hang up mid-run
        assert first[-1].event == "token"
        assert (await client.get(f"/api/executions/{execution_id}", headers=owner.headers)).json()[
            "status"
        ] == "running"
        # The server noticed the hang-up and stopped following the run for it.
        bus = services.backends.bus
        assert isinstance(bus, MemoryEventBus)
        await until(lambda: bus.subscriber_count(f"executions:{execution_id}") == 0)

        second: list[Message] = []
        reader = SSEReader()
        resume = owner.headers | {"Last-Event-ID": str(first[-1].id)}
        async with http.stream("GET", stream_url, headers=resume) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                message = reader.feed(line)
                if message is not None:
                    second.append(message)

    together = first + second
    assert seqs(together) == list(range(1, len(together) + 1))  # no gap, no repeat
    assert together[-1].event == "execution_completed"
    assert "".join(m.data["data"]["text"] for m in together if m.event == "token") == reply_text(30)
    stored = await stored_events(client, owner, execution_id)
    assert [(m.id, m.event, m.data) for m in together] == [(e["seq"], e["type"], e) for e in stored]

    # `?after=` replays a finished run from there, and resuming after its last event gives nothing.
    replay = parse_sse((await client.get(f"{stream_url}?after=4", headers=owner.headers)).text)
    assert seqs(replay) == list(range(5, len(together) + 1))
    last = owner.headers | {"Last-Event-ID": str(len(together))}
    assert parse_sse((await client.get(stream_url, headers=last)).text) == []


async def test_a_snapshot_of_a_finished_run_is_one_event_then_the_end(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = (await create_flow(client, owner, echo_flow(), name="echo"))["version"]["flow_id"]
    execution_id = await start(client, owner, flow_id, inputs={"topic": "owls"})
    await ended(client, owner, execution_id)
    last_seq = len(await stored_events(client, owner, execution_id))

    response = await client.get(f"/api/executions/{execution_id}/stream?snapshot=1", headers=owner.headers)
    assert response.status_code == 200
    [snapshot] = parse_sse(response.text)
    assert (snapshot.event, snapshot.id) == ("snapshot", last_seq)
    state = snapshot.data
    assert (state["execution_id"], state["seq"], state["status"], state["finished"]) == (
        execution_id,
        last_seq,
        "completed",
        True,
    )
    assert state["outputs"] == {"result": "owls"}
    assert state["nodes"] == {
        "in": {"status": "completed", "attempt": 1, "output": {"topic": "owls"}},
        "out": {"status": "completed", "attempt": 1, "output": "owls"},
    }


async def test_a_snapshot_of_a_running_run_comes_first_then_live_events(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = await scripted_provider(client, owner, llm_server)
    flow_id = (await create_flow(client, owner, llm_flow(provider), name="slow"))["version"]["flow_id"]
    llm_server.script(slow_reply(40, 0.05))
    execution_id = await start(client, owner, flow_id, inputs={"topic": "owls"})
    token = await until_event(client, owner, execution_id, "token")

    response = await client.get(f"/api/executions/{execution_id}/stream?snapshot=1", headers=owner.headers)
    assert response.status_code == 200
    snapshot, *live = parse_sse(response.text)
    assert snapshot.event == "snapshot"
    assert snapshot.id is not None
    assert snapshot.id >= token["seq"]
    state = snapshot.data
    assert (state["status"], state["finished"], state["seq"]) == ("running", False, snapshot.id)
    assert state["nodes"]["in"] == {"status": "completed", "attempt": 1, "output": {"topic": "owls"}}
    assert state["nodes"]["ask"]["status"] == "running"
    assert "out" not in state["nodes"]
    assert live, "the run ended before the snapshot was taken; make the reply slower"
    assert seqs(live) == list(range(snapshot.id + 1, snapshot.id + 1 + len(live)))
    assert live[-1].event == "execution_completed"
    assert live[-1].data["data"]["outputs"] == {"result": reply_text(40)}
    assert len(await stored_events(client, owner, execution_id)) == live[-1].id


# -- replicas: two service containers on one PostgreSQL database and Redis ----------------------


@dataclass
class Replicas:
    first: Services
    second: Services
    one: httpx.AsyncClient
    two: httpx.AsyncClient
    app_two: FastAPI


@pytest.fixture
async def replicas(pg_database: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    """Two containers (as two app processes would have) on one PostgreSQL database, with the Redis bus."""
    first = await started_services(tmp_path / "one", pg_url(pg_database), "redis")
    second = await started_services(tmp_path / "two", pg_url(pg_database), "redis")
    app_one, app_two = api_app(first), api_app(second)
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app_one), base_url="http://one") as one,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app_two), base_url="http://two") as two,
        ):
            yield Replicas(first, second, one, two, app_two)
    finally:
        try:
            await second.aclose()
        finally:
            await first.aclose()


async def test_a_watcher_on_another_replica_receives_the_events_live_in_order(
    replicas: Replicas, llm_server: ScriptedLLMServer
) -> None:
    assert isinstance(replicas.second.backends.bus, RedisEventBus)
    one = replicas.one
    owner = await sign_up(one, "owner@example.com", "acme")
    provider = await scripted_provider(one, owner, llm_server)
    flow_id = (await create_flow(one, owner, llm_flow(provider), name="slow"))["version"]["flow_id"]
    llm_server.script(slow_reply(20, 0.1))
    execution_id = await start(one, owner, flow_id, inputs={"topic": "owls"})

    arrived: list[tuple[float, Message]] = []
    async with serving(replicas.app_two) as base_url, httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        reader = SSEReader()
        async with http.stream("GET", f"/api/executions/{execution_id}/stream", headers=owner.headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                message = reader.feed(line)
                if message is not None:
                    arrived.append((time.monotonic(), message))
    messages = [m for _, m in arrived]
    assert seqs(messages) == list(range(1, len(messages) + 1))
    assert messages[-1].event == "execution_completed"
    assert messages[-1].data["data"]["outputs"] == {"result": reply_text(20)}
    stored = await stored_events(one, owner, execution_id)
    assert [(m.id, m.event) for m in messages] == [(e["seq"], e["type"]) for e in stored]
    # Live, not replayed at the end: tokens came in over the ~2 s of the reply, and the end well
    # before the 15 s after which a watcher that heard nothing would re-read the store.
    token_times = [at for at, m in arrived if m.event == "token"]
    assert token_times[-1] - token_times[0] > 1.0
    assert arrived[-1][0] - token_times[0] < 10


async def test_cancelling_on_another_replica_stops_the_run_where_it_runs(
    replicas: Replicas, llm_server: ScriptedLLMServer
) -> None:
    one, two = replicas.one, replicas.two
    owner = await sign_up(one, "owner@example.com", "acme")
    provider = await scripted_provider(one, owner, llm_server)
    flow_id = (await create_flow(one, owner, llm_flow(provider), name="slow"))["version"]["flow_id"]
    llm_server.script(slow_reply(200, 0.1))  # 20 s unless cancelled
    execution_id = await start(one, owner, flow_id, inputs={"topic": "owls"})
    await until_event(two, owner, execution_id, "token")

    asked = time.monotonic()
    cancelled = await two.post(f"/api/executions/{execution_id}/cancel", headers=owner.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert time.monotonic() - asked < 5
    assert cancelled.json()["status"] == "cancelled"
    seen_by_one = (await one.get(f"/api/executions/{execution_id}", headers=owner.headers)).json()
    assert seen_by_one["status"] == "cancelled"
    assert {r["node_id"]: r["status"] for r in seen_by_one["node_runs"]} == {"in": "completed", "ask": "cancelled"}
    events = await stored_events(two, owner, execution_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "execution_cancelled"
    again = await two.post(f"/api/executions/{execution_id}/cancel", headers=owner.headers)
    assert again.status_code == 409
