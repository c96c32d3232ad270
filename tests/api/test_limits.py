"""Request bodies are capped before they are read whole, and hostile JSON is a 4xx, never a 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from api.app import install_api
from tests.api.conftest import Account, api_client, identity_settings, sign_up
from wiring.services import Services, build_services

LIMIT = 4096
CHUNK = 1024


@pytest.fixture
async def small(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The API with a 4 KiB body limit (and the import limit at 16 KiB)."""
    settings = identity_settings(tmp_path, db_url)
    settings.max_body_bytes = LIMIT
    settings.max_import_bytes = 4 * LIMIT
    async with api_client(settings) as (http, services):
        yield http, services


class Chunks:
    """A chunked request body that records how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = CHUNK) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"email": "a@example.com", "password": "wrong password"'
        while self.sent < self.total:
            self.sent += self.chunk
            yield b" " * self.chunk
        yield b"}"


def padded(size: int) -> bytes:
    """A login body of exactly `size` bytes (JSON whitespace makes up the rest)."""
    head = b'{"email": "a@example.com", "password": "wrong password"'
    return head + b" " * (size - len(head) - 1) + b"}"


def assert_too_large(response: httpx.Response, limit: int = LIMIT) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "ContentTooLarge"
    assert f"{limit} bytes" in body["detail"]
    assert body["problems"] == []


async def test_a_content_length_over_the_limit_is_refused_unread(
    small: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _services = small
    payload = padded(LIMIT + 1)
    assert_too_large(
        await client.post("/api/auth/login", content=payload, headers={"content-type": "application/json"})
    )
    just_fits = padded(LIMIT)
    answered = await client.post("/api/auth/login", content=just_fits, headers={"content-type": "application/json"})
    assert answered.status_code == 401  # read and checked: no such account


async def test_a_chunked_body_is_stopped_at_the_limit(small: tuple[httpx.AsyncClient, Services]) -> None:
    client, _services = small
    body = Chunks(total=200 * CHUNK)
    response = await client.post("/api/auth/login", content=body, headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_too_large(response)
    assert body.sent <= LIMIT + 2 * CHUNK, f"the server read {body.sent} bytes of a body over {LIMIT}"


async def test_a_chunked_body_under_the_limit_is_read(small: tuple[httpx.AsyncClient, Services]) -> None:
    client, _services = small
    response = await client.post(
        "/api/auth/login", content=Chunks(total=2 * CHUNK), headers={"content-type": "application/json"}
    )
    assert response.status_code == 401, response.text


async def test_the_limit_guards_signed_in_routes_and_bodies_sent_with_any_method(
    small: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _services = small
    owner = await sign_up(client, "owner@example.com", "acme")
    big = {"name": "x", "kind": "local", "default_params": {"user": "u" * LIMIT}}
    assert_too_large(await client.post("/api/providers", headers=owner.headers, json=big))
    assert_too_large(await client.patch(f"/api/providers/{owner.tenant}", headers=owner.headers, json=big))
    assert_too_large(await client.request("GET", "/api/tools", headers=owner.headers, content=b"x" * (LIMIT + 1)))


async def test_the_default_limit_is_one_mebibyte(client: httpx.AsyncClient, services: Services) -> None:
    assert services.settings.max_body_bytes == 1024 * 1024
    payload = padded(1024 * 1024 + 1)
    assert_too_large(
        await client.post("/api/auth/login", content=payload, headers={"content-type": "application/json"}),
        limit=1024 * 1024,
    )


async def test_import_routes_take_the_larger_import_limit(tmp_path: Path) -> None:
    """No import route exists yet: a probe route shows which limit a path ending in `/import` gets."""
    probe = APIRouter()

    @probe.post("/api/_probe/import")
    @probe.post("/api/_probe/other")
    async def size(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    settings = identity_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    settings.max_body_bytes = LIMIT
    settings.max_import_bytes = 4 * LIMIT
    app = FastAPI()
    app.include_router(probe)
    install_api(app, build_services(settings))  # not started: the probe needs no database
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        body = b"x" * (2 * LIMIT)
        assert (await http.post("/api/_probe/import", content=body)).json() == {"bytes": 2 * LIMIT}
        assert_too_large(await http.post("/api/_probe/other", content=body))
        assert_too_large(await http.post("/api/_probe/import", content=Chunks(total=5 * LIMIT)), limit=4 * LIMIT)


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_object(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


async def json_routes(client: httpx.AsyncClient, owner: Account) -> list[tuple[str, str, dict[str, str | None]]]:
    """Every route that takes a JSON body, with a field of it that holds free-form JSON (or None)."""
    [provider] = (await client.get("/api/providers", headers=owner.headers)).json()
    starter = (await client.get("/api/tools/starter", headers=owner.headers)).json()
    tool = (await client.post("/api/tools", headers=owner.headers, json=starter["tool"])).json()
    nobody = "00000000-0000-0000-0000-000000000000"
    return [
        ("POST", "/api/providers", {"template": '{"name": "x", "kind": "local", "default_params": @}'}),
        ("PATCH", f"/api/providers/{provider['id']}", {"template": '{"default_params": @}'}),
        ("POST", "/api/llm/chat", {"template": '{"messages": [{"role": "user", "content": "x"}], "params": @}'}),
        ("POST", "/api/llm/chat", {"template": '{"messages": [{"role": "user", "content": @}]}'}),
        ("POST", "/api/tools", {"template": '{"name": "t", "code": "x", "input_schema": @}'}),
        ("PUT", f"/api/tools/{tool['id']}", {"template": '{"name": "t", "code": "x", "limits": @}'}),
        ("POST", f"/api/tools/{tool['id']}/try", {"template": '{"input": @}'}),
        ("POST", "/api/tools/try", {"template": '{"tool": {"name": "t", "code": "x"}, "input": @}'}),
        ("POST", "/api/auth/login", {"template": None}),
        ("POST", "/api/auth/signup", {"template": None}),
        ("POST", "/api/tenants", {"template": None}),
        ("POST", "/api/api-keys", {"template": None}),
        ("POST", "/api/members/invites", {"template": None}),
        ("PATCH", f"/api/members/{nobody}", {"template": None}),
        ("POST", "/api/members/invites/accept", {"template": None}),
    ]


async def test_json_nested_too_deeply_is_refused_on_every_json_route(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    headers = owner.headers | {"content-type": "application/json"}
    for method, url, spec in await json_routes(client, owner):
        whole = await client.request(method, url, headers=headers, content=deep(1000).encode())
        assert whole.status_code in {400, 422}, (method, url, whole.text)
        assert "detail" in whole.json()
        template = spec["template"]
        if template is None:
            continue
        for value in (deep(1000), deep_object(1000), deep(100)):
            inner = await client.request(method, url, headers=headers, content=template.replace("@", value).encode())
            assert inner.status_code in {400, 422}, (method, url, len(value), inner.text)
    listed = (await client.get("/api/providers", headers=owner.headers)).json()
    assert [p["kind"] for p in listed] == ["local"]


NICEGUI_SCRIPT = """
import asyncio, json, pathlib, sys
import httpx
from nicegui import app
from api.app import install_api
from wiring.services import build_services
from tests.api.conftest import identity_settings

