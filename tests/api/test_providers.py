"""`/api/providers`, `/api/llm/chat`, `/api/usage`: real app, real tokens, the scripted LLM server on loopback.

A canary key goes in through the API; no response body, header or error ever carries it back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from core.settings import AppSettings
from tests.api.conftest import Account, api_client, identity_settings, sign_up
from tests.api.test_members import invite, join
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.llm_stack import master_keys

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

CANARY = "sk-canary-4e1d07b2c9a85f36bb22"


def llm_settings(tmp_path: Path, db_url: str, *, allow_private: bool) -> AppSettings:
    """The API test settings plus a master key, the private-endpoint switch and a small local model."""
    settings = identity_settings(tmp_path, db_url)
    settings.security.master_keys = SecretStr(master_keys("k1"))
    settings.llm.allow_private_endpoints = allow_private
    settings.llm.local_threads = 1  # the machine is shared
    settings.llm.local_context = 512
    settings.llm.max_retries = 0
    return settings


@pytest.fixture
async def client(db_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The whole API on each database backend; the scripted server (loopback) is allowed, as an operator would."""
    async with api_client(llm_settings(tmp_path, db_url, allow_private=True)) as (http, _services):
        yield http


@pytest.fixture
async def guarded_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the SSRF guard on (the production default)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    async with api_client(llm_settings(tmp_path, url, allow_private=False)) as (http, _services):
        yield http


