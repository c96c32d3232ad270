"""Rate limits applied by LLMService: per tenant and per provider, refusals recorded."""

from __future__ import annotations

import pytest

from core.errors import RateLimited
from core.llm.types import ChatRequest
from db.database import Database
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.llm_stack import make_stack

HELLO = [{"role": "user", "content": "hi"}]


async def test_the_tenant_rpm_refuses_the_next_call_with_retry_after(
    db: Database, llm_server: ScriptedLLMServer
) -> None:
    stack = await make_stack(db, tenant_rpm=2)
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    for _ in range(2):
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    with pytest.raises(RateLimited, match="tenant 'acme': requests per minute") as refused:
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert 0 < refused.value.retry_after <= 60
    assert len(llm_server.requests) == 2
    assert [r.outcome for r in await stack.usage.recent("acme")] == ["rate_limited", "ok", "ok"]


async def test_a_provider_tpm_counts_the_tokens_really_used(db: Database, llm_server: ScriptedLLMServer) -> None:
    stack = await make_stack(db)
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url, tpm_limit=100)
    llm_server.script(Reply.say("long", prompt_tokens=60, completion_tokens=40))
    await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    with pytest.raises(RateLimited, match="provider 'vllm': tokens per minute"):
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert len(llm_server.requests) == 1


async def test_a_provider_at_its_limit_fails_over_to_the_fallback(db: Database, llm_server: ScriptedLLMServer) -> None:
    stack = await make_stack(db)
    backup = await stack.add_provider(name="backup", base_url=llm_server.base_url, models=["b1"])
    primary = await stack.add_provider(
        name="primary", base_url=llm_server.base_url, rpm_limit=1, fallback_provider_id=str(backup.id)
    )
    first = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    second = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    assert (first.provider_name, second.provider_name) == ("primary", "backup")
