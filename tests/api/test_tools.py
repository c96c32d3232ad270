"""`/api/tools/*`: write a tool, try it in the real sandbox, and who may do what, with real tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import install_api
from tests.api.conftest import Account, identity_settings, sign_up
from tests.api.test_members import invite, join
from wiring.services import build_services


async def create(client: httpx.AsyncClient, who: Account, **overrides: object) -> dict[str, object]:
    starter = (await client.get("/api/tools/starter", headers=who.headers)).json()
    response = await client.post("/api/tools", headers=who.headers, json=starter["tool"] | overrides)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_an_editor_writes_tries_changes_and_deletes_a_tool(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    tool = await create(client, owner, name="repeat")
    listed = (await client.get("/api/tools", headers=owner.headers)).json()
    assert [t["name"] for t in listed] == ["repeat"]

    ran = await client.post(
        f"/api/tools/{tool['id']}/try", headers=owner.headers, json={"input": {"text": "hi", "times": 2}}
    )
    assert ran.status_code == 200, ran.text
    report = ran.json()
    assert (report["reason"], report["ok"], report["output"]) == ("ok", True, {"result": "hi hi", "length": 2})
    assert report["wall_seconds"] > 0

    looping = tool | {"code": "def run(**kw):\n    while True:\n        pass\n", "limits": {"wall_seconds": 0.5}}
    del looping["id"], looping["effective_limits"], looping["created_at"], looping["updated_at"]
    changed = await client.put(f"/api/tools/{tool['id']}", headers=owner.headers, json=looping)
    assert changed.status_code == 200, changed.text
    assert changed.json()["effective_limits"]["wall_seconds"] == 0.5
    ran = await client.post(
        f"/api/tools/{tool['id']}/try", headers=owner.headers, json={"input": {"text": "hi", "times": 2}}
    )
    assert ran.json()["reason"] == "timeout"
    assert "wall-clock limit" in ran.json()["error"]

    assert (await client.delete(f"/api/tools/{tool['id']}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"/api/tools/{tool['id']}", headers=owner.headers)).status_code == 404


async def test_mistakes_are_answered_with_what_to_fix(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    tool = await create(client, owner, name="repeat")
    bad_name = await client.post("/api/tools", headers=owner.headers, json={"name": "Repeat It", "code": "x"})
    assert bad_name.status_code == 422
    assert "snake_case" in bad_name.json()["detail"]
    duplicate = await client.post("/api/tools", headers=owner.headers, json={"name": "repeat", "code": "x"})
    assert duplicate.status_code == 409
    bad_input = await client.post(
        f"/api/tools/{tool['id']}/try", headers=owner.headers, json={"input": {"text": "hi", "times": "two"}}
    )
    assert bad_input.status_code == 422
    assert bad_input.json()["detail"] == "input field 'times': 'two' is not of type 'integer'"
    extra_field = await client.post("/api/tools", headers=owner.headers, json={"name": "x", "code": "x", "owner": 1})
    assert extra_field.status_code == 422


async def test_a_viewer_reads_tools_but_cannot_write_or_run_them(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    tool = await create(client, owner, name="repeat")
    viewer = await join(client, await invite(client, owner, "viewer"), "viewer@example.com")
    assert (await client.get(f"/api/tools/{tool['id']}", headers=viewer.headers)).json()["name"] == "repeat"
    refused = [
        await client.post("/api/tools", headers=viewer.headers, json={"name": "mine", "code": "x"}),
        await client.post(f"/api/tools/{tool['id']}/try", headers=viewer.headers, json={"input": {}}),
        await client.delete(f"/api/tools/{tool['id']}", headers=viewer.headers),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert "needs 'editor'" in refused[1].json()["detail"]


async def test_another_tenants_tool_is_not_found_and_strangers_are_unauthenticated(client: httpx.AsyncClient) -> None:
    acme = await sign_up(client, "owner@acme.example", "acme")
    globex = await sign_up(client, "owner@globex.example", "globex")
    tool = await create(client, acme, name="repeat")
    url = f"/api/tools/{tool['id']}"
    answers = [
        await client.get(url, headers=globex.headers),
        await client.put(url, headers=globex.headers, json={"name": "stolen", "code": "x"}),
        await client.post(f"{url}/try", headers=globex.headers, json={"input": {"text": "a", "times": 1}}),
        await client.delete(url, headers=globex.headers),
    ]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert (await client.get("/api/tools", headers=globex.headers)).json() == []
    assert (await client.get("/api/tools")).status_code == 401
    assert (await client.get(url, headers=acme.headers)).json()["name"] == "repeat"


async def test_drafts_run_without_saving_and_the_sandbox_is_reported(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    starter = (await client.get("/api/tools/starter?kind=command", headers=owner.headers)).json()
    ran = await client.post("/api/tools/try", headers=owner.headers, json=starter)
    assert ran.status_code == 200, ran.text
    assert ran.json()["output"] == {"received": starter["input"]}
    assert (await client.get("/api/tools", headers=owner.headers)).json() == []
    sandbox = (await client.get("/api/tools/sandbox", headers=owner.headers)).json()
    assert sandbox == {"backend": "bwrap", "available": True, "unsafe": False, "reason": ""}


@pytest.fixture
async def broken_sandbox_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app with a sandbox that cannot work: the python it needs does not exist."""
    monkeypatch.setenv("SANDBOX_PYTHON", "/nonexistent/python3")
    services = build_services(identity_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"))
    await services.start()
    app = FastAPI()
    install_api(app, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http
    await services.aclose()


async def test_runs_are_refused_with_503_when_the_sandbox_is_unavailable(
    broken_sandbox_client: httpx.AsyncClient,
) -> None:
    client = broken_sandbox_client
    owner = await sign_up(client, "owner@example.com", "acme")
    tool = await create(client, owner, name="repeat")  # the app works; only runs are refused
    ran = await client.post(
        f"/api/tools/{tool['id']}/try", headers=owner.headers, json={"input": {"text": "a", "times": 1}}
    )
    assert ran.status_code == 503
    assert ran.json()["error"] == "SandboxUnavailableError"
    assert "/nonexistent/python3" in ran.json()["detail"]
    assert "Nothing was run" in ran.json()["detail"]
    sandbox = (await client.get("/api/tools/sandbox", headers=owner.headers)).json()
    assert sandbox["available"] is False
