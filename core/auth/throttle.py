"""Failed-login throttling: per account and address, per address, and a slow-down per account.

`AttemptLog` is the small storage protocol (a sliding window of failure timestamps
per key); `MemoryAttemptLog` keeps it in-process, `RedisAttemptLog` in sorted sets
so every app process sees the same counts. `LoginThrottle` applies the policy and
is consulted *before* any password is hashed, so a flood of guesses costs nothing.

An attempt is counted as a failure when it starts (and forgiven if the password is
right), not when it fails: otherwise guesses sent all at once would each pass the
check before the first failure was recorded.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

from core.errors import BackendUnavailable, RateLimited


class AttemptLog(Protocol):
    """Timestamps of recent failures, per key, inside a sliding window."""

    async def add(self, key: str, window_s: float) -> tuple[str, int]:
        """Record one failure for `key` now: its id, and how many the window holds with it."""

    async def discard(self, key: str, hit: str) -> None:
        """Forget one recorded failure (by the id `add` returned), if it is still there."""

    async def recent(self, key: str, window_s: float) -> tuple[int, float]:
        """`(count, seconds until the oldest failure leaves the window)` for `key`."""

    async def clear(self, key: str) -> None:
        """Forget every failure of `key`."""

    async def close(self) -> None:
        """Release connections, if any."""


class MemoryAttemptLog:
    """In-process attempt log: a deque of timestamps per key (one process only)."""

    MAX_KEYS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[tuple[float, str]]] = {}
        self._ids = itertools.count()

    def _pruned(self, key: str, window_s: float) -> deque[tuple[float, str]] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        horizon = self._clock() - window_s
        while hits and hits[0][0] <= horizon:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    async def add(self, key: str, window_s: float) -> tuple[str, int]:
        hits = self._pruned(key, window_s)
        if hits is None:
            if len(self._hits) >= self.MAX_KEYS:  # forget the stalest keys rather than grow without bound
                for stale in sorted(self._hits, key=lambda k: self._hits[k][-1][0])[: self.MAX_KEYS // 10]:
                    del self._hits[stale]
            hits = self._hits[key] = deque()
        hit = str(next(self._ids))
        hits.append((self._clock(), hit))
        return hit, len(hits)

    async def discard(self, key: str, hit: str) -> None:
        hits = self._hits.get(key)
        if hits is None:
            return
        for entry in hits:
            if entry[1] == hit:
                hits.remove(entry)
                break
        if not hits:
            del self._hits[key]

    async def recent(self, key: str, window_s: float) -> tuple[int, float]:
        hits = self._pruned(key, window_s)
        if hits is None:
            return 0, 0.0
        return len(hits), max(0.0, hits[0][0] + window_s - self._clock())

    async def clear(self, key: str) -> None:
        self._hits.pop(key, None)

    async def close(self) -> None:
        self._hits.clear()


class RedisAttemptLog:
    """Attempt log in Redis sorted sets (score = time), shared by every app process."""

    def __init__(self, client: Any, prefix: str = "crewcanvas:attempts:") -> None:
        self._redis = client
        self._prefix = prefix

    async def add(self, key: str, window_s: float) -> tuple[str, int]:
        now = time.time()
        name = self._prefix + key
        hit = f"{now:.6f}:{uuid.uuid4().hex}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(name, 0, now - window_s)
                pipe.zadd(name, {hit: now})
                pipe.expire(name, max(1, int(window_s) + 1))
                pipe.zcard(name)
                *_, count = await pipe.execute()
        except (OSError, RedisError) as exc:
            raise BackendUnavailable(f"Redis is unreachable for login throttling: {exc}; check REDIS_URL") from exc
        return hit, int(count)

    async def discard(self, key: str, hit: str) -> None:
        try:
            await self._redis.zrem(self._prefix + key, hit)
        except (OSError, RedisError) as exc:
            raise BackendUnavailable(f"Redis is unreachable for login throttling: {exc}; check REDIS_URL") from exc

    async def recent(self, key: str, window_s: float) -> tuple[int, float]:
        now = time.time()
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(name, 0, now - window_s)
                pipe.zcard(name)
                pipe.zrange(name, 0, 0, withscores=True)
                _, count, oldest = await pipe.execute()
        except (OSError, RedisError) as exc:
            raise BackendUnavailable(f"Redis is unreachable for login throttling: {exc}; check REDIS_URL") from exc
        if not count:
            return 0, 0.0
        return int(count), max(0.0, float(oldest[0][1]) + window_s - now)

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except (OSError, RedisError) as exc:
            raise BackendUnavailable(f"Redis is unreachable for login throttling: {exc}; check REDIS_URL") from exc

    async def close(self) -> None:
        """Nothing to release: the Redis client belongs to whoever made it (see `wiring.backends`)."""


class LoginThrottle:
    """Refuses guessing without letting anyone lock a person out of their own account.

    Policy (each count is a sliding window of `window_s`):

    - per account *and* address: `per_account` failures, then that address is refused for
      that account until the window passes; other addresses are not affected, so an
      attacker cannot lock the real owner out by failing on purpose;
    - per address: `per_address` failures across all accounts (credential stuffing);
    - per account, from every address together: after `slowdown_after` failures, attempts
      from addresses that never signed in to the account are slowed to `slowed_per_minute`
      (a distributed guesser gets a trickle). Addresses that signed in to the account
      successfully in the last `known_for_s` seconds are never slowed.
    """

    def __init__(
        self,
        log: AttemptLog,
        *,
        window_s: float,
        per_account: int,
        per_address: int,
        slowdown_after: int = 20,
        slowed_per_minute: int = 6,
        known_for_s: float = 30 * 24 * 3600,
    ) -> None:
        self.log = log
        self._window_s = window_s
        self._limits = {"pair": per_account, "address": per_address}
        self._slowdown_after = slowdown_after
        self._slowed_per_minute = slowed_per_minute
        self._known_for_s = known_for_s

    @staticmethod
    def _account(email: str) -> str:
        # Account keys are digests: the store never holds email addresses.
        return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]

    @classmethod
    def _keys(cls, email: str, address: str | None) -> dict[str, str]:
        account, where = cls._account(email), address or "-"
        keys = {"pair": f"login:pair:{account}:{where}", "account": f"login:account:{account}"}
        if address:
            keys["address"] = "login:address:" + address
        return keys

    @classmethod
    def _known_key(cls, email: str, address: str | None) -> str:
        return f"login:known:{cls._account(email)}:{address or '-'}"

    async def check(self, email: str, address: str | None) -> None:
        """Raise `RateLimited` if this address has used up its failures (for the account, or at all)."""
        for kind, key in self._keys(email, address).items():
            if kind in self._limits:
                count, wait = await self.log.recent(key, self._window_s)
                if count >= self._limits[kind]:
                    raise self._refusal(kind, wait)

    async def begin(self, email: str, address: str | None) -> dict[str, str]:
        """Count this attempt as a failure now (`RateLimited` if that is one too many).

        Returns the recorded hits, which `succeeded` forgives; a failed attempt needs no
        further call. Counting up front is what stops guesses sent at the same moment.
        """
        await self.check(email, address)
        keys = self._keys(email, address)
        slowed: tuple[str, str] | None = None
        if await self._under_attack(keys["account"]) and not await self._known(email, address):
            slowed = await self._take_slowed_turn(keys["account"])
        hits: dict[str, str] = dict([slowed]) if slowed else {}
        over: str | None = None
        for kind, key in keys.items():
            hits[key], count = await self.log.add(key, self._window_s)
            if count > self._limits.get(kind, count):
                over = kind
        if over is not None:  # refused attempts are not counted
            for key, hit in hits.items():
                await self.log.discard(key, hit)
            _, wait = await self.log.recent(keys[over], self._window_s)
            raise self._refusal(over, wait)
        return hits

    async def _under_attack(self, account_key: str) -> bool:
        count, _ = await self.log.recent(account_key, self._window_s)
        return count >= self._slowdown_after

    async def _known(self, email: str, address: str | None) -> bool:
        count, _ = await self.log.recent(self._known_key(email, address), self._known_for_s)
        return count > 0

    async def _take_slowed_turn(self, account_key: str) -> tuple[str, str]:
        """One of the few attempts per minute an account under attack takes from unknown addresses."""
        key = account_key.replace("login:account:", "login:slowed:", 1)
        hit, count = await self.log.add(key, 60)
        if count > self._slowed_per_minute:
            await self.log.discard(key, hit)
            _, wait = await self.log.recent(key, 60)
            raise RateLimited(
                "this account has had many failed sign-ins from many addresses, so sign-ins from new addresses "
                f"are slowed down; try again in {max(1, round(wait))} seconds (addresses you signed in from "
                "before are not slowed)",
                retry_after=max(1.0, wait),
            )
        return key, hit

    async def succeeded(self, email: str, address: str | None, hits: dict[str, str]) -> None:
        """A correct password: this address may guess again and is known to the account from now on.

        The account's failures from elsewhere stay counted: one success of the owner must not
        give a distributed guesser a fresh allowance.
        """
        keys = self._keys(email, address)
        await self.log.clear(keys["pair"])
        for key, hit in hits.items():
            if key != keys["pair"]:
                await self.log.discard(key, hit)
        await self.log.clear(self._known_key(email, address))
        await self.log.add(self._known_key(email, address), self._known_for_s)

    @staticmethod
    def _refusal(kind: str, wait: float) -> RateLimited:
        subject = "this account from your address" if kind == "pair" else "your address"
        return RateLimited(
            f"too many failed sign-ins for {subject}; try again in {max(1, round(wait))} seconds",
            retry_after=max(1.0, wait),
        )
