"""Debugging and pausing runs over HTTP: run from a node, overrides, pins, breakpoints, retry, human responses.

Real app, real tokens, on SQLite and PostgreSQL. The rules themselves (what is reused,
what runs again, how a pause continues) are specified in `tests/executor/test_debugging.py`;
these tests pin down what a client sends and gets back: the request fields, the execution
record with its node runs' `flags` and `options`, the status codes, the inbox of waiting
runs and the snapshot a watcher of a paused run receives.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import Account, sign_up
from tests.api.test_executions import (
    Message,
    SSEReader,
    ended,
    parse_sse,
    scripted_provider,
    serving,
    start,
    stored_events,
)
from tests.api.test_flows import create_flow
from tests.api.test_members import invite, join
from tests.executor.conftest import document, edge, node, started_services
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from wiring.services import Services

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

TOPIC = [{"name": "topic", "type": "string"}]
PROMPT = "Publish the note about {{ inputs.topic }}?"

# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """Replaces `tests/api/conftest.py`'s: the same, plus loopback LLM endpoints allowed."""
    built = await started_services(tmp_path, db_url)
    try:
        yield built
    finally:
        await built.aclose()


def chain_flow(provider_id: str, *, pin_draft: Any = None) -> dict[str, Any]:
    """input -> draft (llm) -> polish (llm) -> out; `pin_draft` becomes draft's pinned output."""
    draft = node("draft", "llm", provider_id=provider_id, prompt="Draft about {{ inputs.topic }}", stream=False)
    if pin_draft is not None:
        draft["pinned_output"] = pin_draft
    polish = node("polish", "llm", provider_id=provider_id, prompt="Polish: {{ nodes.draft.output }}", stream=False)
    return document(
        [node("in", "input"), draft, polish, node("out", "output", value="{{ nodes.polish.output }}")],
        [edge("in", "draft"), edge("draft", "polish"), edge("polish", "out")],
        TOPIC,
    )


def fork_flow() -> dict[str, Any]:
    """input -> check (condition) -> two outputs: nothing slow, so only the pauses take time."""
    return document(
        [
            node("in", "input"),
            node("check", "condition", expression="inputs.topic == 'owls'"),
            node("yes", "output", name="yes", value="yes to {{ inputs.topic }}"),
            node("also", "output", name="also", value="also {{ inputs.topic }}"),
        ],
        [edge("in", "check"), edge("check", "yes", "true"), edge("check", "also", "true")],
        TOPIC,
    )


def review_flow(**human: Any) -> dict[str, Any]:
    """input -> review (human) -> out: the run waits at `review` until a person answers."""
    return document(
        [
            node("in", "input"),
            node("review", "human", prompt=PROMPT, value="A note about {{ inputs.topic }}", **human),
            node("out", "output", value="{{ nodes.review.output }}"),
        ],
        [edge("in", "review"), edge("review", "out")],
        TOPIC,
    )


async def flow_of(client: httpx.AsyncClient, who: Account, flow: dict[str, Any]) -> str:
    created = await create_flow(client, who, flow)
    assert created["problems"] == [], created["problems"]
    return str(created["version"]["flow_id"])


def prompts(server: ScriptedLLMServer) -> list[str]:
    """The user message of every request the scripted LLM server got, in order."""
    return [request.json["messages"][-1]["content"] for request in server.requests]


