"""`LLMService`: every LLM call of the platform (flows, crews, the provider test) goes through here.

Per call: validate the request, check the tenant's and the provider's rate limits,
check the endpoint against the SSRF guard, call the provider through its transport
with a timeout and retries (backoff on 429/5xx/timeouts), fail over along the
provider's fallback chain (cooling down a provider that failed), book the tokens and
write one usage record. Errors name the provider and never carry a secret.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from typing import Protocol, TypeVar

from core.context import Role, TenantContext
from core.errors import RateLimited
from core.llm.local import LocalModelTransport
from core.llm.openai_http import OpenAIHTTPTransport
from core.llm.routing import Cooldowns, failover_order, provider_chain
from core.llm.ssrf import EndpointGuard
from core.llm.transports import LiteLLMTransport, Transport
from core.llm.types import (
    AllProvidersFailed,
    CallMeta,
    ChatRequest,
    LLMResult,
    ProviderCallFailed,
    ProviderKind,
    ResolvedProvider,
    StreamChunk,
    scrub,
)
from core.ratelimit import Limit, RateLimiter
from core.usage import UsageEntry, UsageStore, UsageTotals

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ProviderResolver(Protocol):
    """Looks up a tenant's provider records, credentials decrypted (see `core.providers`)."""

    async def resolve(self, ctx: TenantContext, provider_id: uuid.UUID) -> ResolvedProvider: ...

    async def default_provider_id(self, ctx: TenantContext) -> uuid.UUID: ...


@dataclass(frozen=True, slots=True)
class LLMPolicy:
    """Timeouts, retries, cooldown and tenant-wide limits (from `LLMSettings`)."""

    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    cooldown_s: float = 30.0
    tenant_rpm: int = 0
    tenant_tpm: int = 0


@dataclass(frozen=True, slots=True)
class ProviderTestResult:
    """The outcome of a 1-token test request."""

    ok: bool
    latency_ms: float
    model: str
    message: str


