"""The API contract: what `/api/openapi.json` says is what the API answers.

One error body for every error (core errors, request validation, unknown routes, wrong
methods, unreadable bodies), request models for every body, and a 405 whose `Allow`
header names every method of the path.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import APIRouter, FastAPI

from tests.api.conftest import sign_up

ERROR_BODY_REF = "#/components/schemas/ErrorBody"


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def assert_error_body(spec: dict[str, Any], response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """`response` is a `status` answer of `kind` whose body is the documented `ErrorBody`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = dict(response.json())
    schema = {"$ref": ERROR_BODY_REF, "components": spec["components"]}
    jsonschema.validate(body, schema)
    assert body["error"] == kind
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


async def test_every_error_answer_is_documented_with_the_one_error_body(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert set(schemas["ErrorBody"]["properties"]) == {"error", "detail", "problems"}
    errors = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if int(status) < 400 or path == "/api/health":
                    continue
                errors += 1
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_BODY_REF}, (method, path, status)
    assert errors > 100


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("post", "/api/auth/login", {"400", "401", "413", "422", "429"}),
        ("post", "/api/providers", {"400", "401", "403", "404", "409", "413", "422"}),
        ("patch", "/api/providers/{provider_id}", {"400", "401", "403", "404", "409", "413", "422"}),
        ("post", "/api/llm/chat", {"400", "401", "403", "404", "413", "422", "429", "503"}),
        ("delete", "/api/tenants/{slug}", {"401", "403", "404", "422"}),
        ("post", "/api/tools/{tool_id}/try", {"400", "401", "403", "404", "413", "422", "503"}),
    ],
)
async def test_operations_declare_the_errors_they_answer_with(
    client: httpx.AsyncClient, method: str, path: str, codes: set[str]
) -> None:
    operation = (await document(client))["paths"][path][method]
    assert codes <= set(operation["responses"])


async def test_provider_and_chat_bodies_are_described_and_keys_are_write_only(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    paths = spec["paths"]

    def body_of(method: str, path: str) -> str:
        return str(paths[path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"])

    assert body_of("post", "/api/providers").endswith("/ProviderInput")
    assert body_of("patch", "/api/providers/{provider_id}").endswith("/ProviderFields")
    assert body_of("post", "/api/llm/chat").endswith("/ChatBody")
    api_key = spec["components"]["schemas"]["ProviderInput"]["properties"]["api_key"]["anyOf"][0]
    assert api_key == {"type": "string", "format": "password", "writeOnly": True}
    models = spec["components"]["schemas"]["ProviderFields"]["properties"]["models"]["anyOf"][0]
    assert (models["maxItems"], models["items"]["maxLength"]) == (100, 200)
    chat = paths["/api/llm/chat"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    for path, item in paths.items():
        for method, operation in item.items():
            if method in {"post", "put", "patch"} and path not in {
                "/api/auth/logout",
                "/api/providers/{provider_id}/test",
                "/api/flows/{flow_id}/versions/{version}/restore",
                "/api/executions/{execution_id}/cancel",
                "/api/executions/{execution_id}/retry",
                "/api/executions/{execution_id}/resume",
                "/api/executions/{execution_id}/step",
            }:
                assert operation.get("requestBody", {}).get("required"), (method, path)


async def test_a_core_422_is_the_error_body_with_a_sentence(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    owner = await sign_up(client, "owner@example.com", "acme")
    response = await client.post(
        "/api/llm/chat",
        headers=owner.headers,
        json={"messages": [{"role": "user", "content": "x"}], "params": {"api_base": "http://evil"}},
    )
    body = assert_error_body(spec, response, 422, "InvalidInput")
    assert "cannot be set per request" in body["detail"]
    assert body["problems"] == []


async def test_a_validation_422_names_every_wrong_field_and_never_repeats_the_values(
    client: httpx.AsyncClient,
) -> None:
    spec = await document(client)
    owner = await sign_up(client, "owner@example.com", "acme")
    canary = "sk-canary-0d9e8f7a6b5c"
    response = await client.post(
        "/api/providers",
        headers=owner.headers,
        json={"name": "", "kind": "bedrock", "api_key": canary, "models": ["m"] * 101, "region": canary},
    )
    body = assert_error_body(spec, response, 422, "InvalidInput")
    assert {p["field"] for p in body["problems"]} == {"name", "kind", "models", "region"}
    assert body["detail"].startswith("invalid request: ")
    assert canary not in response.text


async def test_unknown_routes_and_unreadable_bodies_answer_with_the_error_body(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    assert_error_body(spec, await client.get("/api/no-such-thing"), 404, "NotFound")
    unreadable = await client.post(
        "/api/auth/login", content=b'{"email": "\xff", "password": "x"}', headers={"content-type": "application/json"}
    )
    assert_error_body(spec, unreadable, 400, "BadRequest")
    broken = await client.post("/api/auth/login", content=b'{"email": ', headers={"content-type": "application/json"})
    body = assert_error_body(spec, broken, 422, "InvalidInput")
    assert body["problems"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/providers/{id}", {"GET", "PATCH", "DELETE"}),
        ("POST", "/api/tools/{id}", {"GET", "PUT", "DELETE"}),
        ("DELETE", "/api/auth/login", {"POST"}),
        ("PUT", "/api/members/invites/preview", {"POST", "DELETE"}),  # DELETE: invites/{invite_id}
        ("POST", "/api/tenants/acme", {"DELETE"}),
    ],
)
async def test_a_405_allows_the_methods_of_every_route_for_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    spec = await document(client)
    response = await client.request(method, path.format(id=uuid.uuid4()))
    body = assert_error_body(spec, response, 405, "MethodNotAllowed")
    assert set(response.headers["allow"].split(", ")) == allowed
    assert method in body["detail"]


@pytest.mark.parametrize("day", ["0", "1700000000", "20261130", "2026-11-30T00:00:00", "2026-02-30", "26-11-30"])
async def test_the_usage_day_is_only_ever_yyyy_mm_dd(client: httpx.AsyncClient, day: str) -> None:
    spec = await document(client)
    owner = await sign_up(client, "owner@example.com", "acme")
    response = await client.get("/api/usage/daily", headers=owner.headers, params={"day": day})
    body = assert_error_body(spec, response, 422, "InvalidInput")
    assert [p["field"] for p in body["problems"]] == ["query.day"]


async def test_the_usage_day_takes_a_date(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    response = await client.get("/api/usage/daily", headers=owner.headers, params={"day": "2026-11-30"})
    assert response.status_code == 200, response.text
    assert response.json() == {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}


async def test_a_bug_is_a_500_with_the_error_body_and_no_traceback(app: FastAPI) -> None:
    probe = APIRouter()

    @probe.get("/api/_probe/bug")
    async def bug() -> None:
        raise RuntimeError("internal detail: secret-ish state")

    app.include_router(probe)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/api/_probe/bug")
        spec = await document(http)
    body = assert_error_body(spec, response, 500, "InternalError")
    assert "internal detail" not in response.text
    assert "try again" in body["detail"]
