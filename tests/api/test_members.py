"""`/api/members/*`: invitations, roles, removal, and who may do what."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.settings import MailSettings
from tests.api.conftest import PASSWORD, Account, api_client, identity_settings, log_in, sign_up
from tests.fixtures import smtp as _smtp
from tests.fixtures.smtp import MailServer

mail_server = _smtp.mail_server


async def invite(client: httpx.AsyncClient, by: Account, role: str, email: str | None = None) -> str:
    response = await client.post("/api/members/invites", headers=by.headers, json={"role": role, "email": email})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["link_path"] == f"/invite#{body['token']}"
    return str(body["token"])


async def join(client: httpx.AsyncClient, token: str, email: str) -> Account:
    """A new person signs up through the invitation."""
    response = await client.post("/api/auth/signup", json={"email": email, "password": PASSWORD, "invite_token": token})
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(email, body["tenant"], body["access_token"], body["refresh_token"])


async def member_id(client: httpx.AsyncClient, by: Account, email: str) -> str:
    members = (await client.get("/api/members", headers=by.headers)).json()
    return next(m["user_id"] for m in members if m["email"] == email)


async def test_invite_by_link_then_sign_up_joins_with_the_role(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    token = await invite(client, owner, "editor")
    preview = await client.post("/api/members/invites/preview", json={"token": token})
    assert preview.json() == {"tenant_slug": "acme", "tenant_name": "Acme", "role": "editor", "email": None}
    editor = await join(client, token, "ed@example.com")
    assert editor.tenant == "acme"
    members = (await client.get("/api/members", headers=owner.headers)).json()
    assert [(m["email"], m["role"]) for m in members] == [("owner@example.com", "owner"), ("ed@example.com", "editor")]
    # The link works once.
    again = await client.post(
        "/api/auth/signup", json={"email": "late@example.com", "password": PASSWORD, "invite_token": token}
    )
    assert again.status_code == 409
    assert (
        await client.post("/api/auth/login", json={"email": "late@example.com", "password": PASSWORD})
    ).status_code == 401


async def test_an_existing_user_accepts_an_invite_and_can_switch_between_tenants(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    bob = await sign_up(client, "bob@example.com", "bobco")
    token = await invite(client, owner, "viewer", email="BOB@example.com")
    accepted = await client.post("/api/members/invites/accept", headers=bob.headers, json={"token": token})
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "viewer"
    tenants = (await client.get("/api/tenants", headers=bob.headers)).json()
    assert sorted((t["slug"], t["role"]) for t in tenants) == [("acme", "viewer"), ("bobco", "owner")]
    switched = await client.post("/api/tenants/switch", headers=bob.headers, json={"tenant": "acme"})
    assert switched.status_code == 200
    as_viewer = {"Authorization": f"Bearer {switched.json()['access_token']}"}
    assert len((await client.get("/api/members", headers=as_viewer)).json()) == 2
    # ... and the sign-in's next refresh stays in the switched tenant.
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": bob.refresh})
    assert refreshed.json()["tenant"] == "acme"


async def test_an_invite_for_one_address_refuses_everybody_else(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    token = await invite(client, owner, "editor", email="carol@example.com")
    mallory = await sign_up(client, "mallory@example.com", "mal")
    stolen = await client.post("/api/members/invites/accept", headers=mallory.headers, json={"token": token})
    assert stolen.status_code == 403
    signup = await client.post(
        "/api/auth/signup", json={"email": "mallory2@example.com", "password": PASSWORD, "invite_token": token}
    )
    assert signup.status_code == 403
    carol = await join(client, token, "carol@example.com")
    assert carol.tenant == "acme"


async def test_viewers_and_editors_cannot_manage_members(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    viewer = await join(client, await invite(client, owner, "viewer"), "vi@example.com")
    editor = await join(client, await invite(client, owner, "editor"), "ed@example.com")
    owner_id = await member_id(client, owner, "owner@example.com")
    for who in (viewer, editor):
        assert (await client.get("/api/members", headers=who.headers)).status_code == 200  # reading is fine
        attempts = [
            await client.post("/api/members/invites", headers=who.headers, json={"role": "viewer"}),
            await client.patch(f"/api/members/{owner_id}", headers=who.headers, json={"role": "viewer"}),
            await client.delete(f"/api/members/{owner_id}", headers=who.headers),
            await client.get("/api/members/invites", headers=who.headers),
        ]
        assert [r.status_code for r in attempts] == [403] * 4
        assert "needs 'admin'" in attempts[0].json()["detail"]
    # A viewer cannot promote themself either.
    viewer_id = await member_id(client, owner, "vi@example.com")
    selfish = await client.patch(f"/api/members/{viewer_id}", headers=viewer.headers, json={"role": "admin"})
    assert selfish.status_code == 403
    roles = {m["email"]: m["role"] for m in (await client.get("/api/members", headers=owner.headers)).json()}
    assert roles == {"owner@example.com": "owner", "vi@example.com": "viewer", "ed@example.com": "editor"}


async def test_admins_manage_members_below_the_owner_and_never_create_owners(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    admin = await join(client, await invite(client, owner, "admin"), "ad@example.com")
    editor = await join(client, await invite(client, admin, "editor"), "ed@example.com")
    owner_id = await member_id(client, owner, "owner@example.com")
    editor_id = await member_id(client, owner, "ed@example.com")
    promoted = await client.patch(f"/api/members/{editor_id}", headers=admin.headers, json={"role": "admin"})
    assert promoted.json()["role"] == "admin"
    assert (await client.post("/api/members/invites", headers=admin.headers, json={"role": "owner"})).status_code == 422
    as_owner = await client.patch(f"/api/members/{editor_id}", headers=admin.headers, json={"role": "owner"})
    assert as_owner.status_code == 422
    assert "transfer ownership" in as_owner.json()["detail"]
    demote_owner = await client.patch(f"/api/members/{owner_id}", headers=admin.headers, json={"role": "viewer"})
    assert demote_owner.status_code == 409
    assert (await client.delete(f"/api/members/{owner_id}", headers=admin.headers)).status_code == 409
    assert (
        await client.patch(f"/api/members/{editor_id}", headers=admin.headers, json={"role": "boss"})
    ).status_code == 422
    assert editor.tenant == "acme"


async def test_a_removed_member_loses_access_at_once(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    editor = await join(client, await invite(client, owner, "editor"), "ed@example.com")
    key = await client.post("/api/api-keys", headers=editor.headers, json={"name": "ci"})
    key_headers = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await client.get("/api/members", headers=editor.headers)).status_code == 200
    assert (await client.get("/api/members", headers=key_headers)).status_code == 200

    removed = await client.delete(
        f"/api/members/{await member_id(client, owner, 'ed@example.com')}", headers=owner.headers
    )
    assert removed.status_code == 204
    # The very next request fails: the access token (issued for acme), the header route, the key.
    token_call = await client.get("/api/members", headers=editor.headers)
    assert token_call.status_code == 401
    assert "no longer a member" in token_call.json()["detail"]
    assert (await client.get("/api/members", headers=editor.headers | {"X-Tenant": "acme"})).status_code == 404
    assert (await client.get("/api/members", headers=key_headers)).status_code == 401
    # A refreshed token no longer names the tenant at all.
    refreshed = (await client.post("/api/auth/refresh", json={"refresh_token": editor.refresh})).json()
    assert refreshed["tenant"] is None
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"})).json()[
        "tenants"
    ] == []


async def test_a_member_may_leave_but_the_owner_must_transfer_first(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    viewer = await join(client, await invite(client, owner, "viewer"), "vi@example.com")
    viewer_id = await member_id(client, owner, "vi@example.com")
    owner_id = await member_id(client, owner, "owner@example.com")
    assert (await client.delete(f"/api/members/{owner_id}", headers=owner.headers)).status_code == 409
    assert (await client.delete(f"/api/members/{viewer_id}", headers=viewer.headers)).status_code == 204
    assert [m["email"] for m in (await client.get("/api/members", headers=owner.headers)).json()] == [
        "owner@example.com"
    ]


async def test_revoked_and_unknown_invites_cannot_be_used(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    token = await invite(client, owner, "editor")
    pending = (await client.get("/api/members/invites", headers=owner.headers)).json()
    assert len(pending) == 1
    assert "token" not in pending[0]
    assert (await client.delete(f"/api/members/invites/{pending[0]['id']}", headers=owner.headers)).status_code == 204
    assert (await client.post("/api/members/invites/preview", json={"token": token})).status_code == 404
    assert (await client.post("/api/members/invites/preview", json={"token": "cci_made_up"})).status_code == 404
    assert (await client.get("/api/members/invites", headers=owner.headers)).json() == []


async def test_tenant_a_gets_404_for_tenant_b_ids_on_every_route(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    bob = await sign_up(client, "bob@example.com", "bobco")
    bob_friend = await join(client, await invite(client, bob, "editor"), "friend@example.com")
    bob_id = await member_id(client, bob, "bob@example.com")
    friend_id = await member_id(client, bob, "friend@example.com")
    await invite(client, bob, "viewer")
    bob_invite = (await client.get("/api/members/invites", headers=bob.headers)).json()[0]["id"]
    bob_key = (await client.post("/api/api-keys", headers=bob.headers, json={"name": "bob's"})).json()["api_key"]["id"]

    attempts = {
        "change role": await client.patch(f"/api/members/{friend_id}", headers=alice.headers, json={"role": "viewer"}),
        "remove": await client.delete(f"/api/members/{friend_id}", headers=alice.headers),
        "revoke invite": await client.delete(f"/api/members/invites/{bob_invite}", headers=alice.headers),
        "revoke key": await client.delete(f"/api/api-keys/{bob_key}", headers=alice.headers),
        "transfer": await client.post(
            "/api/tenants/bobco/transfer", headers=alice.headers, json={"user_id": friend_id}
        ),
        "delete tenant": await client.delete("/api/tenants/bobco?confirm=bobco", headers=alice.headers),
        "X-Tenant": await client.get("/api/members", headers=alice.headers | {"X-Tenant": "bobco"}),
        "transfer own to B's member": await client.post(
            "/api/tenants/acme/transfer", headers=alice.headers, json={"user_id": bob_id}
        ),
    }
    assert {name: r.status_code for name, r in attempts.items()} == dict.fromkeys(attempts, 404)
    for response in attempts.values():
        assert "bob@example.com" not in response.text
        assert "friend@example.com" not in response.text
    # Nothing changed in tenant B.
    members = {m["email"]: m["role"] for m in (await client.get("/api/members", headers=bob.headers)).json()}
    assert members == {"bob@example.com": "owner", "friend@example.com": "editor"}
    assert len((await client.get("/api/members/invites", headers=bob.headers)).json()) == 1
    assert bob_friend.tenant == "bobco"


async def test_login_can_pick_the_tenant(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    await client.post("/api/tenants", headers=owner.headers, json={"slug": "zeta", "name": "Zeta"})
    picked = await log_in(client, "owner@example.com", tenant="zeta")
    assert picked.tenant == "zeta"
    foreign = await client.post(
        "/api/auth/login", json={"email": "owner@example.com", "password": PASSWORD, "tenant": "nope_tenant"}
    )
    assert foreign.status_code == 404


# -- invitations by mail (a real SMTP server on loopback: tests/fixtures/smtp.py) -----------------

MAIL_LINK = re.compile(r"http://test/invite#(cci_\S+)")


@pytest.fixture
async def mail_client(db_url: str, tmp_path: Path, mail_server: MailServer) -> AsyncIterator[httpx.AsyncClient]:
    """The API with SMTP_* pointing at the loopback mail server; two invitation mails per tenant and hour."""
    settings = identity_settings(tmp_path, db_url)
    settings.mail = MailSettings(
        host=mail_server.host,
        port=mail_server.port,
        sender="CrewCanvas <noreply@example.com>",
        security="none",
        invites_per_hour=2,
    )
    async with api_client(settings) as (http, _services):
        yield http


async def test_an_invite_by_email_is_mailed_and_the_mailed_link_lets_that_address_join(
    mail_client: httpx.AsyncClient, mail_server: MailServer
) -> None:
    owner = await sign_up(mail_client, "owner@example.com", "acme")
    response = await mail_client.post(
        "/api/members/invites", headers=owner.headers, json={"role": "editor", "email": "Kim@Example.com"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["emailed"], body["email_error"]) == (True, None)
    assert body["link"] == f"http://test/invite#{body['token']}"
    [mail] = mail_server.to("kim@example.com")
    assert "owner@example.com" in mail.message["Subject"]
    text = mail.text()
    assert '"Acme" (acme)' in text
    assert "as editor" in text
    [token] = MAIL_LINK.findall(text)
    assert token == body["token"]
    kim = await join(mail_client, token, "kim@example.com")
    assert kim.tenant == "acme"
    members = (await mail_client.get("/api/members", headers=owner.headers)).json()
    assert ("kim@example.com", "editor") in [(m["email"], m["role"]) for m in members]
    assert len(mail_server.messages) == 1  # one mail per invitation


async def test_a_mailed_link_still_works_for_that_address_only(
    mail_client: httpx.AsyncClient, mail_server: MailServer
) -> None:
    owner = await sign_up(mail_client, "owner@example.com", "acme")
    await invite(mail_client, owner, "viewer", email="lee@example.com")
    [token] = MAIL_LINK.findall(mail_server.to("lee@example.com")[0].text())
    other = await mail_client.post(
        "/api/auth/signup", json={"email": "someone@example.com", "password": PASSWORD, "invite_token": token}
    )
    assert other.status_code == 403
    assert (await join(mail_client, token, "lee@example.com")).tenant == "acme"


async def test_a_failed_invitation_mail_keeps_the_invitation_and_says_why(
    mail_client: httpx.AsyncClient, mail_server: MailServer
) -> None:
    owner = await sign_up(mail_client, "owner@example.com", "acme")
    mail_server.refuse_recipients = True
    response = await mail_client.post(
        "/api/members/invites", headers=owner.headers, json={"role": "viewer", "email": "max@example.com"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["emailed"] is False
    assert (
        f"mail server {mail_server.host}:{mail_server.port} refused the recipient max@example.com"
        in (body["email_error"])
    )
    assert mail_server.messages == []
    pending = (await mail_client.get("/api/members/invites", headers=owner.headers)).json()
    assert [p["email"] for p in pending] == ["max@example.com"]
    assert (await join(mail_client, body["token"], "max@example.com")).tenant == "acme"


async def test_invitation_mails_per_tenant_and_hour_are_capped(
    mail_client: httpx.AsyncClient, mail_server: MailServer
) -> None:
    owner = await sign_up(mail_client, "owner@example.com", "acme")
    for n in range(2):
        await invite(mail_client, owner, "viewer", email=f"n{n}@example.com")
    refused = await mail_client.post(
        "/api/members/invites", headers=owner.headers, json={"role": "viewer", "email": "n2@example.com"}
    )
    assert refused.status_code == 429
    assert 3000 <= int(refused.headers["Retry-After"]) <= 3600
    assert "2 invitation mails in the last hour" in refused.json()["detail"]
    assert len(mail_server.messages) == 2
    # Links for anyone still work, and another tenant has its own budget.
    assert (await invite(mail_client, owner, "viewer")).startswith("cci_")
    other = await sign_up(mail_client, "other@example.com", "other")
    await invite(mail_client, other, "viewer", email="n3@example.com")
    assert len(mail_server.messages) == 3


async def test_only_admins_can_have_invitations_mailed(mail_client: httpx.AsyncClient, mail_server: MailServer) -> None:
    owner = await sign_up(mail_client, "owner@example.com", "acme")
    editor = await join(mail_client, await invite(mail_client, owner, "editor"), "ed@example.com")
    response = await mail_client.post(
        "/api/members/invites", headers=editor.headers, json={"role": "viewer", "email": "spam@example.com"}
    )
    assert response.status_code == 403
    assert mail_server.messages == []


async def test_without_a_mail_server_an_invite_by_email_is_a_link_to_pass_on(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    response = await client.post(
        "/api/members/invites", headers=owner.headers, json={"role": "viewer", "email": "nia@example.com"}
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["emailed"], body["email_error"]) == (False, None)
    assert body["link"] == f"http://test/invite#{body['token']}"
