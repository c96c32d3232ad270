"""`/api/tenants/*`: my tenants, creating another, switching, transferring ownership, deleting."""

from __future__ import annotations

import httpx

from tests.api.conftest import log_in, sign_up
from tests.api.test_members import invite, join, member_id
from wiring.services import Services


async def test_a_user_creates_another_tenant_and_switches_to_it(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    created = await client.post("/api/tenants", headers=alice.headers, json={"slug": "acme_two", "name": "Acme Two"})
    assert created.status_code == 201
    assert created.json()["role"] == "owner"
    listed = (await client.get("/api/tenants", headers=alice.headers)).json()
    assert [t["slug"] for t in listed] == ["acme", "acme_two"]
    switched = (await client.post("/api/tenants/switch", headers=alice.headers, json={"tenant": "acme_two"})).json()
    headers = {"Authorization": f"Bearer {switched['access_token']}"}
    members = (await client.get("/api/members", headers=headers)).json()
    assert [m["email"] for m in members] == ["alice@example.com"]
    assert (
        await client.post("/api/tenants/switch", headers=alice.headers, json={"tenant": "bogus"})
    ).status_code == 404


async def test_bad_slugs_are_refused_with_the_reason(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    for slug in ("Bad Slug", "pg_x", "admin", "a"):
        response = await client.post("/api/tenants", headers=alice.headers, json={"slug": slug})
        assert response.status_code == 422, slug
        assert "tenant slug" in response.json()["detail"]


async def test_only_the_owner_deletes_and_only_with_confirmation(client: httpx.AsyncClient, services: Services) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    admin = await join(client, await invite(client, owner, "admin"), "admin@example.com")
    assert (await client.delete("/api/tenants/acme?confirm=acme", headers=admin.headers)).status_code == 403
    unconfirmed = await client.delete("/api/tenants/acme", headers=owner.headers)
    assert unconfirmed.status_code == 422
    assert "repeating its slug" in unconfirmed.json()["detail"]
    assert (await client.delete("/api/tenants/acme?confirm=acm", headers=owner.headers)).status_code == 422
    assert (await client.delete("/api/tenants/acme?confirm=acme", headers=owner.headers)).status_code == 204
    assert [t.slug for t in await services.tenants.list()] == []
    assert (await client.get("/api/tenants", headers=admin.headers)).json() == []
    assert (await client.get("/api/members", headers=admin.headers | {"X-Tenant": "acme"})).status_code == 404


async def test_ownership_transfer_swaps_owner_and_admin(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    editor = await join(client, await invite(client, owner, "editor"), "ed@example.com")
    editor_id = await member_id(client, owner, "ed@example.com")
    assert (
        await client.post("/api/tenants/acme/transfer", headers=editor.headers, json={"user_id": editor_id})
    ).status_code == 403
    moved = await client.post("/api/tenants/acme/transfer", headers=owner.headers, json={"user_id": editor_id})
    assert moved.status_code == 204
    roles = {m["email"]: m["role"] for m in (await client.get("/api/members", headers=owner.headers)).json()}
    assert roles == {"owner@example.com": "admin", "ed@example.com": "owner"}
    # The old owner cannot delete any more; the new one can.
    assert (await client.delete("/api/tenants/acme?confirm=acme", headers=owner.headers)).status_code == 403
    assert (await client.delete("/api/tenants/acme?confirm=acme", headers=editor.headers)).status_code == 204


async def test_a_user_without_tenants_must_choose_one(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    lone = await join(client, await invite(client, owner, "viewer"), "lone@example.com")
    await client.delete("/api/members/" + await member_id(client, lone, "lone@example.com"), headers=lone.headers)
    fresh = await log_in(client, "lone@example.com")
    assert fresh.tenant is None
    response = await client.get("/api/members", headers=fresh.headers)
    assert response.status_code == 422
    assert "X-Tenant" in response.json()["detail"]