class Seen:
    """Every response the test received, to prove the canary never came back."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.texts: list[str] = []

    async def __call__(self, method: str, url: str, who: Account | None = None, **kwargs: Any) -> httpx.Response:
        headers = (who.headers if who else {}) | kwargs.pop("headers", {})
        response = await self.client.request(method, url, headers=headers, **kwargs)
        self.texts.append(f"{response.status_code} {response.headers} {response.text}")
        return response

    def assert_no_canary(self) -> None:
        assert self.texts
        for text in self.texts:
            assert CANARY not in text
            assert CANARY[3:-4] not in text  # not even the middle of it


def scripted(llm_server: ScriptedLLMServer, **fields: Any) -> dict[str, Any]:
    return {
        "name": "scripted",
        "kind": "openai_compatible",
        "base_url": llm_server.base_url,
        "models": ["m1"],
        "api_key": CANARY,
    } | fields


async def test_an_admin_adds_lists_edits_tests_disables_and_deletes_a_provider(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    call = Seen(client)
    owner = await sign_up(client, "owner@example.com", "acme")

    created = await call("POST", "/api/providers", owner, json=scripted(llm_server))
    assert created.status_code == 201, created.text
    provider = created.json()
    assert provider["credential_hint"] == "sk-...bb22"
    assert provider["has_credential"] is True
    assert "api_key" not in provider

    listed = (await call("GET", "/api/providers", owner)).json()
    assert sorted((p["kind"], p["name"]) for p in listed) == [
        ("local", "Local model (SmolLM2-135M)"),
        ("openai_compatible", "scripted"),
    ]

    edited = await call(
        "PATCH", f"/api/providers/{provider['id']}", owner, json={"name": "vllm", "models": ["m1", "m2"]}
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["name"], edited.json()["models"]) == ("vllm", ["m1", "m2"])
    assert edited.json()["credential_hint"] == "sk-...bb22"  # an omitted key keeps the stored one

    tested = await call("POST", f"/api/providers/{provider['id']}/test", owner)
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True
    assert tested.json()["latency_ms"] > 0
    assert tested.json()["model"] == "m1"
    sent = llm_server.requests[-1]
    assert sent.json["max_tokens"] == 1
    assert sent.headers["authorization"] == f"Bearer {CANARY}"  # the key really reached the provider

    disabled = await call("PATCH", f"/api/providers/{provider['id']}", owner, json={"enabled": False})
    assert disabled.json()["enabled"] is False
    chat = await call(
        "POST",
        "/api/llm/chat",
        owner,
        json={"provider_id": provider["id"], "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 422
    assert "disabled" in chat.json()["detail"]

    assert (await call("DELETE", f"/api/providers/{provider['id']}", owner)).status_code == 204
    assert (await call("GET", f"/api/providers/{provider['id']}", owner)).status_code == 404
    assert [p["kind"] for p in (await call("GET", "/api/providers", owner)).json()] == ["local"]
    call.assert_no_canary()


async def test_the_test_button_shows_the_providers_error_without_the_key(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    call = Seen(client)
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = (await call("POST", "/api/providers", owner, json=scripted(llm_server))).json()
    llm_server.default = Reply.error(401, f"Incorrect API key provided: {CANARY}. Authorization: Bearer {CANARY}")

    tested = await call("POST", f"/api/providers/{provider['id']}/test", owner)
    assert tested.status_code == 200
    assert tested.json()["ok"] is False
    assert "Incorrect API key provided" in tested.json()["message"]
    assert "401" in tested.json()["message"]

    message = {"provider_id": provider["id"], "messages": [{"role": "user", "content": "hi"}]}
    failed = await call("POST", "/api/llm/chat", owner, json=message)
    assert failed.status_code == 503
    assert "'scripted'" in failed.json()["detail"]
    streamed = await call("POST", "/api/llm/chat", owner, json=message | {"stream": True})
    assert streamed.status_code == 503
    usage = await call("GET", "/api/usage", owner)
    assert [r["outcome"] for r in usage.json()] == ["error", "error", "error"]
    call.assert_no_canary()


async def test_chat_and_streaming_go_through_the_provider_and_are_booked(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = (await client.post("/api/providers", headers=owner.headers, json=scripted(llm_server))).json()
    message = {"provider_id": provider["id"], "messages": [{"role": "user", "content": "hi"}]}
    llm_server.script(Reply.say("hello there"), Reply.say("streamed reply"))

    answered = await client.post("/api/llm/chat", headers=owner.headers, json=message)
    assert answered.status_code == 200, answered.text
    assert (answered.json()["content"], answered.json()["provider_name"]) == ("hello there", "scripted")

    streamed = await client.post("/api/llm/chat", headers=owner.headers, json=message | {"stream": True})
    assert streamed.status_code == 200
    events = [line for line in streamed.text.split("\n\n") if line]
    deltas = [json.loads(e.removeprefix("data: "))["delta"] for e in events if e.startswith("data: ")]
    assert "".join(deltas) == "streamed reply"
    assert events[-1].startswith("event: result")

    usage = (await client.get("/api/usage", headers=owner.headers)).json()
    assert [(r["outcome"], r["prompt_tokens"], r["completion_tokens"]) for r in usage] == [("ok", 7, 3)] * 2
    totals = (await client.get("/api/usage/daily", headers=owner.headers)).json()
    assert (totals["requests"], totals["prompt_tokens"], totals["completion_tokens"]) == (2, 14, 6)


async def test_a_viewer_lists_providers_but_cannot_change_test_or_use_them(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    call = Seen(client)
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = (await call("POST", "/api/providers", owner, json=scripted(llm_server))).json()
    viewer = await join(client, await invite(client, owner, "viewer"), "viewer@example.com")

    listed = await call("GET", "/api/providers", viewer)
    assert [p["credential_hint"] for p in listed.json() if p["kind"] != "local"] == ["sk-...bb22"]
    url = f"/api/providers/{provider['id']}"
    refused = [
        await call("POST", "/api/providers", viewer, json=scripted(llm_server, name="mine")),
        await call("PATCH", url, viewer, json={"enabled": False}),
        await call("DELETE", url, viewer),
        await call("POST", f"{url}/test", viewer),
        await call("GET", "/api/usage", viewer),
        await call("POST", "/api/llm/chat", viewer, json={"messages": [{"role": "user", "content": "hi"}]}),
    ]
    assert [r.status_code for r in refused] == [403] * 6
    assert "needs 'admin'" in refused[0].json()["detail"]
    assert llm_server.requests == []
    assert (await call("GET", url, owner)).json()["enabled"] is True
    call.assert_no_canary()


async def test_another_tenants_provider_is_not_found(client: httpx.AsyncClient, llm_server: ScriptedLLMServer) -> None:
    acme = await sign_up(client, "owner@acme.example", "acme")
    globex = await sign_up(client, "owner@globex.example", "globex")
    call = Seen(client)
    provider = (await call("POST", "/api/providers", acme, json=scripted(llm_server))).json()
    url = f"/api/providers/{provider['id']}"
    answers = [
        await call("GET", url, globex),
        await call("PATCH", url, globex, json={"name": "stolen"}),
        await call("POST", f"{url}/test", globex),
        await call("DELETE", url, globex),
        await call(
            "POST",
            "/api/llm/chat",
            globex,
            json={"provider_id": provider["id"], "messages": [{"role": "user", "content": "x"}]},
        ),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    fallback = await call(
        "POST", "/api/providers", globex, json=scripted(llm_server, name="mine", fallback_provider_id=provider["id"])
    )
    assert fallback.status_code == 422
    assert "does not exist in this workspace" in fallback.json()["detail"]
    assert [p["kind"] for p in (await call("GET", "/api/providers", globex)).json()] == ["local"]
    assert llm_server.requests == []
    assert (await call("GET", url, acme)).json()["name"] == "scripted"
    call.assert_no_canary()


async def test_rejected_bodies_never_echo_the_key(client: httpx.AsyncClient, llm_server: ScriptedLLMServer) -> None:
    call = Seen(client)
    owner = await sign_up(client, "owner@example.com", "acme")
    bad = [
        await call("POST", "/api/providers", owner, json=scripted(llm_server, kind="nonsense")),
        await call("POST", "/api/providers", owner, json=scripted(llm_server, secret=CANARY)),
        await call("POST", "/api/providers", owner, json=scripted(llm_server, models=CANARY)),
        await call("POST", "/api/providers", owner, json=[CANARY]),
        await call(
            "POST",
            "/api/providers",
            owner,
            content=f'{{"api_key": "{CANARY}"',
            headers={"content-type": "application/json"},
        ),
        await call(
            "POST", "/api/providers", owner, json=scripted(llm_server, kind="openai", base_url=None, api_key=None)
        ),
        await call("POST", "/api/providers", owner, json=scripted(llm_server, default_params={"api_base": CANARY})),
        await call(
            "POST",
            "/api/llm/chat",
            owner,
            json={"messages": [{"role": "user", "content": "x"}], "params": {"api_key": CANARY}},
        ),
    ]
    assert [r.status_code for r in bad] == [422] * 8
    assert "needs an API key" in bad[5].json()["detail"]
    assert "cannot be set per request" in bad[7].json()["detail"]
    call.assert_no_canary()


async def test_a_private_endpoint_is_refused_unless_the_operator_allows_it(
    guarded_client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(guarded_client, "owner@example.com", "acme")
    refused = await guarded_client.post("/api/providers", headers=owner.headers, json=scripted(llm_server))
    assert refused.status_code == 422
    assert "LLM_ALLOW_PRIVATE_ENDPOINTS" in refused.json()["detail"]
    assert CANARY not in refused.text
    assert llm_server.requests == []


async def test_a_new_tenant_answers_on_the_bundled_local_model(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    [local] = (await client.get("/api/providers", headers=owner.headers)).json()
    assert (local["kind"], local["enabled"], local["base_url"], local["has_credential"]) == ("local", True, None, False)
    kinds = (await client.get("/api/providers/kinds", headers=owner.headers)).json()
    assert "cannot use tools" in next(k["note"] for k in kinds if k["kind"] == "local")

    tested = await client.post(f"/api/providers/{local['id']}/test", headers=owner.headers)
    assert tested.json()["ok"] is True, tested.text
    answered = await client.post(
        "/api/llm/chat",
        headers=owner.headers,
        json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4, "temperature": 0},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["provider_kind"] == "local"
    assert answered.json()["content"].strip()
    assert 0 < answered.json()["completion_tokens"] <= 4


OFFLINE_SCRIPT = """
import asyncio, json, socket
import httpx
from fastapi import FastAPI
from api.app import install_api
from wiring.services import build_services
from core.settings import AppSettings

