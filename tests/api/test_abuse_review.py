"""Adversarial review of the identity API: races, odd tokens, key scope, and secrets in logs.

Each test here was written to fail against the code as it stood, then the code was fixed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid

import httpx
import pytest

from tests.api.conftest import PASSWORD, sign_up
from tests.api.test_members import invite, join
from wiring.services import Services


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- login throttling under concurrency ---------------------------------------------------------------


async def test_concurrent_wrong_passwords_cannot_slip_past_the_account_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Guesses fired at once must not all pass the check before the first failure is counted."""
    await sign_up(client, "alice@example.com", "acme")
    limit = services.settings.auth.login_max_failures_per_account
    responses = await asyncio.gather(
        *(
            client.post("/api/auth/login", json={"email": "alice@example.com", "password": f"guess {n} of many"})
            for n in range(limit * 6)
        )
    )
    codes = [r.status_code for r in responses]
    assert codes.count(401) <= limit, codes
    assert set(codes) <= {401, 429}


async def test_a_correct_password_still_works_after_a_few_failures(client: httpx.AsyncClient) -> None:
    await sign_up(client, "alice@example.com", "acme")
    for n in range(3):
        wrong = await client.post("/api/auth/login", json={"email": "alice@example.com", "password": f"wrong {n}!!"})
        assert wrong.status_code == 401
    right = await client.post("/api/auth/login", json={"email": " Alice@Example.COM ", "password": PASSWORD})
    assert right.status_code == 200


async def test_spelling_the_address_differently_does_not_reset_the_account_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    await sign_up(client, "alice@example.com", "acme")
    limit = services.settings.auth.login_max_failures_per_account
    spellings = ["alice@example.com", "ALICE@example.com", " alice@EXAMPLE.com", "Alice@Example.Com\t"]
    codes = []
    for n in range(limit + len(spellings)):
        email = spellings[n % len(spellings)]
        response = await client.post("/api/auth/login", json={"email": email, "password": f"wrong guess {n}"})
        codes.append(response.status_code)
    assert codes.count(401) == limit
    assert codes[limit:] == [429] * (len(codes) - limit)


