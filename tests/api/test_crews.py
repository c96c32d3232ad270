"""`/api/agents`, `/api/tasks`, `/api/crews`: records over HTTP, the answers to mistakes, roles and tenants."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.api.conftest import Account, sign_up
from tests.api.test_members import invite, join

RESEARCHER = {"name": "researcher", "role": "Senior {topic} researcher", "goal": "Find out about {topic}."}


async def post(client: httpx.AsyncClient, who: Account, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, headers=who.headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def body_of(view: dict[str, Any], *extra: str) -> dict[str, Any]:
    """A view as a request body again (without what the server adds)."""
    dropped = {"id", "placeholders", "problems", "created_at", "updated_at", *extra}
    return {key: value for key, value in view.items() if key not in dropped}


async def test_an_editor_writes_reads_changes_and_deletes_agents_tasks_and_crews(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    agent = await post(client, owner, "/api/agents", RESEARCHER | {"max_iter": 5})
    assert (agent["placeholders"], agent["max_iter"], agent["tool_ids"]) == (["topic"], 5, [])
    task = await post(
        client,
        owner,
        "/api/tasks",
        {"name": "research", "description": "Research {topic}.", "expected_output": "Notes.", "agent_id": agent["id"]},
    )
    crew = await post(
        client, owner, "/api/crews", {"name": "research_crew", "agent_ids": [agent["id"]], "task_ids": [task["id"]]}
    )
    assert (crew["problems"], crew["placeholders"], crew["process"]) == ([], ["topic"], "sequential")

    for path, record in (("agents", agent), ("tasks", task), ("crews", crew)):
        fetched = await client.get(f"/api/{path}/{record['id']}", headers=owner.headers)
        assert fetched.status_code == 200, fetched.text
        assert fetched.json() == record

    changed = await client.put(
        f"/api/agents/{agent['id']}", headers=owner.headers, json=body_of(agent) | {"goal": "Write for {audience}."}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["placeholders"] == ["topic", "audience"]
    crew_now = (await client.get(f"/api/crews/{crew['id']}", headers=owner.headers)).json()
    assert crew_now["placeholders"] == ["topic", "audience"]

    changed = await client.put(
        f"/api/crews/{crew['id']}", headers=owner.headers, json=body_of(crew) | {"inputs": {"topic": "bees"}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["inputs"] == {"topic": "bees"}

    for path, record in (("crews", crew), ("tasks", task), ("agents", agent)):
        deleted = await client.delete(f"/api/{path}/{record['id']}", headers=owner.headers)
        assert deleted.status_code == 204, deleted.text
        assert deleted.content == b""
        assert (await client.get(f"/api/{path}/{record['id']}", headers=owner.headers)).status_code == 404


async def test_a_new_workspace_has_the_example_crew_and_lists_can_be_searched(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    [example] = (await client.get("/api/crews", headers=owner.headers)).json()
    assert (example["name"], example["problems"], example["placeholders"]) == ("example_crew", [], ["question"])
    assert example["inputs"] == {"question": "What is CrewCanvas?"}
    await post(client, owner, "/api/agents", RESEARCHER)

    def names(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [record["name"] for record in response.json()]

    assert names(await client.get("/api/agents", headers=owner.headers)) == ["assistant", "researcher"]
    assert names(await client.get("/api/agents", headers=owner.headers, params={"search": "HELPFUL"})) == ["assistant"]
    assert names(await client.get("/api/tasks", headers=owner.headers, params={"search": "polish"})) == [
        "polish_answer"
    ]
    assert names(await client.get("/api/crews", headers=owner.headers, params={"search": "nope"})) == []
    refused = await client.get("/api/agents", headers=owner.headers, params={"search": "a\x00b"})
    assert refused.status_code == 422
    assert [p["field"] for p in refused.json()["problems"]] == ["query.search"]


async def test_mistakes_are_answered_with_every_field_to_fix(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    missing_tool, missing_provider = str(uuid.uuid4()), str(uuid.uuid4())
    refused = await client.post(
        "/api/agents",
        headers=owner.headers,
        json=RESEARCHER | {"provider_id": missing_provider, "tool_ids": [missing_tool]},
    )
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "InvalidInput"
    assert [p["field"] for p in body["problems"]] == ["provider_id", "tool_ids.0"]
    assert body["detail"].startswith("cannot save agent 'researcher': agent 'researcher', provider_id: no provider")

    malformed = await client.post("/api/agents", headers=owner.headers, json=RESEARCHER | {"name": "Researcher"})
    assert malformed.status_code == 422
    assert "snake_case" in malformed.json()["detail"]

    taken = await client.post("/api/agents", headers=owner.headers, json=RESEARCHER | {"name": "assistant"})
    assert taken.status_code == 409
    assert taken.json()["detail"] == (
        "an agent named 'assistant' exists already in this workspace; choose another name"
    )

    [draft, polish] = (await client.get("/api/tasks", headers=owner.headers)).json()
    backwards = await client.post(
        "/api/crews",
        headers=owner.headers,
        json={"name": "backwards", "agent_ids": [draft["agent_id"]], "task_ids": [polish["id"], draft["id"]]},
    )
    assert backwards.status_code == 422
    assert [(p["field"], p["message"]) for p in backwards.json()["problems"]] == [
        (
            "task_ids.0",
            "task 'polish_answer', context_ids.0: task 'draft_answer' runs later; a task can only read earlier tasks",
        )
    ]

    in_use = await client.delete(f"/api/tasks/{draft['id']}", headers=owner.headers)
    assert in_use.status_code == 409
    assert in_use.json()["detail"].startswith("task 'draft_answer' is used by crew 'example_crew'")
    in_use = await client.delete(f"/api/agents/{draft['agent_id']}", headers=owner.headers)
    assert in_use.status_code == 409
    names = [t["name"] for t in (await client.get("/api/tasks", headers=owner.headers)).json()]
    assert names == ["draft_answer", "polish_answer"]


async def test_a_viewer_reads_but_cannot_write(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    viewer = await join(client, await invite(client, owner, "viewer"), "viewer@example.com")
    [agent] = (await client.get("/api/agents", headers=viewer.headers)).json()
    [task, _] = (await client.get("/api/tasks", headers=viewer.headers)).json()
    [crew] = (await client.get("/api/crews", headers=viewer.headers)).json()
    assert (await client.get(f"/api/crews/{crew['id']}", headers=viewer.headers)).json() == crew
    refused = [
        await client.post("/api/agents", headers=viewer.headers, json=RESEARCHER),
        await client.put(f"/api/agents/{agent['id']}", headers=viewer.headers, json=body_of(agent)),
        await client.delete(f"/api/agents/{agent['id']}", headers=viewer.headers),
        await client.post("/api/tasks", headers=viewer.headers, json=body_of(task) | {"name": "mine"}),
        await client.put(f"/api/tasks/{task['id']}", headers=viewer.headers, json=body_of(task)),
        await client.delete(f"/api/tasks/{task['id']}", headers=viewer.headers),
        await client.post("/api/crews", headers=viewer.headers, json=body_of(crew) | {"name": "mine"}),
        await client.put(f"/api/crews/{crew['id']}", headers=viewer.headers, json=body_of(crew)),
        await client.delete(f"/api/crews/{crew['id']}", headers=viewer.headers),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all("needs 'editor'" in r.json()["detail"] for r in refused)
    assert (await client.get("/api/crews", headers=owner.headers)).json() == [crew]


async def test_another_tenants_records_are_not_found(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    stranger = await sign_up(client, "stranger@example.com", "globex")
    [agent] = (await client.get("/api/agents", headers=owner.headers)).json()
    [task, _] = (await client.get("/api/tasks", headers=owner.headers)).json()
    [crew] = (await client.get("/api/crews", headers=owner.headers)).json()
    for path, record in (("agents", agent), ("tasks", task), ("crews", crew)):
        url = f"/api/{path}/{record['id']}"
        answers = [
            await client.get(url, headers=stranger.headers),
            await client.put(url, headers=stranger.headers, json=body_of(record)),
            await client.delete(url, headers=stranger.headers),
        ]
        assert [a.status_code for a in answers] == [404, 404, 404], path
        assert all(a.json()["error"] == "NotFound" for a in answers)
    # Their own example has the same names and other ids.
    [theirs] = (await client.get("/api/crews", headers=stranger.headers)).json()
    assert theirs["name"] == "example_crew"
    assert theirs["id"] != crew["id"]
    assert (await client.get(f"/api/crews/{crew['id']}", headers=owner.headers)).status_code == 200