def runs(execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An execution record's node runs by node id."""
    return {run["node_id"]: run for run in execution["node_runs"]}


def waiting_nodes(execution: dict[str, Any]) -> set[str]:
    return {run["node_id"] for run in execution["node_runs"] if run["status"] == "waiting"}


async def run_and_wait(client: httpx.AsyncClient, who: Account, flow_id: str, **body: Any) -> dict[str, Any]:
    """`POST /run`: the execution record once the run ended or paused."""
    body = {"inputs": {"topic": "owls"}} | body
    response = await client.post(f"/api/flows/{flow_id}/run", headers=who.headers, json=body)
    assert response.status_code == 200, response.text
    execution = await client.get(f"/api/executions/{response.json()['execution_id']}", headers=who.headers)
    return dict(execution.json())


async def paused(
    client: httpx.AsyncClient, who: Account, execution_id: str, nodes: set[str], timeout_s: float = 30
) -> dict[str, Any]:
    """The execution once it waits with exactly `nodes` waiting (polled)."""
    async with asyncio.timeout(timeout_s):
        while True:
            response = await client.get(f"/api/executions/{execution_id}", headers=who.headers)
            assert response.status_code == 200, response.text
            execution = dict(response.json())
            if execution["status"] == "waiting" and waiting_nodes(execution) == nodes:
                return execution
            await asyncio.sleep(0.02)


async def waiting_for_review(client: httpx.AsyncClient, who: Account, flow_id: str, topic: str = "owls") -> str:
    """Start a run of a `review_flow`; its id once it waits at `review`."""
    execution_id = await start(client, who, flow_id, inputs={"topic": topic})
    await paused(client, who, execution_id, {"review"})
    return execution_id


async def respond(
    client: httpx.AsyncClient, who: Account, execution_id: str, answer: dict[str, Any], node_id: str = "review"
) -> httpx.Response:
    return await client.post(
        f"/api/executions/{execution_id}/nodes/{node_id}/respond", headers=who.headers, json=answer
    )


def fields(response: httpx.Response) -> list[str]:
    return [problem["field"] for problem in response.json()["problems"]]


# -- run from a node, overrides and pins ---------------------------------------------------------


async def test_a_run_from_a_node_reuses_the_earlier_runs_outputs_and_asks_the_model_once(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await flow_of(client, owner, chain_flow(await scripted_provider(client, owner, llm_server)))
    llm_server.script(Reply.say("first draft"), Reply.say("first polish"))
    first = await run_and_wait(client, owner, flow_id)
    assert (first["status"], first["outputs"]) == ("completed", {"result": "first polish"})
    assert len(llm_server.requests) == 2

    llm_server.script(Reply.say("second polish"))
    again_id = await start(
        client, owner, flow_id, inputs={"topic": "owls"}, from_node="polish", reuse_execution=first["id"]
    )
    again = await ended(client, owner, again_id)

    assert (again["status"], again["outputs"]) == ("completed", {"result": "second polish"})
    assert len(llm_server.requests) == 3  # one request: polish; draft was not asked again
    assert prompts(llm_server)[-1] == "Polish: first draft"
    draft = runs(again)["draft"]
    assert (draft["status"], draft["output"], draft["flags"]["reused_from"]) == (
        "completed",
        "first draft",
        first["id"],
    )
    assert "reused_from" not in runs(again)["polish"]["flags"]
    assert again["options"]["from_node"] == "polish"
    assert again["options"]["reuse_execution"] == first["id"]
    draft_events = [e["type"] for e in await stored_events(client, owner, again_id) if e["node_id"] == "draft"]
    assert draft_events == ["node_completed"]  # announced with the reused output, never started

    # `run` (start and wait) takes the same fields; left out, `reuse_execution` is the flow's latest run.
    llm_server.script(Reply.say("third polish"))
    latest = await run_and_wait(client, owner, flow_id, from_node="polish")
    assert (latest["status"], latest["outputs"]) == ("completed", {"result": "third polish"})
    assert latest["options"]["reuse_execution"] == again_id
    assert runs(latest)["draft"]["flags"]["reused_from"] == again_id
    assert len(llm_server.requests) == 4


async def test_overrides_and_pins_are_marked_in_the_node_runs_and_a_plain_run_ignores_pins(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = await scripted_provider(client, owner, llm_server)
    flow_id = await flow_of(client, owner, chain_flow(provider, pin_draft="pinned draft"))

    llm_server.script(Reply.say("fresh draft"), Reply.say("p1"))
    plain = await run_and_wait(client, owner, flow_id)
    assert plain["status"] == "completed", plain["error"]
    assert prompts(llm_server) == ["Draft about owls", "Polish: fresh draft"]  # the pin was not used
    assert runs(plain)["draft"]["flags"] == {}
    assert plain["options"]["use_pins"] is False

    llm_server.script(Reply.say("p2"))
    pinned = await run_and_wait(client, owner, flow_id, use_pins=True)
    assert pinned["status"] == "completed", pinned["error"]
    assert prompts(llm_server)[2:] == ["Polish: pinned draft"]
    assert (runs(pinned)["draft"]["output"], runs(pinned)["draft"]["flags"]) == ("pinned draft", {"pinned": True})
    assert runs(pinned)["polish"]["flags"] == {}
    assert pinned["options"]["use_pins"] is True
    event = next(e for e in await stored_events(client, owner, pinned["id"]) if e["node_id"] == "draft")
    assert (event["type"], event["data"]["source"], event["data"]["output"]) == ("node_pinned", "pin", "pinned draft")
    snapshot = await client.get(f"/api/executions/{pinned['id']}/stream?snapshot=true", headers=owner.headers)
    [state] = parse_sse(snapshot.text)
    assert state.data["nodes"]["draft"] == {"status": "pinned", "output": "pinned draft"}
    assert state.data["nodes"]["polish"]["status"] == "completed"

    # An override wins over the pin, and may be any JSON.
    llm_server.script(Reply.say("p3"))
    overridden = await run_and_wait(client, owner, flow_id, use_pins=True, overrides={"draft": ["given", 1]})
    assert overridden["status"] == "completed", overridden["error"]
    assert len(llm_server.requests) == 4
    assert "given" in prompts(llm_server)[-1]
    assert (runs(overridden)["draft"]["output"], runs(overridden)["draft"]["flags"]) == (
        ["given", 1],
        {"overridden": True},
    )
    assert overridden["options"]["overrides"] == {"draft": ["given", 1]}


async def test_options_naming_unknown_nodes_or_outputs_that_are_missing_are_refused(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await flow_of(client, owner, chain_flow(await scripted_provider(client, owner, llm_server)))
    url = f"/api/flows/{flow_id}"
    topic = {"inputs": {"topic": "owls"}}
    llm_server.script(Reply.error(400, "draft broke"))
    failed = await run_and_wait(client, owner, flow_id)
    assert failed["status"] == "failed"
    asked = len(llm_server.requests)

    unknown = [
        await client.post(f"{url}/executions", headers=owner.headers, json=topic | {"from_node": "nope"}),
        await client.post(f"{url}/executions", headers=owner.headers, json=topic | {"overrides": {"nope": 1}}),
        await client.post(f"{url}/executions", headers=owner.headers, json=topic | {"breakpoints": ["polish", "nope"]}),
        await client.post(f"{url}/run", headers=owner.headers, json=topic | {"breakpoints": ["nope"]}),
    ]
    assert [r.status_code for r in unknown] == [422] * len(unknown)
    assert [fields(r) for r in unknown] == [["from_node"], ["overrides.nope"], ["breakpoints.1"], ["breakpoints.0"]]
    assert all("'nope'" in r.json()["detail"] for r in unknown)

    # The failed run has no output of draft for polish: the answer says where to run from instead.
    missing = await client.post(
        f"{url}/executions",
        headers=owner.headers,
        json=topic | {"from_node": "polish", "reuse_execution": failed["id"]},
    )
    assert missing.status_code == 422, missing.text
    assert fields(missing) == ["from_node"]
    assert "'draft'" in missing.json()["detail"]
    assert "run from 'draft'" in missing.json()["detail"]
    lone = await client.post(f"{url}/executions", headers=owner.headers, json=topic | {"reuse_execution": failed["id"]})
    assert lone.status_code == 422, lone.text
    assert fields(lone) == ["from_node"]
    not_an_id = await client.post(f"{url}/executions", headers=owner.headers, json=topic | {"from_node": "a b"})
    assert not_an_id.status_code == 422

    assert len(llm_server.requests) == asked  # nothing ran
    listed = (await client.get("/api/executions", headers=owner.headers, params={"flow": flow_id})).json()["items"]
    assert [item["id"] for item in listed] == [failed["id"]]  # and no run was stored

    # Given in overrides, the missing output is no longer missing.
    llm_server.script(Reply.say("polished"))
    body = topic | {"from_node": "polish", "reuse_execution": failed["id"], "overrides": {"draft": "hand-written"}}
    fixed = await client.post(f"{url}/run", headers=owner.headers, json=body)
    assert fixed.status_code == 200, fixed.text
    assert (fixed.json()["status"], fixed.json()["outputs"]) == ("completed", {"result": "polished"})
    assert prompts(llm_server)[-1] == "Polish: hand-written"


async def test_a_problem_names_the_breakpoint_by_its_place_in_the_request_even_after_repeats(
    client: httpx.AsyncClient,
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await flow_of(client, owner, fork_flow())
    body = {"inputs": {"topic": "owls"}, "breakpoints": ["check", "check", "nope"]}
    refused = await client.post(f"/api/flows/{flow_id}/executions", headers=owner.headers, json=body)
    assert refused.status_code == 422, refused.text
    assert fields(refused) == ["breakpoints.2"]  # "nope" is the third entry; the repeated "check" is fine


# -- breakpoints: pause, step, resume --------------------------------------------------------------


async def test_a_breakpoint_pauses_the_run_then_step_and_resume_finish_it(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await flow_of(client, owner, fork_flow())
    url = f"/api/flows/{flow_id}/run"

    answer = await client.post(url, headers=owner.headers, json={"inputs": {"topic": "owls"}, "breakpoints": ["check"]})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["finished"]) == ("waiting", False)  # `run` returns at the pause
    execution_id = answer.json()["execution_id"]
    base = f"/api/executions/{execution_id}"
    at_check = (await client.get(base, headers=owner.headers)).json()
    assert at_check["options"]["breakpoints"] == ["check"]
    assert {k: r["status"] for k, r in runs(at_check).items()} == {"in": "completed", "check": "waiting"}
    assert runs(at_check)["check"]["attempts"] == 0  # paused before it ran
    assert runs(at_check)["check"]["flags"]["waiting"]["reason"] == "breakpoint"

    stepped = await client.post(f"{base}/step", headers=owner.headers)
    assert stepped.status_code == 200, stepped.text
    assert stepped.json()["id"] == execution_id
    at_outputs = await paused(client, owner, execution_id, {"yes", "also"})  # check ran, the next nodes wait
    assert runs(at_outputs)["check"]["status"] == "completed"
    assert runs(at_outputs)["yes"]["flags"]["waiting"]["reason"] == "step"

    resumed = await client.post(f"{base}/resume", headers=owner.headers)
    assert resumed.status_code == 200, resumed.text
    done = await ended(client, owner, execution_id)
    assert (done["status"], done["outputs"]) == ("completed", {"yes": "yes to owls", "also": "also owls"})
    assert {r["attempts"] for r in done["node_runs"]} == {1}  # every node ran once, across the pauses
    kinds = [e["type"] for e in await stored_events(client, owner, execution_id)]
    assert (kinds.count("execution_waiting"), kinds.count("execution_resumed")) == (2, 2)
    assert kinds.count("node_waiting") == 3
    assert kinds[-1] == "execution_completed"

    for action in ("resume", "step"):
        again = await client.post(f"{base}/{action}", headers=owner.headers)
        assert again.status_code == 409, again.text
        assert "has ended (completed)" in again.json()["detail"]


# -- retry -----------------------------------------------------------------------------------------


async def test_retry_starts_a_linked_run_of_the_failed_nodes_and_a_completed_run_is_a_conflict(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await flow_of(client, owner, chain_flow(await scripted_provider(client, owner, llm_server)))
    llm_server.script(Reply.say("good draft"), Reply.error(400, "polish broke"))
    failed = await run_and_wait(client, owner, flow_id)
    assert failed["status"] == "failed"

    llm_server.script(Reply.say("polished at last"))
    retried = await client.post(f"/api/executions/{failed['id']}/retry", headers=owner.headers)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] != failed["id"]
    assert retried.json()["options"]["retry_of"] == failed["id"]
    assert retried.json()["status"] == "running"
    done = await ended(client, owner, retried.json()["id"])
    assert (done["status"], done["outputs"], done["version"]) == ("completed", {"result": "polished at last"}, 1)
    assert len(llm_server.requests) == 3  # only polish asked the model again
    assert prompts(llm_server)[-1] == "Polish: good draft"
    assert runs(done)["draft"]["flags"]["reused_from"] == failed["id"]

    conflict = await client.post(f"/api/executions/{done['id']}/retry", headers=owner.headers)
    assert conflict.status_code == 409, conflict.text
    assert "only a failed, cancelled or interrupted run" in conflict.json()["detail"]
    missing = await client.post(f"/api/executions/{uuid.uuid4()}/retry", headers=owner.headers)
    assert missing.status_code == 404


async def test_retry_with_latest_runs_the_flows_latest_version(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = await scripted_provider(client, owner, llm_server)
    flow_id = await flow_of(client, owner, chain_flow(provider))
    llm_server.script(Reply.say("good draft"), Reply.error(400, "polish broke"))
    failed = await run_and_wait(client, owner, flow_id)
    assert failed["status"] == "failed"
    fixed = chain_flow(provider)
    fixed["nodes"][2]["data"]["prompt"] = "Polish carefully: {{ nodes.draft.output }}"
    saved = await client.post(f"/api/flows/{flow_id}/versions", headers=owner.headers, json={"document": fixed})
    assert saved.status_code == 201, saved.text

    llm_server.script(Reply.say("careful polish"))
    retried = await client.post(
        f"/api/executions/{failed['id']}/retry", headers=owner.headers, params={"latest": "true"}
    )
    assert retried.status_code == 201, retried.text
    done = await ended(client, owner, retried.json()["id"])
    assert (done["status"], done["version"]) == ("completed", 2)
    assert prompts(llm_server)[-1] == "Polish carefully: good draft"  # the new version's node, the old draft


# -- human nodes: respond ----------------------------------------------------------------------------


async def test_a_person_approves_edits_or_rejects_at_a_human_node_and_the_run_goes_on(
    client: httpx.AsyncClient,
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await flow_of(client, owner, review_flow())

    approved = await waiting_for_review(client, owner, flow_id)
    answer = await respond(client, owner, approved, {"action": "approve"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == approved
    assert answer.json()["status"] in {"running", "completed"}  # no longer waiting
    done = await ended(client, owner, approved)
    assert (done["status"], done["outputs"]) == ("completed", {"result": "A note about owls"})
    assert runs(done)["review"]["flags"]["response"]["action"] == "approve"
    kinds = [e["type"] for e in await stored_events(client, owner, approved)]
    assert kinds.index("node_waiting") < kinds.index("execution_waiting") < kinds.index("execution_resumed")

    edited = await waiting_for_review(client, owner, flow_id)
    answer = await respond(client, owner, edited, {"action": "edit", "output": {"note": "a better note"}})
    assert answer.status_code == 200, answer.text
    done = await ended(client, owner, edited)
    assert (done["status"], done["outputs"]) == ("completed", {"result": {"note": "a better note"}})

    rejected = await waiting_for_review(client, owner, flow_id)
    answer = await respond(client, owner, rejected, {"action": "reject", "reason": "not on brand"})
    assert answer.status_code == 200, answer.text
    done = await ended(client, owner, rejected)
    assert done["status"] == "failed"
    assert "rejected by a person: not on brand" in done["error"]
    review = runs(done)["review"]
    assert (review["status"], review["error"]) == ("failed", "rejected by a person: not on brand")
    assert review["flags"]["response"]["reason"] == "not on brand"
    assert "out" not in runs(done)  # the run ended at the rejection


async def test_answers_that_do_not_fit_are_refused_and_a_node_takes_one_answer(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    flow_id = await flow_of(client, owner, review_flow(allow_edit=False))
    execution_id = await waiting_for_review(client, owner, flow_id)
    base = f"/api/executions/{execution_id}"

    bad = [
        await respond(client, owner, execution_id, {"action": "maybe"}),
        await respond(client, owner, execution_id, {"action": "edit", "output": "mine"}),  # editing is not allowed
        await respond(client, owner, execution_id, {"action": "approve", "colour": "red"}),
    ]
    assert [r.status_code for r in bad] == [422] * len(bad)
    assert [fields(r) for r in bad] == [["action"], ["action"], ["colour"]]
    not_waiting = [
        await respond(client, owner, execution_id, {"action": "approve"}, node_id="in"),
        await respond(client, owner, execution_id, {"action": "approve"}, node_id="out"),
        await respond(client, owner, execution_id, {"action": "approve"}, node_id="nowhere"),
    ]
    assert [r.status_code for r in not_waiting] == [409] * len(not_waiting)
    # Waiting for a person is not a breakpoint, and a waiting run is not one to retry.
    refused = [
        await client.post(f"{base}/resume", headers=owner.headers),
        await client.post(f"{base}/step", headers=owner.headers),
        await client.post(f"{base}/retry", headers=owner.headers),
    ]
    assert [r.status_code for r in refused] == [409] * len(refused)
    assert f"{base}/nodes/review/respond" in refused[0].json()["detail"]
    assert (await client.get(base, headers=owner.headers)).json()["status"] == "waiting"  # none of it changed a thing

    assert (await respond(client, owner, execution_id, {"action": "approve"})).status_code == 200
    twice = await respond(client, owner, execution_id, {"action": "reject", "reason": "changed my mind"})
    assert twice.status_code == 409, twice.text
    done = await ended(client, owner, execution_id)
    assert (done["status"], done["outputs"]) == ("completed", {"result": "A note about owls"})  # the first answer

    # An edit must say what the node outputs instead.
    editable = await flow_of(client, owner, review_flow())
    other = await waiting_for_review(client, owner, editable)
    no_output = await respond(client, owner, other, {"action": "edit"})
    assert no_output.status_code == 422, no_output.text
    assert fields(no_output) == ["output"]
    assert (await client.get(f"/api/executions/{other}", headers=owner.headers)).json()["status"] == "waiting"


# -- who may do what ---------------------------------------------------------------------------------


async def test_a_viewer_sees_a_paused_run_but_cannot_respond_resume_step_or_retry(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    viewer = await join(client, await invite(client, owner, "viewer"), "viewer@example.com")
    review = await waiting_for_review(client, owner, await flow_of(client, owner, review_flow()))
    fork = await flow_of(client, owner, fork_flow())
    at_breakpoint = await run_and_wait(client, owner, fork, breakpoints=["check"])
    assert at_breakpoint["status"] == "waiting"
    cancelled = await run_and_wait(client, owner, fork, breakpoints=["check"])
    assert (await client.post(f"/api/executions/{cancelled['id']}/cancel", headers=owner.headers)).status_code == 200

    refused = [
        await respond(client, viewer, review, {"action": "approve"}),
        await client.post(f"/api/executions/{at_breakpoint['id']}/resume", headers=viewer.headers),
        await client.post(f"/api/executions/{at_breakpoint['id']}/step", headers=viewer.headers),
        await client.post(f"/api/executions/{cancelled['id']}/retry", headers=viewer.headers),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all("needs 'editor'" in r.json()["detail"] for r in refused)

    inbox = await client.get("/api/executions", headers=viewer.headers, params={"status": "waiting"})
    assert inbox.status_code == 200
    assert {item["id"] for item in inbox.json()["items"]} == {review, at_breakpoint["id"]}  # nothing moved on
    listed = (await client.get("/api/executions", headers=owner.headers, params={"status": "running"})).json()
    assert listed["items"] == []  # and the viewer's retry started nothing


async def test_another_tenants_paused_run_is_not_found(client: httpx.AsyncClient) -> None:
    acme = await sign_up(client, "owner@acme.example", "acme")
    globex = await sign_up(client, "owner@globex.example", "globex")
    execution_id = await waiting_for_review(client, acme, await flow_of(client, acme, review_flow()), topic="private")
    base = f"/api/executions/{execution_id}"

    answers = [
        await respond(client, globex, execution_id, {"action": "approve"}),
        await client.post(f"{base}/resume", headers=globex.headers),
        await client.post(f"{base}/step", headers=globex.headers),
        await client.post(f"{base}/retry", headers=globex.headers),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert all("private" not in a.text for a in answers)
    inbox = await client.get("/api/executions", headers=globex.headers, params={"status": "waiting"})
    assert inbox.json()["items"] == []
    # Nor can globex's own run reuse acme's outputs.
    own_flow = await flow_of(client, globex, review_flow())
    reuse = {"inputs": {"topic": "x"}, "from_node": "out", "reuse_execution": execution_id}
    borrowed = await client.post(f"/api/flows/{own_flow}/executions", headers=globex.headers, json=reuse)
    assert borrowed.status_code == 404, borrowed.text
    assert "private" not in borrowed.text
    assert (await client.get(base, headers=acme.headers)).json()["status"] == "waiting"
    assert (await respond(client, acme, str(uuid.uuid4()), {"action": "approve"})).status_code == 404


# -- the inbox and watching a paused run ---------------------------------------------------------------


async def test_the_inbox_lists_the_tenants_waiting_runs_until_they_are_answered(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    review = await flow_of(client, owner, review_flow())
    fork = await flow_of(client, owner, fork_flow())
    finished = await run_and_wait(client, owner, fork)
    assert finished["status"] == "completed"
    asking = await waiting_for_review(client, owner, review)
    at_breakpoint = await run_and_wait(client, owner, fork, breakpoints=["yes"])
    assert at_breakpoint["status"] == "waiting"

    inbox = await client.get("/api/executions", headers=owner.headers, params={"status": "waiting"})
    assert inbox.status_code == 200, inbox.text
    items = inbox.json()["items"]
    assert [item["id"] for item in items] == [at_breakpoint["id"], asking]  # newest first
    assert {item["status"] for item in items} == {"waiting"}
    of_review = await client.get("/api/executions", headers=owner.headers, params={"status": "waiting", "flow": review})
    assert [item["id"] for item in of_review.json()["items"]] == [asking]

    assert (await respond(client, owner, asking, {"action": "approve"})).status_code == 200
    assert (await ended(client, owner, asking))["status"] == "completed"
    inbox = await client.get("/api/executions", headers=owner.headers, params={"status": "waiting"})
    assert [item["id"] for item in inbox.json()["items"]] == [at_breakpoint["id"]]


async def test_a_watcher_of_a_waiting_run_gets_a_snapshot_with_the_question_then_the_rest_live(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    execution_id = await waiting_for_review(client, owner, await flow_of(client, owner, review_flow()))
    stream_url = f"/api/executions/{execution_id}/stream?snapshot=true"

    messages: list[Message] = []
    # A waiting run's stream stays open, so it is read from a real server (httpx's ASGI transport
    # only answers once the response is complete); the answer is given once the snapshot is in.
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        reader = SSEReader()
        async with http.stream("GET", stream_url, headers=owner.headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                message = reader.feed(line)
                if message is None:
                    continue
                messages.append(message)
                if len(messages) == 1:
                    assert (await respond(client, owner, execution_id, {"action": "approve"})).status_code == 200

    snapshot, *live = messages
    assert snapshot.event == "snapshot"
    state = snapshot.data
    assert (state["status"], state["finished"]) == ("waiting", False)
    assert state["nodes"]["in"]["status"] == "completed"
    review = state["nodes"]["review"]
    assert review["status"] == "waiting"
    waiting = review["waiting"]
    assert (waiting["reason"], waiting["prompt"], waiting["proposal"]) == (
        "human",
        "Publish the note about owls?",
        "A note about owls",
    )
    assert waiting["actions"] == ["approve", "reject", "edit"]
    assert "out" not in state["nodes"]

    assert snapshot.id is not None
    assert [m.id for m in live] == list(range(snapshot.id + 1, snapshot.id + 1 + len(live)))
    assert live[0].event == "execution_resumed"
    assert live[-1].event == "execution_completed"
    assert live[-1].data["data"]["outputs"] == {"result": "A note about owls"}
