"""Build the LLM side of the service container from settings: keys, providers, usage, limits, service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.crypto import CredentialVault, KeyRing, RotationReport, rotate_keys
from core.llm.local import LocalModelTransport
from core.llm.service import LLMPolicy, LLMService
from core.llm.ssrf import EndpointGuard
from core.llm.types import ProviderKind
from core.providers import ProviderService
from core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from core.settings import AppSettings
from core.usage import DatabaseUsageStore, MongoUsageStore, UsageStore
from db.database import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass
class LLMStack:
    """Providers and LLM calls, with the backends they run on."""

    db: Database
    keyring: KeyRing
    providers: ProviderService
    usage: UsageStore
    limiter: RateLimiter
    llm: LLMService
    own_redis: Redis | None = None  # a client `build_llm` created itself (none given); closed here

    async def start(self) -> None:
        await self.usage.start()

    async def close(self) -> None:
        """Release what this stack owns; a Redis client it was given is left to its owner."""
        await self.llm.aclose()
        await self.limiter.close()
        await self.usage.close()
        if self.own_redis is not None:
            await self.own_redis.aclose()

    async def rotate_keys(self) -> RotationReport:
        """Re-wrap every tenant's data key under the newest master key (resumable)."""
        return await rotate_keys(self.db, self.keyring)


def build_llm(settings: AppSettings, db: Database, redis: Redis | None = None) -> LLMStack:
    """Choose usage and rate-limit backends from settings; nothing connects until used.

    With `REDIS_URL` set, rate limits run on `redis`, a client shared with the rest of the
    app and closed by the caller; without one, a client of its own is made and closed by
    `LLMStack.close`.
    """
    keyring = KeyRing(settings.security.master_keys.get_secret_value())
    guard = EndpointGuard(
        allow_private=settings.allow_private_llm_endpoints,
        allowed_hosts=settings.llm.allowed_private_hosts.split(","),
    )
    providers = ProviderService(db, CredentialVault(db, keyring), guard)
    usage: UsageStore = (
        MongoUsageStore(settings.mongo.url, settings.mongo.database) if settings.mongo.url else DatabaseUsageStore(db)
    )
    own_redis: Redis | None = None
    limiter: RateLimiter
    if settings.redis.url:
        if redis is None:
            from redis.asyncio import Redis

            redis = own_redis = Redis.from_url(settings.redis.url)
        limiter = RedisRateLimiter(redis)
    else:
        limiter = MemoryRateLimiter()
    llm_settings = settings.llm
    policy = LLMPolicy(
        timeout_s=llm_settings.request_timeout_s,
        max_retries=llm_settings.max_retries,
        cooldown_s=llm_settings.failover_cooldown_s,
        tenant_rpm=llm_settings.tenant_rpm,
        tenant_tpm=llm_settings.tenant_tpm,
    )
    local = LocalModelTransport(threads=llm_settings.local_threads, context=llm_settings.local_context)
    llm = LLMService(providers, usage, limiter, guard, policy=policy, transports={ProviderKind.LOCAL: local})
    return LLMStack(db, keyring, providers, usage, limiter, llm, own_redis=own_redis)
