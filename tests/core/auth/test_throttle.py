"""Login throttling stops guessing, but failing on purpose cannot lock the owner out (memory and Redis)."""

from __future__ import annotations

import pytest

from core.auth.throttle import AttemptLog, LoginThrottle
from core.errors import AuthenticationFailed, RateLimited
from tests.api.conftest import PASSWORD
from tests.core.auth.conftest import owner_of
from wiring.services import Services

OWNER = "owner@acme.example"


async def attempt(throttle: LoginThrottle, email: str, address: str, *, right: bool = False) -> str:
    """One sign-in attempt as `AccountService.authenticate` makes it: refused, failed or succeeded."""
    try:
        hits = await throttle.begin(email, address)
    except RateLimited:
        return "refused"
    if right:
        await throttle.succeeded(email, address, hits)
        return "ok"
    return "failed"


def policy(log: AttemptLog) -> LoginThrottle:
    return LoginThrottle(log, window_s=900, per_account=5, per_address=30, slowdown_after=20, slowed_per_minute=6)


async def test_failing_on_purpose_from_one_address_does_not_lock_the_owner_out(attempt_log: AttemptLog) -> None:
    throttle = policy(attempt_log)
    assert [await attempt(throttle, OWNER, "203.0.113.66") for _ in range(8)] == ["failed"] * 5 + ["refused"] * 3
    assert await attempt(throttle, OWNER, "198.51.100.7", right=True) == "ok"  # the owner, elsewhere
    assert await attempt(throttle, OWNER, "203.0.113.66") == "refused"  # the guesser still waits


async def test_guessing_from_many_addresses_is_slowed_but_known_addresses_pass(attempt_log: AttemptLog) -> None:
    throttle = policy(attempt_log)
    assert await attempt(throttle, OWNER, "198.51.100.7", right=True) == "ok"  # the owner's usual address
    botnet = [f"10.0.{n // 250}.{n % 250}" for n in range(60)]
    outcomes = [await attempt(throttle, OWNER, address) for address in botnet]
    # 20 guesses before the slow-down, then 6 a minute: the other 34 never reach the password check.
    assert outcomes.count("failed") == 20 + 6
    assert outcomes.count("refused") == 60 - 26
    assert outcomes[-1] == "refused"
    assert await attempt(throttle, OWNER, "198.51.100.7", right=True) == "ok"  # never slowed
    # The owner's success does not give the guessers a fresh allowance.
    assert await attempt(throttle, OWNER, "10.9.9.9") == "refused"


async def test_the_slow_down_tells_what_to_do(attempt_log: AttemptLog) -> None:
    throttle = LoginThrottle(
        attempt_log, window_s=900, per_account=5, per_address=30, slowdown_after=2, slowed_per_minute=1
    )
    for n in range(3):
        await attempt(throttle, OWNER, f"10.0.0.{n}")
    with pytest.raises(RateLimited, match="sign-ins from new addresses are slowed down") as refused:
        await throttle.begin(OWNER, "10.0.0.99")
    assert 1 <= refused.value.retry_after <= 60


async def test_the_owner_signs_in_from_another_address_after_a_lockout_attempt(services: Services) -> None:
    """End to end through the account service: the real password check, the configured policy."""
    await owner_of(services, "acme", OWNER)
    accounts = services.identity.accounts
    limit = services.settings.auth.login_max_failures_per_account
    for n in range(limit):
        with pytest.raises(AuthenticationFailed):
            await accounts.authenticate(OWNER, f"wrong guess {n}", address="203.0.113.66")
    with pytest.raises(RateLimited):
        await accounts.authenticate(OWNER, PASSWORD, address="203.0.113.66")
    user = await accounts.authenticate(OWNER, PASSWORD, address="198.51.100.7")
    assert user.email == OWNER