class LLMService:
    """Completion and streaming with limits, retries, failover, usage and the SSRF guard."""

    def __init__(
        self,
        providers: ProviderResolver,
        usage: UsageStore,
        limiter: RateLimiter,
        guard: EndpointGuard,
        *,
        policy: LLMPolicy,
        transports: dict[ProviderKind, Transport] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._providers = providers
        self._usage = usage
        self._limiter = limiter
        self._guard = guard
        self.policy = policy
        self._remote = LiteLLMTransport()
        self._openai = OpenAIHTTPTransport()  # the OpenAI wire protocol without LiteLLM's milliseconds per call
        self._transports: dict[ProviderKind, Transport] = dict.fromkeys(ProviderKind, self._remote)
        self._transports[ProviderKind.OPENAI] = self._transports[ProviderKind.OPENAI_COMPATIBLE] = self._openai
        self._transports[ProviderKind.LOCAL] = LocalModelTransport()
        self._transports.update(transports or {})
        self.cooldowns = Cooldowns(policy.cooldown_s, clock)
        self._clock = clock
        self._sleep = sleep

    # -- public --------------------------------------------------------------------------

    async def complete(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> LLMResult:
        """One chat completion, failing over along the provider's fallback chain."""
        chain, tenant_limit = await self._prepare(ctx, request, provider_id, meta or CallMeta())
        failures: list[ProviderCallFailed] = []
        refusals: list[RateLimited] = []
        started = self._clock()
        for index, provider in enumerate(chain):
            model = provider.model_for(request.model, strict=index == 0 and provider.id == chain[0].id)
            limits = self._provider_limits(ctx, provider)
            try:
                await self._limiter.acquire(limits, request.estimated_prompt_tokens())
            except RateLimited as exc:
                refusals.append(exc)
                continue
            if provider.base_url:
                await self._guard.check(provider.base_url)
            try:
                result = await self._with_retries(
                    partial(self._transport(provider).complete, provider, model, request, self._timeout(request))
                )
            except ProviderCallFailed as exc:
                failures.append(exc)
                self._note_failure(ctx, provider, exc)
                continue
            self.cooldowns.succeeded(ctx.tenant_slug, provider.id)
            result = self._stamp(result, provider, started)
            await self._book(ctx, [tenant_limit, *limits], result, meta, failures)
            return result
        raise await self._give_up(ctx, chain[0], request, meta, failures, refusals)

    async def stream(
        self,
        ctx: TenantContext,
        request: ChatRequest,
        *,
        provider_id: uuid.UUID | None = None,
        meta: CallMeta | None = None,
    ) -> AsyncIterator[StreamChunk]:
        """Stream one completion; fails over only until the first chunk has arrived."""
        chain, tenant_limit = await self._prepare(ctx, request, provider_id, meta or CallMeta())
        failures: list[ProviderCallFailed] = []
        refusals: list[RateLimited] = []
        started = self._clock()
        for index, provider in enumerate(chain):
            model = provider.model_for(request.model, strict=index == 0 and provider.id == chain[0].id)
            limits = self._provider_limits(ctx, provider)
            try:
                await self._limiter.acquire(limits, request.estimated_prompt_tokens())
            except RateLimited as exc:
                refusals.append(exc)
                continue
            if provider.base_url:
                await self._guard.check(provider.base_url)
            try:
                iterator, first = await self._with_retries(partial(self._open_stream, provider, model, request))
            except ProviderCallFailed as exc:
                failures.append(exc)
                self._note_failure(ctx, provider, exc)
                continue
            self.cooldowns.succeeded(ctx.tenant_slug, provider.id)
            chunk: StreamChunk | None = first
            try:
                while chunk is not None:
                    if chunk.result is not None:
                        result = self._stamp(chunk.result, provider, started)
                        await self._book(ctx, [tenant_limit, *limits], result, meta, failures)
                        yield StreamChunk(result=result)
                        return
                    yield chunk
                    chunk = await anext(iterator, None)
            except ProviderCallFailed as exc:  # after the first chunk there is no failing over
                await self._record_failure(ctx, provider, model, meta, [*failures, exc], started)
                raise AllProvidersFailed([*failures, exc]) from None
            return
        raise await self._give_up(ctx, chain[0], request, meta, failures, refusals)

    def close(self) -> None:
        """Free the local model, if it was loaded."""
        local = self._transports.get(ProviderKind.LOCAL)
        if isinstance(local, LocalModelTransport):
            local.close()

    async def aclose(self) -> None:
        """Free the local model and close the connections to remote providers."""
        self.close()
        await self._remote.aclose()
        await self._openai.aclose()

    async def test_provider(self, ctx: TenantContext, provider_id: uuid.UUID) -> ProviderTestResult:
        """Send a 1-token request to this provider alone; report latency or the provider's error."""
        ctx.require(Role.ADMIN, "test LLM providers")
        provider = await self._providers.resolve(ctx, provider_id)
        model = provider.model_for(None, strict=False)
        request = ChatRequest(messages=[{"role": "user", "content": "Reply with: ok"}], max_tokens=1)
        started = self._clock()
        try:
            if provider.base_url:
                await self._guard.check(provider.base_url)
            result = await self._transport(provider).complete(provider, model, request, self._timeout(request))
        except ProviderCallFailed as exc:
            latency = (self._clock() - started) * 1000
            await self._write(self._entry(ctx, provider, model, CallMeta(), "error", latency, error=str(exc)))
            return ProviderTestResult(False, latency, model, str(exc))
        result = self._stamp(result, provider, started)
        await self._book(ctx, [], result, CallMeta(), [])
        return ProviderTestResult(True, result.latency_ms, model, f"answered in {result.latency_ms:.0f} ms")

    # -- steps ---------------------------------------------------------------------------

    async def recent_usage(self, ctx: TenantContext, limit: int = 50) -> list[UsageEntry]:
        """The tenant's newest usage records (admins)."""
        ctx.require(Role.ADMIN, "read usage records")
        return await self._usage.recent(ctx.tenant_slug, max(1, min(limit, 500)))

    async def daily_usage(self, ctx: TenantContext, day: date) -> UsageTotals:
        """The tenant's totals for one UTC day (admins)."""
        ctx.require(Role.ADMIN, "read usage totals")
        return await self._usage.daily_totals(ctx.tenant_slug, day)

    async def _prepare(
        self, ctx: TenantContext, request: ChatRequest, provider_id: uuid.UUID | None, meta: CallMeta
    ) -> tuple[list[ResolvedProvider], Limit]:
        ctx.require(Role.EDITOR, "run LLM calls")
        request.validate()
        first = provider_id or await self._providers.default_provider_id(ctx)
        chain = await provider_chain(first, lambda pid: self._providers.resolve(ctx, pid))
        chain = failover_order(ctx.tenant_slug, chain, self.cooldowns)
        tenant_limit = Limit(
            key=f"{ctx.tenant_slug}:tenant",
            label=f"tenant {ctx.tenant_slug!r}",
            rpm=self.policy.tenant_rpm,
            tpm=self.policy.tenant_tpm,
        )
        try:
            await self._limiter.acquire([tenant_limit], request.estimated_prompt_tokens())
        except RateLimited as exc:
            provider = chain[0]
            await self._write(
                self._entry(ctx, provider, provider.model_for(request.model, strict=False), meta, "rate_limited", 0.0)
            )
            raise RateLimited(str(exc), exc.retry_after) from None
        return chain, tenant_limit

    def _transport(self, provider: ResolvedProvider) -> Transport:
        return self._transports[provider.kind]

    def _timeout(self, request: ChatRequest) -> float:
        return request.timeout_s or self.policy.timeout_s

    @staticmethod
    def _provider_limits(ctx: TenantContext, provider: ResolvedProvider) -> list[Limit]:
        if not (provider.rpm_limit or provider.tpm_limit):
            return []
        return [
            Limit(
                key=f"{ctx.tenant_slug}:provider:{provider.id}",
                label=f"provider {provider.name!r}",
                rpm=provider.rpm_limit or 0,
                tpm=provider.tpm_limit or 0,
            )
        ]

    async def _with_retries(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        for number in range(self.policy.max_retries + 1):
            try:
                return await attempt()
            except ProviderCallFailed as exc:
                if not exc.retryable or number == self.policy.max_retries:
                    raise
                delay = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2**number)
                await self._sleep(delay * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _open_stream(
        self, provider: ResolvedProvider, model: str, request: ChatRequest
    ) -> tuple[AsyncIterator[StreamChunk], StreamChunk]:
        """Start streaming and wait for the first chunk, so failures before it can be retried."""
        iterator = aiter(self._transport(provider).stream(provider, model, request, self._timeout(request)))
        first = await anext(iterator, None)
        if first is None:
            raise ProviderCallFailed(provider.name, "bad_response", "the stream ended before any output")
        return iterator, first

    def _note_failure(self, ctx: TenantContext, provider: ResolvedProvider, exc: ProviderCallFailed) -> None:
        log.warning("LLM provider %r failed for tenant %s: %s", provider.name, ctx.tenant_slug, exc.kind)
        if exc.kind != "bad_request":
            self.cooldowns.failed(ctx.tenant_slug, provider.id)

    def _stamp(self, result: LLMResult, provider: ResolvedProvider, started: float) -> LLMResult:
        return replace(
            result,
            latency_ms=(self._clock() - started) * 1000,
            provider_id=provider.id,
            provider_name=provider.name,
            provider_kind=str(provider.kind),
        )

    async def _book(
        self,
        ctx: TenantContext,
        limits: list[Limit],
        result: LLMResult,
        meta: CallMeta | None,
        failures: list[ProviderCallFailed],
    ) -> None:
        await self._limiter.add_tokens(limits, result.prompt_tokens + result.completion_tokens)
        error = "; ".join(str(f) for f in failures) or None
        entry = UsageEntry(
            tenant=ctx.tenant_slug,
            provider_id=result.provider_id,
            provider_kind=result.provider_kind,
            provider_name=result.provider_name,
            model=result.model,
            outcome="ok" if not failures else "ok_after_failover",
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
            user_id=ctx.user_id,
            execution_id=(meta or CallMeta()).execution_id,
            node_id=(meta or CallMeta()).node_id,
            error=error,
        )
        await self._write(entry)

    async def _give_up(
        self,
        ctx: TenantContext,
        primary: ResolvedProvider,
        request: ChatRequest,
        meta: CallMeta | None,
        failures: list[ProviderCallFailed],
        refusals: list[RateLimited],
    ) -> Exception:
        """Record the failed call; the error to raise: rate limited if only limits refused, else all failed."""
        model = primary.model_for(request.model, strict=False)
        if refusals and not failures:
            wait = min(r.retry_after for r in refusals)
            await self._write(self._entry(ctx, primary, model, meta, "rate_limited", 0.0))
            return RateLimited("; ".join(str(r) for r in refusals), wait)
        await self._record_failure(ctx, primary, model, meta, failures, None)
        return AllProvidersFailed(failures)

    async def _record_failure(
        self,
        ctx: TenantContext,
        provider: ResolvedProvider,
        model: str,
        meta: CallMeta | None,
        failures: list[ProviderCallFailed],
        started: float | None,
    ) -> None:
        latency = (self._clock() - started) * 1000 if started is not None else 0.0
        error = "; ".join(str(f) for f in failures)
        await self._write(self._entry(ctx, provider, model, meta, "error", latency, error=error))

    @staticmethod
    def _entry(
        ctx: TenantContext,
        provider: ResolvedProvider,
        model: str,
        meta: CallMeta | None,
        outcome: str,
        latency_ms: float,
        error: str | None = None,
    ) -> UsageEntry:
        meta = meta or CallMeta()
        return UsageEntry(
            tenant=ctx.tenant_slug,
            provider_id=provider.id,
            provider_kind=str(provider.kind),
            provider_name=provider.name,
            model=model,
            outcome=outcome,
            latency_ms=latency_ms,
            user_id=ctx.user_id,
            execution_id=meta.execution_id,
            node_id=meta.node_id,
            error=scrub(error, provider.api_key) if error else None,
        )

    async def _write(self, entry: UsageEntry) -> None:
        try:
            await self._usage.record(entry)
        except Exception as exc:  # a usage store outage must not fail the user's call; it is logged
            log.warning("could not write a usage record for tenant %s: %s", entry.tenant, type(exc).__name__)