async def main():
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        pass
    else:
        raise SystemExit("the network is reachable: this check is not isolated")
    services = build_services(AppSettings.load())
    await services.start()
    app = FastAPI()
    install_api(app, services)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            signup = await client.post("/api/auth/signup", json={
                "email": "first@example.com", "password": "correct horse battery", "tenant_slug": "fresh"})
            headers = {"Authorization": "Bearer " + signup.json()["access_token"]}
            chat = await client.post("/api/llm/chat", headers=headers, json={
                "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4, "temperature": 0})
            print(json.dumps({"signup": signup.status_code, "status": chat.status_code, "body": chat.json()}))
    finally:
        await services.aclose()

asyncio.run(main())
"""


def test_a_fresh_install_runs_a_local_model_call_with_no_network_at_all(tmp_path: Path) -> None:
    """Embedded defaults (SQLite, in-process limits, usage table) in a network namespace with no interfaces up."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs util-linux unshare and root to create a network namespace")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DB_", "REDIS_", "MONGODB_", "LLM_"))}
    env.pop("DATABASE_URL", None)
    env.pop("MASTER_KEYS", None)
    env |= {
        "APP_ENV": "test",
        "APP_DATA_DIR": str(tmp_path / "data"),
        "LLM_LOCAL_THREADS": "1",
        "LLM_LOCAL_CONTEXT": "512",
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST_KIB": "1024",
        "AUTH_ARGON2_PARALLELISM": "1",
    }
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [unshare, "--net", "--", sys.executable, "-c", OFFLINE_SCRIPT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["signup"], report["status"]) == (201, 200), report
    assert report["body"]["provider_kind"] == "local"
    assert report["body"]["content"].strip()
    assert 0 < report["body"]["completion_tokens"] <= 4
