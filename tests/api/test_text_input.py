"""Text from outside: every string of every request meets `core.text`'s rules, on both databases.

A NUL byte used to reach PostgreSQL (which refuses it: a 500) while SQLite stored it;
other control characters, lone surrogates and bidi overrides were stored everywhere.
Each refusal is a 422 naming the field; tab and newline stay fine in prose and code.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import PASSWORD, Account, sign_up

#: What must never be in a name, as JSON text (a lone surrogate cannot be sent any other way).
BAD_IN_NAMES = {
    "nul": r"\u0000",
    "bell": r"\u0007",
    "escape": r"\u001b",
    "lone surrogate": r"\ud800",
    "bidi override": r"\u202e",
}
#: What must never be in prose or code either.
BAD_IN_TEXT = {k: v for k, v in BAD_IN_NAMES.items() if k != "bidi override"}


def with_bad(template: dict[str, Any], field: str, bad: str) -> bytes:
    """`template` as JSON with `field` set to a string around the JSON escape `bad`."""
    marker = "@@BAD@@"
    text = json.dumps(template | {field: f"a{marker}b"})
    return text.replace(marker, bad).encode()


async def post_raw(client: httpx.AsyncClient, url: str, body: bytes, who: Account | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"} | (who.headers if who else {})
    return await client.post(url, content=body, headers=headers)


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "InvalidInput"
    assert field in [p["field"] for p in body["problems"]], body
    assert field in body["detail"]


@pytest.mark.parametrize("bad", BAD_IN_NAMES.values(), ids=BAD_IN_NAMES.keys())
async def test_sign_up_refuses_control_characters(client: httpx.AsyncClient, bad: str) -> None:
    body = {"email": "ada@example.com", "password": PASSWORD, "tenant_slug": "lovelace", "tenant_name": "Lovelace"}
    for field in ["email", "password", "display_name", "tenant_slug", "tenant_name", "invite_token"]:
        if field == "password" and bad == r"\u202e":
            continue  # a password may hold any printable character
        response = await post_raw(client, "/api/auth/signup", with_bad(body, field, bad))
        assert_refused(response, field)
        assert PASSWORD not in response.text
    assert (
        await client.post("/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    ).status_code == 401


@pytest.mark.parametrize("bad", BAD_IN_NAMES.values(), ids=BAD_IN_NAMES.keys())
async def test_names_and_slugs_in_tenant_key_and_provider_bodies_are_checked(
    client: httpx.AsyncClient, bad: str
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    cases = [
        ("/api/tenants/switch", {"tenant": "acme"}, "tenant"),
        ("/api/tenants", {"slug": "acme_two", "name": "Two"}, "name"),
        ("/api/tenants", {"slug": "acme_two", "name": "Two"}, "slug"),
        ("/api/api-keys", {"name": "ci"}, "name"),
        ("/api/providers", {"name": "local two", "kind": "local"}, "name"),
        ("/api/providers", {"name": "vllm", "kind": "openai_compatible", "base_url": "http://x"}, "base_url"),
        ("/api/members/invites", {"role": "viewer", "email": "x@example.com"}, "email"),
        ("/api/auth/login", {"email": "owner@example.com", "password": PASSWORD, "tenant": "acme"}, "tenant"),
    ]
    for url, body, field in cases:
        assert_refused(await post_raw(client, url, with_bad(body, field, bad), owner), field)
    assert [t["slug"] for t in (await client.get("/api/tenants", headers=owner.headers)).json()] == ["acme"]
    assert [k["name"] for k in (await client.get("/api/api-keys", headers=owner.headers)).json()] == []


@pytest.mark.parametrize("bad", BAD_IN_NAMES.values(), ids=BAD_IN_NAMES.keys())
async def test_provider_models_keys_and_edits_are_checked(client: httpx.AsyncClient, bad: str) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    [local] = (await client.get("/api/providers", headers=owner.headers)).json()
    body = {"name": "x", "kind": "openai", "api_key": "sk-1234567890", "models": ["gpt"]}
    refused = await post_raw(client, "/api/providers", json.dumps(body).replace("gpt", f"g{bad}t").encode(), owner)
    assert_refused(refused, "models.0")
    if bad != r"\u202e":  # a key may hold any printable character
        refused = await post_raw(client, "/api/providers", with_bad(body, "api_key", bad), owner)
        assert_refused(refused, "api_key")
    edit = await client.patch(
        f"/api/providers/{local['id']}",
        content=with_bad({"name": "local"}, "name", bad),
        headers=owner.headers | {"content-type": "application/json"},
    )
    assert_refused(edit, "name")


async def test_provider_models_are_capped(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    body = {"name": "x", "kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}
    many = await client.post("/api/providers", headers=owner.headers, json=body | {"models": ["m"] * 101})
    assert_refused(many, "models")
    long = await client.post("/api/providers", headers=owner.headers, json=body | {"models": ["m" * 201]})
    assert_refused(long, "models.0")
    assert "at most 200" in long.json()["detail"]


@pytest.mark.parametrize("bad", BAD_IN_TEXT.values(), ids=BAD_IN_TEXT.keys())
async def test_tool_fields_are_checked(client: httpx.AsyncClient, bad: str) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    starter = (await client.get("/api/tools/starter", headers=owner.headers)).json()
    for field in ["name", "description", "code"]:
        await refuse_tool_field(client, owner, starter, field, bad)
    assert (await client.get("/api/tools", headers=owner.headers)).json() == []


async def refuse_tool_field(
    client: httpx.AsyncClient, owner: Account, starter: dict[str, Any], field: str, bad: str
) -> None:
    created = await post_raw(client, "/api/tools", with_bad(starter["tool"], field, bad), owner)
    assert_refused(created, field)
    draft = f'{{"tool": {with_bad(starter["tool"], field, bad).decode()}, "input": {json.dumps(starter["input"])}}}'
    assert_refused(await post_raw(client, "/api/tools/try", draft.encode(), owner), f"tool.{field}")


@pytest.mark.parametrize("bad", BAD_IN_TEXT.values(), ids=BAD_IN_TEXT.keys())
async def test_strings_inside_tool_schemas_limits_and_inputs_are_checked(client: httpx.AsyncClient, bad: str) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    starter = (await client.get("/api/tools/starter", headers=owner.headers)).json()
    schema = starter["tool"]["input_schema"] | {"description": "@@BAD@@"}
    body = json.dumps(starter["tool"] | {"input_schema": schema}).replace("@@BAD@@", bad).encode()
    assert_refused(await post_raw(client, "/api/tools", body, owner), "input_schema")
    tried = json.dumps({"tool": starter["tool"], "input": {"text": "@@BAD@@"}}).replace("@@BAD@@", bad).encode()
    assert_refused(await post_raw(client, "/api/tools/try", tried, owner), "input")


async def test_tabs_and_newlines_are_fine_in_descriptions_and_code(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    starter = (await client.get("/api/tools/starter", headers=owner.headers)).json()
    tool = starter["tool"] | {
        "name": "tabbed",
        "description": "Repeats text.\n\tIndented second line.\r\nThird.",
        "code": "def run(text: str, times: int = 1) -> dict:\n\treturn {'result': ' '.join([text] * times)}\n",
    }
    created = await client.post("/api/tools", headers=owner.headers, json=tool)
    assert created.status_code == 201, created.text
    assert created.json()["code"] == tool["code"]
    assert "\tIndented" in created.json()["description"]


async def test_path_slugs_are_checked_before_any_lookup(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    nobody = {"user_id": "00000000-0000-0000-0000-000000000000"}
    for slug in ["a%00b", "ac%07me", "ACME", "a", "ac%E2%80%AEme", "acme%20", "%ED%A0%80acme"]:
        deleted = await client.delete(f"/api/tenants/{slug}?confirm=acme", headers=owner.headers)
        assert_refused(deleted, "path.slug")
        transferred = await client.post(f"/api/tenants/{slug}/transfer", headers=owner.headers, json=nobody)
        assert_refused(transferred, "path.slug")
    assert [t["slug"] for t in (await client.get("/api/tenants", headers=owner.headers)).json()] == ["acme"]


async def test_query_parameters_are_checked(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    for confirm in ["ac\x00me", "ac\u202eme", "ac\x1bme", "x" * 65]:
        response = await client.delete("/api/tenants/acme", params={"confirm": confirm}, headers=owner.headers)
        assert_refused(response, "query.confirm")
    assert [t["slug"] for t in (await client.get("/api/tenants", headers=owner.headers)).json()] == ["acme"]


async def test_the_x_tenant_header_is_checked(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    for tenant in ["ACME", "ac me", "ac\x07me", "a", "acme\x00"]:
        response = await client.get("/api/members", headers=owner.headers | {"X-Tenant": tenant})
        assert_refused(response, "header.x-tenant")
