"""LLMService against the scripted OpenAI-compatible server: completion, streaming, tools,
retries, failover with cooldown, timeouts, faults, usage records and refusals."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.llm.types import AllProvidersFailed, CallMeta, ChatRequest, UnsafeEndpoint
from db.database import Database
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.llm_stack import Stack, make_stack

HELLO = [{"role": "user", "content": "Say hello"}]
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
    },
}


@pytest.fixture
async def stack(db: Database) -> Stack:
    return await make_stack(db)


async def test_completion_answers_and_writes_one_usage_record(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url, api_key="sk-test-0123456789abcd")
    llm_server.script(Reply.say("Hello!", prompt_tokens=11, completion_tokens=2))
    meta = CallMeta(node_id="greet")
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id, meta=meta)
    assert (result.content, result.provider_name, result.model) == ("Hello!", "vllm", "m1")
    request = llm_server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.json["model"] == "m1"
    assert request.headers["authorization"] == "Bearer sk-test-0123456789abcd"
    [record] = await stack.usage.recent("acme")
    assert (record.prompt_tokens, record.completion_tokens, record.outcome) == (11, 2, "ok")
    assert (record.provider_id, record.node_id, record.user_id) == (provider.id, "greet", stack.admin.user_id)
    assert record.latency_ms > 0


async def test_streaming_yields_chunks_then_the_whole_result(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    llm_server.script(Reply.say("one two three", completion_tokens=3))
    chunks = [c async for c in stack.llm.stream(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)]
    assert [c.delta for c in chunks[:-1]] == ["one", " two", " three"]
    final = chunks[-1].result
    assert final is not None
    assert final.content == "one two three"
    assert llm_server.requests[0].json["stream"] is True
    [record] = await stack.usage.recent("acme")
    assert record.completion_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls_go_to_the_provider_and_come_back(
    stack: Stack, llm_server: ScriptedLLMServer, stream: bool
) -> None:
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    llm_server.script(Reply.call("add", {"a": 2, "b": 3}))
    request = ChatRequest(messages=HELLO, tools=[ADD_TOOL])
    if stream:
        chunks = [c async for c in stack.llm.stream(stack.admin, request, provider_id=provider.id)]
        result = chunks[-1].result
        assert result is not None
    else:
        result = await stack.llm.complete(stack.admin, request, provider_id=provider.id)
    [call] = result.tool_calls
    assert (call.name, call.arguments) == ("add", '{"a": 2, "b": 3}')
    assert llm_server.requests[0].json["tools"][0]["function"]["name"] == "add"


async def test_transient_errors_are_retried_with_backoff(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    llm_server.script(Reply.error(429), Reply.error(503), Reply.say("finally"))
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert result.content == "finally"
    assert len(llm_server.requests) == 3
    assert len(stack.slept) == 2
    assert stack.slept[1] > stack.slept[0] * 0.9 / 1.0 * 0.5  # exponential: the second wait is the longer base


async def test_auth_errors_are_not_retried(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    llm_server.script(Reply.error(401, "invalid key"))
    with pytest.raises(AllProvidersFailed, match=r"provider 'vllm' failed: auth \(HTTP 401\)"):
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert len(llm_server.requests) == 1
    [record] = await stack.usage.recent("acme")
    assert record.outcome == "error"
    assert "invalid key" in (record.error or "")


async def test_failover_to_the_fallback_then_cooldown_skips_the_dead_primary(
    stack: Stack, llm_server: ScriptedLLMServer
) -> None:
    backup = await stack.add_provider(name="backup", base_url=llm_server.base_url, models=["b1"])
    primary = await stack.add_provider(
        name="primary", base_url=llm_server.base_url, models=["p1"], fallback_provider_id=str(backup.id)
    )
    llm_server.script(*[Reply.error(500)] * 3, Reply.say("from backup"))
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    assert (result.content, result.provider_name) == ("from backup", "backup")
    assert [r.json["model"] for r in llm_server.requests] == ["p1", "p1", "p1", "b1"]
    [record] = await stack.usage.recent("acme")
    assert record.outcome == "ok_after_failover"
    assert "provider 'primary' failed: server_error" in (record.error or "")

    llm_server.requests.clear()
    llm_server.script(Reply.say("backup again"))
    await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    assert [r.json["model"] for r in llm_server.requests] == ["b1"]  # the primary is cooling down

    stack.clock.advance(31)
    llm_server.requests.clear()
    llm_server.script(Reply.say("primary is back"))
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    assert (result.provider_name, [r.json["model"] for r in llm_server.requests]) == ("primary", ["p1"])


async def test_when_every_provider_fails_the_error_names_each(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    backup = await stack.add_provider(name="backup", base_url=llm_server.base_url)
    primary = await stack.add_provider(
        name="primary", base_url=llm_server.base_url, fallback_provider_id=str(backup.id)
    )
    llm_server.default = Reply.error(500)
    with pytest.raises(AllProvidersFailed) as caught:
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    message = str(caught.value)
    assert "provider 'primary' failed: server_error (HTTP 500)" in message
    assert "provider 'backup' failed: server_error (HTTP 500)" in message
    assert len(llm_server.requests) == 6  # three tries each


async def test_a_hanging_provider_times_out_and_fails_over(db: Database, llm_server: ScriptedLLMServer) -> None:
    stack = await make_stack(db, timeout_s=0.5, max_retries=0)
    backup = await stack.add_provider(name="backup", base_url=llm_server.base_url)
    primary = await stack.add_provider(
        name="primary", base_url=llm_server.base_url, fallback_provider_id=str(backup.id)
    )
    llm_server.script(Reply.hanging(), Reply.say("rescued"))
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    assert (result.content, result.provider_name) == ("rescued", "backup")
    [record] = await stack.usage.recent("acme")
    assert "provider 'primary' failed: timeout" in (record.error or "")


async def test_a_slow_drip_within_the_timeout_streams_but_a_stall_fails(
    db: Database, llm_server: ScriptedLLMServer
) -> None:
    stack = await make_stack(db, timeout_s=0.6, max_retries=0)
    provider = await stack.add_provider(name="drip", base_url=llm_server.base_url)
    llm_server.script(Reply.say("a b c d", drip_s=0.1))
    chunks = [c async for c in stack.llm.stream(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)]
    assert chunks[-1].result is not None
    assert chunks[-1].result.content == "a b c d"
    llm_server.script(Reply.say("a b", drip_s=1.5))
    with pytest.raises(AllProvidersFailed, match="timeout"):
        async for _ in stack.llm.stream(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id):
            pass


async def test_malformed_json_is_a_provider_error_not_a_crash(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    provider = await stack.add_provider(name="broken", base_url=llm_server.base_url)
    llm_server.default = Reply.malformed()
    with pytest.raises(AllProvidersFailed, match="provider 'broken' failed"):
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)


@pytest.mark.parametrize("param", ["api_base", "base_url", "api_key", "extra_headers"])
async def test_a_caller_cannot_redirect_the_request(stack: Stack, llm_server: ScriptedLLMServer, param: str) -> None:
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    request = ChatRequest(messages=HELLO, params={param: "http://169.254.169.254/"})
    with pytest.raises(InvalidInput, match=f"{param} cannot be set per request"):
        await stack.llm.complete(stack.admin, request, provider_id=provider.id)
    assert llm_server.requests == []


async def test_a_private_endpoint_is_refused_at_call_time_when_not_allowed(
    stack: Stack, llm_server: ScriptedLLMServer
) -> None:
    provider = await stack.add_provider(name="inside", base_url=llm_server.base_url)
    stack.guard.allow_private = False  # the operator switched it off after the record was saved
    with pytest.raises(UnsafeEndpoint, match="non-public address"):
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert llm_server.requests == []


async def test_disabled_providers_are_skipped_in_the_chain(stack: Stack, llm_server: ScriptedLLMServer) -> None:
    backup = await stack.add_provider(name="backup", base_url=llm_server.base_url, models=["b1"])
    primary = await stack.add_provider(
        name="primary", base_url=llm_server.base_url, fallback_provider_id=str(backup.id)
    )
    await stack.providers.set_enabled(stack.admin, primary.id, False)
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
    assert result.provider_name == "backup"
    await stack.providers.set_enabled(stack.admin, backup.id, False)
    with pytest.raises(InvalidInput, match="disabled"):
        await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=primary.id)
