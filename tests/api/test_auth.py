"""`/api/auth/*`: sign-up, sign-in, refresh rotation, sign-out, throttling, and forged tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from core.auth.tokens import AccessTokens
from tests.api.conftest import PASSWORD, TEST_SECRET, log_in, sign_up
from wiring.services import Services


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def token_key() -> OctKey:
    """The signing key as documented in core/auth/tokens.py: HKDF-SHA256 of SECRET_KEY."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"crewcanvas", info=b"access-token-hs256-v1").derive(
        TEST_SECRET.encode()
    )
    return OctKey.import_key(raw, {"kid": hashlib.sha256(raw).hexdigest()[:16]})


async def status_with(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code


async def test_signup_creates_a_tenant_owned_by_the_new_user(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "Alice@Example.com", "acme")
    me = (await client.get("/api/auth/me", headers=alice.headers)).json()
    assert me["user"]["email"] == "alice@example.com"
    assert [(t["slug"], t["role"]) for t in me["tenants"]] == [("acme", "owner")]
    assert me["via"] == "access_token"


async def test_signup_refuses_a_taken_email_or_slug_and_weak_passwords(client: httpx.AsyncClient) -> None:
    await sign_up(client, "alice@example.com", "acme")
    again = await client.post(
        "/api/auth/signup", json={"email": "ALICE@example.com", "password": PASSWORD, "tenant_slug": "other"}
    )
    assert again.status_code == 409
    assert "sign in instead" in again.json()["detail"]
    slug = await client.post(
        "/api/auth/signup", json={"email": "bob@example.com", "password": PASSWORD, "tenant_slug": "acme"}
    )
    assert slug.status_code == 409
    weak = await client.post(
        "/api/auth/signup", json={"email": "carol@example.com", "password": "short", "tenant_slug": "carol"}
    )
    assert weak.status_code == 422
    assert "at least 8 characters" in weak.json()["detail"]
    listed = (await client.get("/api/tenants", headers=(await log_in(client, "alice@example.com")).headers)).json()
    assert [t["slug"] for t in listed] == ["acme"]


async def test_login_with_a_wrong_password_says_so_without_naming_which_part(client: httpx.AsyncClient) -> None:
    await sign_up(client, "alice@example.com", "acme")
    wrong = await client.post("/api/auth/login", json={"email": "alice@example.com", "password": "not the one"})
    unknown = await client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "not the one"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient,
) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    first = await client.post("/api/auth/refresh", json={"refresh_token": alice.refresh})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != alice.refresh
    assert rotated["tenant"] == "acme"
    assert await status_with(client, rotated["access_token"]) == 200

    replay = await client.post("/api/auth/refresh", json={"refresh_token": alice.refresh})  # the stolen copy
    assert replay.status_code == 401
    assert "revoked" in replay.json()["detail"]
    # Every token of that sign-in is dead now, the legitimate successor included.
    assert (await client.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})).status_code == 401
    assert await status_with(client, rotated["access_token"]) == 401
    assert await status_with(client, alice.access) == 401
    # Another sign-in of the same user is untouched.
    other = await log_in(client, "alice@example.com")
    assert await status_with(client, other.access) == 200


