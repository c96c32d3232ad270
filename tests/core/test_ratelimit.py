"""Sliding-window limits on both backends: in-process and Redis (atomic Lua)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.errors import RateLimited
from core.ratelimit import Limit, MemoryRateLimiter, RateLimiter, RedisRateLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"
WINDOW_S = 0.4


async def delete_keys(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """A limiter with a short window on each backend; Redis keys get a unique prefix, removed after."""
    if request.param == "memory":
        yield MemoryRateLimiter(window_s=WINDOW_S)
        return
    prefix = f"test:rl:{uuid.uuid4().hex}:"
    client = Redis.from_url(REDIS_URL)
    redis_limiter = RedisRateLimiter(client, prefix=prefix, window_s=WINDOW_S)
    try:
        yield redis_limiter
    finally:
        await redis_limiter.close()
        await delete_keys(client, prefix)  # the limiter left its client open: it belongs to us
        await client.aclose()


async def test_requests_beyond_the_rpm_are_refused_with_retry_after(limiter: RateLimiter) -> None:
    limit = Limit("acme:tenant", "tenant 'acme'", rpm=3)
    for _ in range(3):
        await limiter.acquire([limit])
    with pytest.raises(RateLimited, match="tenant 'acme': requests per minute limit reached") as refused:
        await limiter.acquire([limit])
    assert 0 < refused.value.retry_after <= WINDOW_S


async def test_the_window_slides(limiter: RateLimiter) -> None:
    limit = Limit("acme:tenant", "tenant 'acme'", rpm=2)
    await limiter.acquire([limit])
    await limiter.acquire([limit])
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire([limit])
    await asyncio.sleep(refused.value.retry_after + 0.05)
    await limiter.acquire([limit])  # the oldest request has left the window


async def test_tokens_beyond_the_tpm_are_refused(limiter: RateLimiter) -> None:
    limit = Limit("acme:p1", "provider 'main'", tpm=100)
    await limiter.acquire([limit], tokens=10)
    await limiter.add_tokens([limit], 95)
    with pytest.raises(RateLimited, match="provider 'main': tokens per minute"):
        await limiter.acquire([limit], tokens=10)
    await limiter.acquire([limit], tokens=5)  # still fits: 95 + 5 <= 100


async def test_a_refusal_books_nothing_on_the_other_limits(limiter: RateLimiter) -> None:
    tenant = Limit("acme:tenant", "tenant 'acme'", rpm=5)
    provider = Limit("acme:p1", "provider 'main'", rpm=1)
    await limiter.acquire([tenant, provider])
    for _ in range(3):
        with pytest.raises(RateLimited, match="provider 'main'"):
            await limiter.acquire([tenant, provider])
    for _ in range(4):  # the tenant still has 4 of its 5 requests
        await limiter.acquire([tenant])
    with pytest.raises(RateLimited, match="tenant 'acme'"):
        await limiter.acquire([tenant])


async def test_tenants_have_separate_budgets(limiter: RateLimiter) -> None:
    await limiter.acquire([Limit("alpha:tenant", "tenant 'alpha'", rpm=1)])
    await limiter.acquire([Limit("beta:tenant", "tenant 'beta'", rpm=1)])
    with pytest.raises(RateLimited, match="alpha"):
        await limiter.acquire([Limit("alpha:tenant", "tenant 'alpha'", rpm=1)])


async def test_redis_limiters_in_two_processes_share_one_budget() -> None:
    prefix = f"test:rl:{uuid.uuid4().hex}:"
    clients = [Redis.from_url(REDIS_URL) for _ in range(2)]
    first, second = (RedisRateLimiter(client, prefix=prefix, window_s=5) for client in clients)
    limit = Limit("acme:tenant", "tenant 'acme'", rpm=10)
    try:
        results = await asyncio.gather(
            *(limiter.acquire([limit]) for limiter in [first, second] * 10), return_exceptions=True
        )
        assert sum(r is None for r in results) == 10
        assert all(isinstance(r, RateLimited) for r in results if r is not None)
    finally:
        await delete_keys(clients[0], prefix)
        for client in clients:
            await client.aclose()


async def test_closing_a_redis_limiter_leaves_the_shared_client_open() -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        await RedisRateLimiter(client, prefix=f"test:rl:{uuid.uuid4().hex}:").close()
        assert await client.ping()
    finally:
        await client.aclose()
