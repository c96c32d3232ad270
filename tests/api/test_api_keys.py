"""`/api/api-keys/*`: shown once, hashed, bound to a tenant and a role no higher than its creator's."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from db.base import utcnow
from db.models.control import ApiKey
from tests.api.conftest import sign_up
from tests.api.test_members import invite, join, member_id
from wiring.services import Services


async def test_a_key_is_shown_once_and_authenticates_in_its_tenant(
    client: httpx.AsyncClient, services: Services
) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    created = await client.post("/api/api-keys", headers=alice.headers, json={"name": "laptop", "role": "editor"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("cck_")
    listed = await client.get("/api/api-keys", headers=alice.headers)
    assert key not in listed.text
    assert [(k["name"], k["role"], k["revoked"]) for k in listed.json()] == [("laptop", "editor", False)]
    as_key = {"Authorization": f"Bearer {key}"}
    me = (await client.get("/api/auth/me", headers=as_key)).json()
    assert me["via"] == "api_key"
    assert [t["slug"] for t in me["tenants"]] == ["acme"]
    # The key acts as editor even though its creator is the owner.
    assert (await client.post("/api/members/invites", headers=as_key, json={"role": "viewer"})).status_code == 403
    # Stored as a digest only.
    async with services.db.control_session() as session:
        stored = (await session.scalars(select(ApiKey.key_hash))).all()
    assert stored
    assert key not in stored
    assert all(len(h) == 64 for h in stored)


async def test_a_key_cannot_outrank_its_creator(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    viewer = await join(client, await invite(client, owner, "viewer"), "vi@example.com")
    too_high = await client.post("/api/api-keys", headers=viewer.headers, json={"name": "x", "role": "admin"})
    assert too_high.status_code == 403
    key = (
        await client.post("/api/api-keys", headers=owner.headers, json={"name": "admin key", "role": "admin"})
    ).json()
    # Demoting the creator demotes the key with them.
    admin = await join(client, await invite(client, owner, "admin"), "ad@example.com")
    admin_key = (await client.post("/api/api-keys", headers=admin.headers, json={"name": "k", "role": "admin"})).json()
    admin_id = await member_id(client, owner, "ad@example.com")
    await client.patch(f"/api/members/{admin_id}", headers=owner.headers, json={"role": "viewer"})
    as_admin_key = {"Authorization": f"Bearer {admin_key['key']}"}
    assert (await client.get("/api/members/invites", headers=as_admin_key)).status_code == 403
    assert (
        await client.get("/api/members/invites", headers={"Authorization": f"Bearer {key['key']}"})
    ).status_code == 200


async def test_revoked_expired_and_mangled_keys_are_refused(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    created = (await client.post("/api/api-keys", headers=alice.headers, json={"name": "ci"})).json()
    key, key_id = created["key"], created["api_key"]["id"]
    as_key = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/members", headers=as_key)).status_code == 200
    for mangled in (
        key[:-1] + ("A" if key[-1] != "A" else "B"),
        key + "x",
        "cck_",
        "cck_short_x",
        key.replace("cck_", "cck_X", 1),
    ):
        assert (await client.get("/api/members", headers={"Authorization": f"Bearer {mangled}"})).status_code == 401
    assert (await client.delete(f"/api/api-keys/{key_id}", headers=alice.headers)).status_code == 204
    refused = await client.get("/api/members", headers=as_key)
    assert refused.status_code == 401
    assert "create a new one" in refused.json()["detail"]
    assert (await client.get("/api/api-keys", headers=alice.headers)).json()[0]["revoked"] is True


async def test_a_key_stays_in_its_tenant(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    await client.post("/api/tenants", headers=alice.headers, json={"slug": "acme_two"})
    key = (await client.post("/api/api-keys", headers=alice.headers, json={"name": "ci"})).json()["key"]
    as_key = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/members", headers=as_key | {"X-Tenant": "acme_two"})).status_code == 404
    assert (await client.post("/api/tenants/switch", headers=as_key, json={"tenant": "acme_two"})).status_code == 422
    assert [t["slug"] for t in (await client.get("/api/tenants", headers=as_key)).json()] == ["acme"]
    assert (await client.delete("/api/tenants/acme_two?confirm=acme_two", headers=as_key)).status_code == 422


async def test_keys_expire(client: httpx.AsyncClient, services: Services) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    created = (
        await client.post("/api/api-keys", headers=alice.headers, json={"name": "ci", "expires_in_days": 1})
    ).json()
    as_key = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/api/members", headers=as_key)).status_code == 200
    async with services.db.control_session() as session:
        await session.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert (await client.get("/api/members", headers=as_key)).status_code == 401