async def test_logout_ends_the_sign_in_at_once(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    out = await client.post("/api/auth/logout", headers=alice.headers, json={"refresh_token": alice.refresh})
    assert out.status_code == 204
    assert await status_with(client, alice.access) == 401
    assert (await client.post("/api/auth/refresh", json={"refresh_token": alice.refresh})).status_code == 401


async def test_changing_the_password_ends_every_sign_in(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    second = await log_in(client, "alice@example.com")
    changed = await client.post(
        "/api/auth/password",
        headers=alice.headers,
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert changed.status_code == 204
    assert await status_with(client, alice.access) == 401
    assert await status_with(client, second.access) == 401
    assert (await client.post("/api/auth/refresh", json={"refresh_token": second.refresh})).status_code == 401
    fresh = await client.post(
        "/api/auth/login", json={"email": "alice@example.com", "password": "a brand new passphrase"}
    )
    assert fresh.status_code == 200


async def test_a_thousand_wrong_passwords_are_throttled_before_hashing(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(client, "alice@example.com", "acme")
    passwords = services.identity.accounts._passwords
    verified = 0
    real_verify = passwords.verify

    async def counting_verify(password: str, stored: str | None) -> tuple[bool, str | None]:
        nonlocal verified
        verified += 1
        return await real_verify(password, stored)

    monkeypatch.setattr(passwords, "verify", counting_verify)
    codes = []
    for attempt in range(1000):
        response = await client.post(
            "/api/auth/login", json={"email": "alice@example.com", "password": f"guess number {attempt}"}
        )
        codes.append(response.status_code)
    limit = services.settings.auth.login_max_failures_per_account
    assert codes[:limit] == [401] * limit
    assert set(codes[limit:]) == {429}
    assert verified == limit  # the other 995 never reached Argon2
    throttled = await client.post("/api/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert throttled.status_code == 429  # even the right password waits out the window
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_one_address_guessing_across_many_accounts_is_throttled(
    client: httpx.AsyncClient, services: Services
) -> None:
    await sign_up(client, "alice@example.com", "acme")
    per_ip = services.settings.auth.login_max_failures_per_ip
    codes = [
        (
            await client.post("/api/auth/login", json={"email": f"user{n}@example.com", "password": "guess guess"})
        ).status_code
        for n in range(per_ip + 5)
    ]
    assert codes[:per_ip] == [401] * per_ip
    assert set(codes[per_ip:]) == {429}
    blocked = await client.post("/api/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert blocked.status_code == 429


# -- forged and broken access tokens: all refused with 401 -------------------------------------------


async def test_a_valid_token_is_accepted_as_a_baseline(client: httpx.AsyncClient) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    key = token_key()
    good = claims_of(alice.access)
    resigned = jwt.encode({"alg": "HS256", "kid": key.kid}, good, key)
    assert await status_with(client, resigned) == 200


@pytest.mark.parametrize(
    "forge",
    [
        "alg_none",
        "alg_none_no_kid",
        "hs512",
        "rs256_with_our_kid",
        "foreign_kid",
        "no_kid",
        "missing_exp",
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "future_iat",
        "tampered_payload",
        "other_secret",
    ],
)
async def test_forged_or_broken_tokens_are_refused(client: httpx.AsyncClient, forge: str) -> None:
    alice = await sign_up(client, "alice@example.com", "acme")
    key = token_key()
    claims = claims_of(alice.access)
    now = int(time.time())
    if forge == "alg_none":
        token = f"{b64({'alg': 'none', 'kid': key.kid, 'typ': 'JWT'})}.{b64(claims)}."
    elif forge == "alg_none_no_kid":
        token = f"{b64({'alg': 'none'})}.{b64(claims)}."
    elif forge == "hs512":
        token = jwt.encode({"alg": "HS512", "kid": key.kid}, claims, key, algorithms=["HS512"])
    elif forge == "rs256_with_our_kid":
        token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, RSAKey.generate_key(2048))
    elif forge == "foreign_kid":
        token = jwt.encode({"alg": "HS256", "kid": "0123456789abcdef"}, claims, key)
    elif forge == "no_kid":
        token = jwt.encode({"alg": "HS256"}, claims, key)
    elif forge == "missing_exp":
        token = jwt.encode({"alg": "HS256", "kid": key.kid}, {k: v for k, v in claims.items() if k != "exp"}, key)
    elif forge == "expired":
        past = AccessTokens(
            TEST_SECRET, issuer="crewcanvas", audience="crewcanvas-api", ttl_s=60, clock=lambda: now - 3600
        )
        token = past.issue(
            uuid.UUID(claims["sub"]), token_version=0, family_id=uuid.UUID(claims["sid"]), tenant_id=None
        )
    elif forge == "wrong_audience":
        token = jwt.encode({"alg": "HS256", "kid": key.kid}, claims | {"aud": "another-api"}, key)
    elif forge == "wrong_issuer":
        token = jwt.encode({"alg": "HS256", "kid": key.kid}, claims | {"iss": "someone-else"}, key)
    elif forge == "future_iat":
        token = jwt.encode({"alg": "HS256", "kid": key.kid}, claims | {"iat": now + 3600, "exp": now + 7200}, key)
    elif forge == "tampered_payload":
        header, _, signature = alice.access.split(".")
        token = f"{header}.{b64(claims | {'sub': str(uuid.uuid4())})}.{signature}"
    else:  # signed by an installation with another SECRET_KEY
        other = AccessTokens(
            "another-installation-secret-0123456789", issuer="crewcanvas", audience="crewcanvas-api", ttl_s=60
        )
        token = other.issue(
            uuid.UUID(claims["sub"]), token_version=0, family_id=uuid.UUID(claims["sid"]), tenant_id=None
        )
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, forge
    assert response.json()["error"] == "AuthenticationFailed"
    assert "sign in again" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"password": "canary-Pa55word-7f3a"},  # email missing
        {"email": ["not", "a", "string"], "password": "canary-Pa55word-7f3a"},
        {"email": "a@example.com", "password": {"nested": "canary-Pa55word-7f3a"}},
    ],
)
async def test_a_malformed_body_is_refused_without_echoing_what_was_sent(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 422
    assert "canary-Pa55word-7f3a" not in response.text
    answer = response.json()
    assert answer["error"] == "InvalidInput"
    assert isinstance(answer["detail"], str)
    assert answer["detail"].startswith("invalid request: ")
    assert answer["problems"]
    assert all({"field", "message"} == set(p) for p in answer["problems"])
    assert {p["field"] for p in answer["problems"]} <= {"email", "password"}
