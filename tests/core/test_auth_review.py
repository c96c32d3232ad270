"""Adversarial review of core identity pieces: the login throttle on both backends, odd tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from core.auth.throttle import AttemptLog, LoginThrottle
from core.auth.tokens import AccessTokens
from core.errors import AuthenticationFailed, RateLimited


async def guess(throttle: LoginThrottle, email: str, address: str) -> str:
    """One wrong-password attempt as `AccountService.authenticate` makes it (a slow hash in between)."""
    try:
        await throttle.begin(email, address)
    except RateLimited:
        return "refused"
    await asyncio.sleep(0.05)  # Argon2 runs here, off the event loop
    return "checked"


async def test_guesses_sent_at_once_reach_the_hash_at_most_limit_times(attempt_log: AttemptLog) -> None:
    throttle = LoginThrottle(attempt_log, window_s=60, per_account=5, per_address=100)
    outcomes = await asyncio.gather(*(guess(throttle, "alice@example.com", "203.0.113.9") for _ in range(40)))
    assert outcomes.count("checked") == 5
    count, _ = await attempt_log.recent(LoginThrottle._keys("alice@example.com", None)["account"], 60)
    assert count == 5  # refused attempts are not counted


async def test_the_address_limit_holds_across_accounts_at_once(attempt_log: AttemptLog) -> None:
    throttle = LoginThrottle(attempt_log, window_s=60, per_account=5, per_address=7)
    outcomes = await asyncio.gather(*(guess(throttle, f"user{n}@example.com", "203.0.113.9") for n in range(30)))
    assert outcomes.count("checked") == 7


async def test_a_correct_password_is_forgiven_at_the_address(attempt_log: AttemptLog) -> None:
    """Colleagues behind one NAT signing in successfully never use up the address's allowance."""
    throttle = LoginThrottle(attempt_log, window_s=60, per_account=5, per_address=3)
    for n in range(10):
        hits = await throttle.begin(f"user{n}@example.com", "198.51.100.1")
        await throttle.succeeded(f"user{n}@example.com", "198.51.100.1", hits)
    count, _ = await attempt_log.recent("login:address:198.51.100.1", 60)
    assert count == 0
    await throttle.begin("someone@example.com", "198.51.100.1")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    [b"[" * 5000 + b"]" * 5000, b'{"alg":"HS256","x":' + b"{" * 5000, b'{"alg": NaN}', b"null", b"\x00"],
)
def test_a_pathological_header_is_refused_as_a_token_problem(header: bytes) -> None:
    tokens = AccessTokens("k" * 40, issuer="crewcanvas", audience="crewcanvas-api", ttl_s=60)
    with pytest.raises(AuthenticationFailed, match="access token refused"):
        tokens.verify(f"{_b64(header)}.{_b64(json.dumps({}).encode())}.{_b64(b'sig')}")


def test_the_key_id_header_cannot_pick_another_key() -> None:
    """`kid`, `jku`, `x5u` and `jwk` in a header never choose the verification key."""
    tokens = AccessTokens("k" * 40, issuer="crewcanvas", audience="crewcanvas-api", ttl_s=60)
    good = tokens.issue(uuid.uuid4(), token_version=0, family_id=uuid.uuid4(), tenant_id=None)
    _, payload, signature = good.split(".")
    for extra in (
        {"kid": "../../etc/passwd"},
        {"kid": tokens.key_id, "jku": "http://127.0.0.1:1/jwks"},
        {"kid": tokens.key_id, "jwk": {"kty": "oct", "k": _b64(b"attacker")}},
        {"kid": tokens.key_id, "crit": ["exp"]},
    ):
        header = _b64(json.dumps({"alg": "HS256"} | extra).encode())
        with pytest.raises(AuthenticationFailed):
            tokens.verify(f"{header}.{payload}.{signature}")
    attacker = OctKey.import_key(b"attacker-chosen-key-0123456789ab")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    embedded = {"alg": "HS256", "kid": tokens.key_id, "jwk": attacker.as_dict(private=False)}
    with pytest.raises(AuthenticationFailed, match="bad signature"):
        tokens.verify(jwt.encode(embedded, claims, attacker, algorithms=["HS256"]))
