"""Password hashing with Argon2id (pwdlib), off the event loop."""

from __future__ import annotations

import asyncio

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from core.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 256


def check_password_policy(password: str) -> None:
    """Raise `InvalidInput` unless the password is long enough (and not absurdly long)."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password is too short: use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password is too long: use at most {MAX_LENGTH} characters")


class Passwords:
    """Hashes and verifies passwords; unknown accounts cost the same as known ones."""

    def __init__(self, *, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism),)
        )
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        """Check the policy, then hash (in a worker thread: Argon2 is deliberately slow)."""
        check_password_policy(password)
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """`(ok, new_hash)`: `new_hash` is set when the stored hash used weaker parameters.

        With no stored hash (unknown account, or an account without a password) a dummy
        hash is verified anyway, so the answer takes as long as for a real account.
        """
        if len(password) > MAX_LENGTH:
            return False, None
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(self._hasher.hash, "dummy password for timing")
            await asyncio.to_thread(self._hasher.verify, password, self._dummy_hash)
            return False, None
        try:
            return await asyncio.to_thread(self._hasher.verify_and_update, password, stored_hash)
        except UnknownHashError:
            return False, None
