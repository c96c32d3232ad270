"""Fixtures of the core tests: the login throttle's attempt log on each backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.auth.throttle import AttemptLog, MemoryAttemptLog, RedisAttemptLog

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def attempt_log(request: pytest.FixtureRequest) -> AsyncIterator[AttemptLog]:
    """An empty attempt log in process memory, and one in the real Redis (its keys removed afterwards)."""
    if request.param == "memory":
        yield MemoryAttemptLog()
        return
    prefix = f"test:attempts:{uuid.uuid4().hex}:"
    client = Redis.from_url(REDIS_URL)
    log = RedisAttemptLog(client, prefix=prefix)
    try:
        yield log
    finally:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await log.close()
        await client.aclose()
