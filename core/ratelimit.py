"""Sliding-window rate limits: requests and tokens per minute, per tenant and per provider.

`RateLimiter` is the protocol. `MemoryRateLimiter` keeps the windows in this process
(the embedded default); `RedisRateLimiter` keeps them in Redis sorted sets and checks
and records in one atomic Lua script, so several app processes share one budget.

A call first `acquire`s: every limit must have room for one more request and for the
estimated tokens, or nothing is recorded and `RateLimited` says when to retry. When
the call has finished, `add_tokens` books the tokens it really used.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One budget: `rpm` requests and `tpm` tokens per window (0 = unlimited)."""

    key: str
    label: str
    rpm: int = 0
    tpm: int = 0


class RateLimiter(Protocol):
    """Checks and books requests and tokens against sliding windows."""

    async def acquire(self, limits: Sequence[Limit], tokens: int = 0) -> None:
        """Book one request on every limit, or raise `RateLimited` and book nothing."""

    async def add_tokens(self, limits: Sequence[Limit], tokens: int) -> None:
        """Book tokens a finished call used."""

    async def close(self) -> None: ...


def _refusal(label: str, what: str, retry_after: float) -> RateLimited:
    wait = max(retry_after, 0.001)
    return RateLimited(f"{label}: {what} per minute limit reached; retry in {wait:.1f} s", retry_after=wait)


class MemoryRateLimiter:
    """Sliding windows in this process's memory."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> tuple[deque[float], deque[tuple[float, int]]]:
        requests = self._requests.setdefault(key, deque())
        tokens = self._tokens.setdefault(key, deque())
        horizon = now - self._window
        while requests and requests[0] <= horizon:
            requests.popleft()
        while tokens and tokens[0][0] <= horizon:
            tokens.popleft()
        return requests, tokens

    async def acquire(self, limits: Sequence[Limit], tokens: int = 0) -> None:
        with self._lock:
            now = self._clock()
            for limit in limits:
                requests, booked = self._trim(limit.key, now)
                if limit.rpm and len(requests) >= limit.rpm:
                    oldest = requests[len(requests) - limit.rpm]
                    raise _refusal(limit.label, "requests", oldest + self._window - now)
                if limit.tpm:
                    need = min(tokens, limit.tpm)
                    used = sum(n for _, n in booked)
                    if used + need > limit.tpm:
                        for ts, n in booked:
                            used -= n
                            if used + need <= limit.tpm:
                                raise _refusal(limit.label, "tokens", ts + self._window - now)
            for limit in limits:
                self._requests[limit.key].append(now)

    async def add_tokens(self, limits: Sequence[Limit], tokens: int) -> None:
        if tokens <= 0:
            return
        with self._lock:
            now = self._clock()
            for limit in limits:
                self._trim(limit.key, now)[1].append((now, tokens))

    async def close(self) -> None:
        """Nothing to release."""


# KEYS: per limit, its request set then its token set. ARGV: window ms, member id,
# estimated tokens, then per limit rpm and tpm. Returns 0, or {1, kind index, wait ms}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local member = ARGV[2]
local estimate = tonumber(ARGV[3])
local n = #KEYS / 2
for i = 1, n do
  local rkey, tkey = KEYS[2 * i - 1], KEYS[2 * i]
  local rpm, tpm = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', tkey, '-inf', now - window)
  if rpm > 0 then
    local count = redis.call('ZCARD', rkey)
    if count >= rpm then
      local oldest = redis.call('ZRANGE', rkey, count - rpm, count - rpm, 'WITHSCORES')
      return {i, 1, tonumber(oldest[2]) + window - now}
    end
  end
  if tpm > 0 then
    local need = math.min(estimate, tpm)
    local entries = redis.call('ZRANGE', tkey, 0, -1, 'WITHSCORES')
    local used = 0
    for j = 1, #entries, 2 do
      used = used + tonumber(string.match(entries[j], ':(%d+)$'))
    end
    if used + need > tpm then
      for j = 1, #entries, 2 do
        used = used - tonumber(string.match(entries[j], ':(%d+)$'))
        if used + need <= tpm then
          return {i, 2, tonumber(entries[j + 1]) + window - now}
        end
      end
    end
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[2 * i - 1], now, member)
  redis.call('PEXPIRE', KEYS[2 * i - 1], window)
end
return 0
"""

_ADD_TOKENS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1]))
end
return 0
"""


class RedisRateLimiter:
    """Sliding windows in Redis sorted sets, checked and booked atomically by Lua.

    Runs on a shared `client` that belongs to the caller: `close` leaves it open.
    """

    def __init__(self, client: Redis, *, prefix: str = "crewcanvas:rl:", window_s: float = WINDOW_S) -> None:
        self._redis = client
        self._prefix = prefix
        self._window_ms = int(window_s * 1000)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._add = self._redis.register_script(_ADD_TOKENS)

    async def acquire(self, limits: Sequence[Limit], tokens: int = 0) -> None:
        active = [limit for limit in limits if limit.rpm or limit.tpm]
        if not active:
            return
        keys: list[str] = []
        args: list[Any] = [self._window_ms, uuid.uuid4().hex, max(tokens, 0)]
        for limit in active:
            keys += [f"{self._prefix}{limit.key}:req", f"{self._prefix}{limit.key}:tok"]
            args += [limit.rpm, limit.tpm]
        result = await self._acquire(keys=keys, args=args)
        if result == 0:
            return
        index, kind, wait_ms = (int(x) for x in result)
        raise _refusal(active[index - 1].label, "requests" if kind == 1 else "tokens", wait_ms / 1000)

    async def add_tokens(self, limits: Sequence[Limit], tokens: int) -> None:
        keys = [f"{self._prefix}{limit.key}:tok" for limit in limits if limit.tpm]
        if tokens <= 0 or not keys:
            return
        await self._add(keys=keys, args=[self._window_ms, f"{uuid.uuid4().hex}:{int(tokens)}"])

    async def close(self) -> None:
        """Nothing to release: the client is closed by its owner."""
