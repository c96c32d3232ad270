"""Failover routing: the chain primary -> fallback -> ..., and cooldowns for providers that just failed.

A provider that failed (after its retries) cools down for `cooldown_s`: while it does,
calls go to the rest of its chain first, so a dead primary costs one timeout per
cooldown instead of one per call. A chain whose every provider is cooling is tried
anyway, in order: better a late answer than none.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Awaitable, Callable

from core.errors import InvalidInput
from core.llm.types import ResolvedProvider

MAX_CHAIN = 5


class Cooldowns:
    """When each (tenant, provider) may be tried first again."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._until: dict[tuple[str, uuid.UUID], float] = {}
        self._lock = threading.Lock()

    def cooling(self, tenant: str, provider_id: uuid.UUID) -> bool:
        with self._lock:
            until = self._until.get((tenant, provider_id))
            if until is None:
                return False
            if until <= self._clock():
                del self._until[(tenant, provider_id)]
                return False
            return True

    def failed(self, tenant: str, provider_id: uuid.UUID) -> None:
        with self._lock:
            self._until[(tenant, provider_id)] = self._clock() + self.cooldown_s

    def succeeded(self, tenant: str, provider_id: uuid.UUID) -> None:
        with self._lock:
            self._until.pop((tenant, provider_id), None)


async def provider_chain(
    first: uuid.UUID, resolve: Callable[[uuid.UUID], Awaitable[ResolvedProvider]]
) -> list[ResolvedProvider]:
    """`first` and its fallbacks in order, without repeats, at most `MAX_CHAIN` long."""
    chain: list[ResolvedProvider] = []
    seen: set[uuid.UUID] = set()
    current: uuid.UUID | None = first
    while current is not None and current not in seen and len(chain) < MAX_CHAIN:
        seen.add(current)
        provider = await resolve(current)
        chain.append(provider)
        current = provider.fallback_id
    if not any(p.enabled for p in chain):
        raise InvalidInput(
            f"provider {chain[0].name!r} is disabled and has no enabled fallback; enable it or choose another"
        )
    return [p for p in chain if p.enabled]


def failover_order(tenant: str, chain: list[ResolvedProvider], cooldowns: Cooldowns) -> list[ResolvedProvider]:
    """The chain with cooling providers moved to the end (order kept otherwise)."""
    ready = [p for p in chain if not cooldowns.cooling(tenant, p.id)]
    return ready + [p for p in chain if p not in ready]