async def test_x_forwarded_for_does_not_pick_the_throttled_address(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Without a trusted proxy, a client cannot name its own address to escape the per-address limit."""
    per_ip = services.settings.auth.login_max_failures_per_ip
    codes = []
    for n in range(per_ip + 3):
        response = await client.post(
            "/api/auth/login",
            json={"email": f"user{n}@example.com", "password": "guess guess"},
            headers={"X-Forwarded-For": f"10.0.{n}.1", "X-Real-IP": f"10.1.{n}.1"},
        )
        codes.append(response.status_code)
    assert codes[per_ip:] == [429] * 3


# -- refresh rotation under concurrency ---------------------------------------------------------------


async def test_two_refreshes_with_one_token_at_once_revoke_the_family(client: httpx.AsyncClient) -> None:
    """One of two simultaneous uses of a refresh token is a reuse: exactly one wins, then the family dies."""
    alice = await sign_up(client, "alice@example.com", "acme")
    first, second = await asyncio.gather(
        client.post("/api/auth/refresh", json={"refresh_token": alice.refresh}),
        client.post("/api/auth/refresh", json={"refresh_token": alice.refresh}),
    )
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 401], (first.text, second.text)
    winner = first if first.status_code == 200 else second
    again = await client.post("/api/auth/refresh", json={"refresh_token": winner.json()["refresh_token"]})
    assert again.status_code == 401
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {winner.json()['access_token']}"})
    assert me.status_code == 401


# -- odd access tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"[" * 3000 + b"]" * 3000,  # nesting deep enough to exhaust the JSON parser's recursion
        b'{"alg":"HS256","kid":' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"alg":"HS256","kid":1e999999}',
        b'{"alg":"HS256","alg":"none"}',
        b"\xff\xfe{}",
    ],
)
async def test_a_pathological_token_header_is_a_401_never_a_crash(client: httpx.AsyncClient, header: bytes) -> None:
    token = f"{b64(header)}.{b64(b'{}')}.{b64(b'sig')}"
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert token not in response.text


async def test_a_huge_token_is_refused_without_echoing_it(client: httpx.AsyncClient) -> None:
    token = "eyJ" + "A" * 200_000 + ".e30.sig"
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert len(response.text) < 1000


# -- API key scope --------------------------------------------------------------------------------------


async def test_an_api_key_cannot_mint_further_api_keys(client: httpx.AsyncClient) -> None:
    """A leaked key that expires tomorrow must not be able to create a key that never expires."""
    alice = await sign_up(client, "alice@example.com", "acme")
    created = await client.post(
        "/api/api-keys", headers=alice.headers, json={"name": "ci", "role": "editor", "expires_in_days": 1}
    )
    assert created.status_code == 201
    key_headers = {"Authorization": f"Bearer {created.json()['key']}"}
    minted = await client.post("/api/api-keys", headers=key_headers, json={"name": "forever"})
    assert minted.status_code in {403, 422}, minted.text
    assert "key" not in minted.json() or not str(minted.json().get("key", "")).startswith("cck_")
    listed = (await client.get("/api/api-keys", headers=alice.headers)).json()
    assert [k["name"] for k in listed] == ["ci"]


async def test_a_key_for_tenant_a_with_x_tenant_b_is_404(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    await sign_up(client, "bob@example.com", "bobco")
    # Alice joins bobco too: her acme key must still not reach bobco.
    bob = await client.post("/api/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
    bob_headers = {"Authorization": f"Bearer {bob.json()['access_token']}"}
    token = (await client.post("/api/members/invites", headers=bob_headers, json={"role": "admin"})).json()["token"]
    accepted = await client.post("/api/members/invites/accept", headers=alice.headers, json={"token": token})
    assert accepted.status_code == 200
    key = (await client.post("/api/api-keys", headers=alice.headers, json={"name": "acme only"})).json()["key"]
    response = await client.get("/api/members", headers={"Authorization": f"Bearer {key}", "X-Tenant": "bobco"})
    assert response.status_code == 404
    assert "bob@example.com" not in response.text


# -- invites --------------------------------------------------------------------------------------------


async def test_accepting_an_invite_to_a_tenant_you_are_in_keeps_your_role_and_the_invite(
    client: httpx.AsyncClient,
) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    token = await invite(client, alice, "viewer")
    again = await client.post("/api/members/invites/accept", headers=alice.headers, json={"token": token})
    assert again.status_code == 409
    members = (await client.get("/api/members", headers=alice.headers)).json()
    assert [(m["email"], m["role"]) for m in members] == [("alice@example.com", "owner")]
    carol = await join(client, token, "carol@example.com")  # the invitation was not used up
    assert carol.tenant == "acme"


async def test_an_invite_token_works_once_even_when_raced(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    token = await invite(client, alice, "editor")
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/auth/signup",
                json={"email": f"racer{n}@example.com", "password": PASSWORD, "invite_token": token},
            )
            for n in range(4)
        )
    )
    assert sorted(r.status_code for r in responses).count(201) <= 1
    members = (await client.get("/api/members", headers=alice.headers)).json()
    assert len(members) == 2


# -- secrets never reach logs or error bodies ------------------------------------------------------------


async def test_identity_journeys_never_log_or_echo_secrets(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary_password = "canary-password-7f3a91"
    signed = await client.post(
        "/api/auth/signup",
        json={"email": "alice@example.com", "password": canary_password, "tenant_slug": "acme"},
    )
    assert signed.status_code == 201
    tokens = signed.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    wrong = await client.post("/api/auth/login", json={"email": "alice@example.com", "password": "canary-wrong-55c2"})
    assert "canary-wrong-55c2" not in wrong.text
    short = await client.post(
        "/api/auth/signup", json={"email": "x@example.com", "password": "canary", "tenant_slug": "xco"}
    )
    assert short.status_code == 422
    assert "canary" not in short.text
    key = (await client.post("/api/api-keys", headers=headers, json={"name": "ci"})).json()["key"]
    await client.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})
    bad_key = key[:-4] + "AAAA"
    refused = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {bad_key}"})
    assert refused.status_code == 401
    assert bad_key not in refused.text
    invite_token = (await client.post("/api/members/invites", headers=headers, json={"role": "viewer"})).json()["token"]
    await client.post("/api/members/invites/preview", json={"token": invite_token})
    rotated = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    reused = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert reused.status_code == 401
    assert tokens["refresh_token"] not in reused.text
    secrets = [canary_password, "canary-wrong-55c2", key, bad_key, invite_token, tokens["refresh_token"]]
    secrets += [tokens["access_token"], rotated.json()["access_token"], rotated.json()["refresh_token"]]
    logged = caplog.text
    for secret in secrets:
        assert secret not in logged


async def test_one_api_key_used_by_many_requests_at_once(client: httpx.AsyncClient) -> None:
    """Recording `last_used_at` must not turn concurrent requests into errors (SQLite's lock upgrade)."""
    alice = await sign_up(client, "alice@example.com", "acme")
    for round_ in range(5):  # a fresh key each round: its first uses all want to record `last_used_at`
        key = (await client.post("/api/api-keys", headers=alice.headers, json={"name": f"ci {round_}"})).json()["key"]
        responses = await asyncio.gather(
            *(client.get("/api/members", headers={"Authorization": f"Bearer {key}"}) for _ in range(10))
        )
        assert [r.status_code for r in responses] == [200] * 10


# -- OIDC linking by email -------------------------------------------------------------------------------


async def test_whoever_registered_an_unverified_address_loses_the_account_to_its_verified_owner(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Pre-registration takeover: someone signs up with another person's address (nobody checks it),
    keeps a password, tokens and an API key, and waits for the real owner to arrive through OIDC.
    Once the owner's verified identity is linked, none of what the squatter holds may still work."""
    squatter = await sign_up(client, "ada@example.com", "trap")
    key = (await client.post("/api/api-keys", headers=squatter.headers, json={"name": "backdoor"})).json()["key"]
    squatter_id = uuid.UUID(str((await me(client, squatter.headers))["user"]["id"]))  # type: ignore[index]  # JSON
    ui_session = await services.identity.sessions.create(squatter_id)

    claims = {"sub": "ada-at-idp", "email": "ada@example.com", "email_verified": True, "name": "Ada"}
    owner = await services.identity.oidc.sign_in("https://idp.example", claims)

    assert (await client.get("/api/auth/me", headers=squatter.headers)).status_code == 401
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": squatter.refresh})
    assert refreshed.status_code == 401
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})).status_code == 401
    assert await services.identity.sessions.resolve(ui_session) is None
    login = await client.post("/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 401
    assert owner.email_verified
    assert not owner.has_password
    # The owner's own sign-in works.
    assert await services.identity.sessions.resolve(await services.identity.sessions.create(owner.id)) is not None


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    response = await client.get("/api/auth/me", headers=headers)
    assert response.status_code == 200
    return dict(response.json())


async def test_a_browser_session_resolved_many_times_at_once_after_a_removal(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Several handlers resolving one session while it moves to the user's other tenant must all succeed."""
    alice = await sign_up(client, "alice@example.com", "acme")
    bob = await sign_up(client, "bob@example.com", "bobco")
    token = await invite(client, alice, "editor")
    accepted = await client.post("/api/members/invites/accept", headers=bob.headers, json={"token": token})
    assert accepted.status_code == 200
    bob_id = uuid.UUID(str((await me(client, bob.headers))["user"]["id"]))  # type: ignore[index]  # JSON
    for _ in range(3):
        sid = await services.identity.sessions.create(bob_id, uuid.UUID(accepted.json()["tenant_id"]))
        members = (await client.get("/api/members", headers=alice.headers)).json()
        bob_member = next(m["user_id"] for m in members if m["email"] == "bob@example.com")
        assert (await client.delete(f"/api/members/{bob_member}", headers=alice.headers)).status_code == 204
        states = await asyncio.gather(*(services.identity.sessions.resolve(sid) for _ in range(10)))
        assert all(s is not None and s.context is not None and s.context.tenant_slug == "bobco" for s in states)
        token = await invite(client, alice, "editor")
        assert (
            await client.post("/api/members/invites/accept", headers=bob.headers, json={"token": token})
        ).status_code == 200
