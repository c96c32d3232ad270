"""`CurrentContext`: bearer credential + tenant selection -> the caller's context, re-checked per request."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from api.deps import CurrentContext, ServicesDep
from core.context import Role
from tests.api.conftest import sign_up
from wiring.services import Services

probe = APIRouter()


@probe.get("/api/_probe")
async def whoami(ctx: CurrentContext) -> dict[str, str]:
    return {"tenant": ctx.tenant_slug, "role": ctx.role.value, "user": str(ctx.user_id)}


@probe.post("/api/_probe")
async def write(ctx: CurrentContext, services: ServicesDep) -> dict[str, str]:
    ctx.require(Role.EDITOR, "write")
    return {"ok": "yes"}


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    app.include_router(probe)
    return app


async def test_access_token_gives_the_context_of_its_tenant(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    response = await client.get("/api/_probe", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["tenant"] == "acme"
    assert response.json()["role"] == "owner"


async def test_missing_or_malformed_authorization_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/_probe")).status_code == 401
    response = await client.get("/api/_probe", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get("/api/_probe", headers={"Authorization": "Basic YTpi"})).status_code == 401


async def test_x_tenant_selects_another_of_my_tenants_and_hides_foreign_ones(
    client: httpx.AsyncClient, services: Services
) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    await sign_up(client, "bob@example.com", "bobco")
    me = (await client.get("/api/auth/me", headers=alice.headers)).json()["user"]
    await services.identity.members.create_tenant(uuid.UUID(me["id"]), "acme_labs", "Acme Labs")
    mine = await client.get("/api/_probe", headers=alice.headers | {"X-Tenant": "acme_labs"})
    assert mine.json()["tenant"] == "acme_labs"
    foreign = await client.get("/api/_probe", headers=alice.headers | {"X-Tenant": "bobco"})
    assert foreign.status_code == 404
    assert "bobco" not in str(foreign.json().get("data", ""))
