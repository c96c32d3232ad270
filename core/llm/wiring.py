"""Build the LLM side of the services from settings: keys, providers and the LLM service.

The backends it runs on (usage store, rate limiter) are chosen and owned by
`wiring.backends`; `LLMStack.aclose` releases only what it made itself (the transports).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.crypto import CredentialVault, KeyRing, RotationReport, rotate_keys
from core.llm.local import LocalModelTransport
from core.llm.service import LLMPolicy, LLMService
from core.llm.ssrf import EndpointGuard
from core.llm.types import ProviderKind
from core.providers import ProviderService
from core.ratelimit import RateLimiter
from core.settings import AppSettings
from core.usage import UsageStore
from db.database import Database


@dataclass
class LLMStack:
    """Providers and LLM calls, on the backends they were given."""

    db: Database
    keyring: KeyRing
    providers: ProviderService
    usage: UsageStore
    limiter: RateLimiter
    llm: LLMService

    async def start(self) -> None:
        """Nothing to start: the backends are started by their owner."""

    async def aclose(self) -> None:
        """Free the local model and close the connections to remote providers."""
        await self.llm.aclose()

    async def rotate_keys(self) -> RotationReport:
        """Re-wrap every tenant's data key under the newest master key (resumable)."""
        return await rotate_keys(self.db, self.keyring)


def build_llm(settings: AppSettings, db: Database, *, usage: UsageStore, limiter: RateLimiter) -> LLMStack:
    """Wire providers and the LLM service on `usage` and `limiter`; nothing connects until used."""
    keyring = KeyRing(settings.security.master_keys.get_secret_value())
    guard = EndpointGuard(
        allow_private=settings.allow_private_llm_endpoints,
        allowed_hosts=settings.llm.allowed_private_hosts.split(","),
    )
    providers = ProviderService(db, CredentialVault(db, keyring), guard)
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
    return LLMStack(db, keyring, providers, usage, limiter, llm)
