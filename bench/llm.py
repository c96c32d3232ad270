"""What `LLMService` adds to an LLM call, against the scripted OpenAI-compatible server on loopback.

Three ways to make the same chat completion, interleaved round by round so they share
the machine's load, p50/p99 of each printed side by side:

- `httpx`: a direct HTTP POST to the server (the floor);
- `litellm`: `litellm.acompletion` alone (the transport the service uses);
- `service`: `LLMService.complete` (provider lookup + decrypting the key, tenant and
  provider rate-limit checks, SSRF guard, the OpenAI-protocol transport, token booking, one usage
  record queued for the batched writer).

Then streaming: time to the first content chunk, direct SSE over httpx against
`LLMService.stream`. Ratios are printed; nothing is asserted (timing goals live here,
not in tests).

Run: .venv/bin/python bench/llm.py [--calls 300] [--database-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).parents[1]))

import httpx

from core.context import Role, TenantContext
from core.crypto import CredentialVault, KeyRing
from core.llm.service import LLMPolicy, LLMService
from core.llm.ssrf import EndpointGuard
from core.llm.transports import _litellm, litellm_arguments
from core.llm.types import ChatRequest, ResolvedProvider
from core.providers import ProviderInput, ProviderService
from core.ratelimit import Limit, MemoryRateLimiter
from core.tenants import TenantService
from core.usage import DatabaseUsageStore
from db.database import Database
from db.migrate import upgrade_control
from tests.fixtures.llm_server import Reply, ScriptedLLMServer

KEY = "sk-bench-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Say something short."}]
ANSWER = "a short answer of seven words here"

Timed = Callable[[], Awaitable[float]]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, samples: list[float], base: list[float] | None = None) -> str:
    p50, p99 = statistics.median(samples), pct(samples, 0.99)
    text = f"  {name:<26} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
    if base is not None:
        text += f"   x{p50 / statistics.median(base):.2f} p50, x{p99 / pct(base, 0.99):.2f} p99"
        text += f"   (+{p50 - statistics.median(base):.2f} ms p50)"
    return text


async def interleaved(variants: dict[str, Timed], calls: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for run in variants.values():
            await run()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(calls):
        for name, run in variants.items():
            samples[name].append(await run())
    return samples


async def main(calls: int, warmup: int, database_url: str | None) -> None:
    server = ScriptedLLMServer()
    server.start()
    server.default = Reply.say(ANSWER)
    workdir = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    db = Database(database_url or f"sqlite+aiosqlite:///{workdir / 'control.db'}", data_dir=workdir)
    slug = f"bench{uuid.uuid4().hex[:8]}"
    try:
        await upgrade_control(db)
        info = await TenantService(db).create(slug)
        ctx = TenantContext(tenant_id=info.id, tenant_slug=slug, user_id=uuid.uuid4(), role=Role.ADMIN)
        keyring = KeyRing(KeyRing.generate_entry("k1"))
        guard = EndpointGuard(allow_private=True)
        providers = ProviderService(db, CredentialVault(db, keyring), guard)
        # Limits high enough never to refuse, but checked (and booked) on every call.
        view = await providers.create(
            ctx,
            ProviderInput.model_validate(
                {
                    "name": "scripted",
                    "kind": "openai_compatible",
                    "base_url": server.base_url,
                    "models": ["m1"],
                    "api_key": KEY,
                    "rpm_limit": 10**6,
                    "tpm_limit": 10**9,
                }
            ),
        )
        # Usage records batched, as the app runs them (`wiring.backends` starts the store).
        batched_usage = DatabaseUsageStore(db)
        await batched_usage.start()
        llm = LLMService(
            providers,
            batched_usage,
            MemoryRateLimiter(),
            guard,
            policy=LLMPolicy(timeout_s=10, max_retries=0, tenant_rpm=10**6, tenant_tpm=10**9),
        )
        request = ChatRequest(messages=MESSAGES, max_tokens=16)
        resolved: ResolvedProvider = await providers.resolve(ctx, view.id)
        litellm = _litellm()
        body = {"model": "m1", "messages": MESSAGES, "max_tokens": 16}
        headers = {"Authorization": f"Bearer {KEY}"}
        url = f"{server.base_url}/chat/completions"

        async with httpx.AsyncClient(timeout=10) as http:

            async def direct() -> float:
                started = time.perf_counter()
                response = await http.post(url, json=body, headers=headers)
                response.raise_for_status()
                assert response.json()["choices"][0]["message"]["content"] == ANSWER
                return (time.perf_counter() - started) * 1000

            async def via_litellm() -> float:
                started = time.perf_counter()
                reply = await litellm.acompletion(**litellm_arguments(resolved, "m1", request, 10))
                assert reply.choices[0].message.content == ANSWER
                return (time.perf_counter() - started) * 1000

            async def via_service() -> float:
                started = time.perf_counter()
                result = await llm.complete(ctx, request, provider_id=view.id)
                assert result.content == ANSWER
                return (time.perf_counter() - started) * 1000

            async def direct_first_token() -> float:
                started = time.perf_counter()
                first: float | None = None
                async with http.stream("POST", url, json=body | {"stream": True}, headers=headers) as response:
                    async for raw in response.aiter_lines():  # read to the end, as a client would
                        if first is not None or not raw.startswith("data: ") or raw == "data: [DONE]":
                            continue
                        if json.loads(raw[6:])["choices"][0]["delta"].get("content"):
                            first = (time.perf_counter() - started) * 1000
                assert first is not None
                return first

            async def service_first_token() -> float:
                started = time.perf_counter()
                first = None
                async for chunk in llm.stream(ctx, request, provider_id=view.id):
                    if chunk.delta and first is None:
                        first = (time.perf_counter() - started) * 1000
                assert first is not None
                return first

            print(f"LLM call overhead, {calls} calls each, interleaved; database {db.dialect},")
            print(f"scripted server on loopback, {len(ANSWER.split())}-word answer")
            samples = await interleaved(
                {"httpx": direct, "litellm": via_litellm, "service": via_service}, calls, warmup
            )
            print("completion (whole call):")
            print(line("direct HTTP (httpx)", samples["httpx"]))
            print(line("litellm.acompletion", samples["litellm"], samples["httpx"]))
            print(line("LLMService.complete", samples["service"], samples["httpx"]))
            print(line("  service vs litellm", samples["service"], samples["litellm"]))
            streams = await interleaved({"httpx": direct_first_token, "service": service_first_token}, calls, warmup)
            print("streaming (time to first content chunk):")
            print(line("direct SSE (httpx)", streams["httpx"]))
            print(line("LLMService.stream", streams["service"], streams["httpx"]))
            usage = DatabaseUsageStore(db)
            await usage.start()  # batched, as in the app: `record` queues, the writer commits behind it
            limiter = MemoryRateLimiter()
            limit = Limit(key=f"{slug}:bench", label="bench", rpm=10**6, tpm=10**9)
            entry = (await llm.recent_usage(ctx, 1))[0]

            async def resolve() -> float:
                started = time.perf_counter()
                await providers.resolve(ctx, view.id)
                return (time.perf_counter() - started) * 1000

            async def check_limits() -> float:
                started = time.perf_counter()
                await limiter.acquire([limit], 10)
                await limiter.add_tokens([limit], 10)
                return (time.perf_counter() - started) * 1000

            async def write_usage() -> float:
                started = time.perf_counter()
                await usage.record(entry)
                return (time.perf_counter() - started) * 1000

            parts = await interleaved({"resolve": resolve, "limits": check_limits, "usage": write_usage}, calls, warmup)
            print("where the service's time goes (each step alone):")
            print(line("provider lookup + decrypt", parts["resolve"]))
            print(line("rate-limit check + booking", parts["limits"]))
            print(line("usage record (queued)", parts["usage"]))
            records = await llm.recent_usage(ctx, 1)
            print(f"usage records written: yes (newest outcome {records[0].outcome!r})")
            await usage.close()
            await batched_usage.close()
        llm.close()
    finally:
        await db.dispose()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--database-url", default=None, help="a scratch database (default: a SQLite file in a temporary directory)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.warmup, args.database_url))