async def main():
    tmp = pathlib.Path(sys.argv[1])
    settings = identity_settings(tmp, f"sqlite+aiosqlite:///{tmp / 'control.db'}")
    settings.max_body_bytes = 4096
    install_api(app, build_services(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        big = await client.post("/api/auth/login", content=b"{" + b" " * 5000 + b"}")
        missing = await client.get("/api/nothing")
        wrong = await client.delete("/api/auth/login")
    print(json.dumps({
        "big": [big.status_code, big.json()["error"]],
        "missing": [missing.status_code, missing.json()["error"]],
        "wrong": [wrong.status_code, wrong.headers["allow"], wrong.json()["error"]],
    }))

asyncio.run(main())
"""


def test_the_limit_and_the_error_bodies_guard_the_api_on_the_nicegui_app(tmp_path: Path) -> None:
    """NiceGUI's app answers 404s with an HTML page of its own; under /api/ the API's answers win.

    In a subprocess: installing the API on NiceGUI's process-wide app must not leak into other tests."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", NICEGUI_SCRIPT, str(tmp_path)],
        cwd=root,
        env=os.environ | {"PYTHONPATH": str(root), "NICEGUI_STORAGE_PATH": str(tmp_path / "storage")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "big": [413, "ContentTooLarge"],
        "missing": [404, "NotFound"],
        "wrong": [405, "POST", "MethodNotAllowed"],
    }


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
async def test_numbers_json_does_not_have_are_refused_where_they_would_be_stored(
    client: httpx.AsyncClient, number: bytes
) -> None:
    """Python's decoder takes NaN and Infinity; PostgreSQL's json type does not (that was a 500)."""
    owner = await sign_up(client, "owner@example.com", "acme")
    [provider] = (await client.get("/api/providers", headers=owner.headers)).json()
    response = await client.patch(
        f"/api/providers/{provider['id']}",
        headers=owner.headers | {"content-type": "application/json"},
        content=b'{"default_params": {"temperature": ' + number + b"}}",
    )
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["problems"]] == ["default_params"]
    kept = (await client.get(f"/api/providers/{provider['id']}", headers=owner.headers)).json()["default_params"]
    assert kept == provider["default_params"]
