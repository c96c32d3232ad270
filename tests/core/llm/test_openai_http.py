"""`OpenAIHTTPTransport` against the scripted OpenAI-compatible server: what goes on the wire,
what comes back (text, tool calls, streams, usage, cost), and how every fault reads."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.llm.http import ProviderHTTP
from core.llm.openai_http import OpenAIHTTPTransport
from core.llm.transports import _litellm
from core.llm.types import (
    ChatRequest,
    LLMResult,
    ProviderCallFailed,
    ProviderKind,
    ResolvedProvider,
    StreamChunk,
)
from db.database import Database
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.llm_stack import make_stack

KEY = "sk-test-openai-http-0123456789"
HELLO = [{"role": "user", "content": "hi"}]
ADD_TOOL = {
    "type": "function",
    "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}},
}


def provider_at(
    base_url: str | None,
    *,
    kind: ProviderKind = ProviderKind.OPENAI_COMPATIBLE,
    key: str | None = KEY,
    defaults: dict[str, Any] | None = None,
) -> ResolvedProvider:
    return ResolvedProvider(uuid.uuid4(), "scripted", kind, base_url, ["m1"], defaults or {}, key)


@pytest.fixture
async def transport() -> AsyncIterator[OpenAIHTTPTransport]:
    sender = OpenAIHTTPTransport()
    yield sender
    await sender.aclose()


async def streamed(
    transport: OpenAIHTTPTransport, provider: ResolvedProvider, request: ChatRequest, timeout_s: float = 5.0
) -> list[StreamChunk]:
    return [chunk async for chunk in transport.stream(provider, "m1", request, timeout_s)]


async def call(
    transport: OpenAIHTTPTransport, provider: ResolvedProvider, stream: bool, timeout_s: float = 5.0
) -> LLMResult:
    """One call, plain or streamed; the result either way."""
    request = ChatRequest(messages=HELLO, max_tokens=4)
    if not stream:
        return await transport.complete(provider, "m1", request, timeout_s)
    final = (await streamed(transport, provider, request, timeout_s))[-1].result
    assert final is not None
    return final


# -- what goes on the wire --------------------------------------------------------------


async def test_a_text_answer_comes_back_with_usage(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.say("Hello there", prompt_tokens=11, completion_tokens=2))
    request = ChatRequest(messages=HELLO, max_tokens=16, temperature=0.2, stop=["\n\n"])
    result = await transport.complete(provider_at(llm_server.base_url), "m1", request, 5.0)
    assert (result.content, result.finish_reason, result.model) == ("Hello there", "stop", "m1")
    assert (result.prompt_tokens, result.completion_tokens, result.cost_usd) == (11, 2, None)  # m1 has no price
    [sent] = llm_server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {"model": "m1", "messages": HELLO, "max_tokens": 16, "temperature": 0.2, "stop": ["\n\n"]}
    assert sent.headers["content-type"] == "application/json"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_keyed_provider_sends_its_key_and_a_keyless_one_sends_none(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer, stream: bool
) -> None:
    await call(transport, provider_at(llm_server.base_url, key=KEY), stream)
    await call(transport, provider_at(llm_server.base_url, key=None), stream)
    keyed, keyless = (r.headers for r in llm_server.requests)
    assert keyed["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in keyless


async def test_passthrough_params_merge_provider_defaults_then_the_request(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    defaults = {"temperature": 0.1, "seed": 7, "top_p": 0.9, "api_base": "http://169.254.169.254/", "user": None}
    provider = provider_at(llm_server.base_url, defaults=defaults)
    request = ChatRequest(messages=HELLO, temperature=0.3, params={"seed": 9, "response_format": {"type": "text"}})
    await transport.complete(provider, "m1", request, 5.0)
    body = llm_server.requests[0].json
    assert (body["temperature"], body["seed"], body["top_p"]) == (0.3, 9, 0.9)
    assert body["response_format"] == {"type": "text"}
    assert "api_base" not in body  # not a passthrough parameter: defaults cannot redirect the call
    assert "user" not in body  # unset parameters are not sent


async def test_openai_itself_gets_the_token_cap_as_max_completion_tokens(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    provider = provider_at(llm_server.base_url, kind=ProviderKind.OPENAI)
    await transport.complete(provider, "m1", ChatRequest(messages=HELLO, max_tokens=1), 5.0)
    body = llm_server.requests[0].json
    assert body["max_completion_tokens"] == 1
    assert "max_tokens" not in body


class _Recording(ProviderHTTP):
    """Pools that answer every request from a `MockTransport`, recording it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[httpx.Request] = []

    def transport(self) -> httpx.AsyncBaseTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            self.seen.append(request)
            return httpx.Response(200, json={"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})

        return httpx.MockTransport(answer)


async def test_without_a_base_url_the_call_goes_to_openai() -> None:
    pools = _Recording()
    result = await OpenAIHTTPTransport(pools).complete(provider_at(None), "m1", ChatRequest(messages=HELLO), 5.0)
    assert result.content == "hi"
    assert str(pools.seen[0].url) == "https://api.openai.com/v1/chat/completions"


# -- tool calls and streams ---------------------------------------------------------------


async def test_tool_calls_come_back_with_id_name_and_arguments(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.call("add", {"a": 2}))
    request = ChatRequest(messages=HELLO, tools=[ADD_TOOL], tool_choice="auto")
    result = await transport.complete(provider_at(llm_server.base_url), "m1", request, 5.0)
    [tool_call] = result.tool_calls
    assert (tool_call.name, json.loads(tool_call.arguments), result.finish_reason) == ("add", {"a": 2}, "tool_calls")
    assert tool_call.id.startswith("call_0_")
    body = llm_server.requests[0].json
    assert (body["tools"], body["tool_choice"]) == ([ADD_TOOL], "auto")


async def test_a_stream_yields_each_delta_then_the_whole_result_with_usage(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.say("one two three", prompt_tokens=5, completion_tokens=3))
    chunks = await streamed(transport, provider_at(llm_server.base_url), ChatRequest(messages=HELLO))
    assert [c.delta for c in chunks[:-1]] == ["one", " two", " three"]
    assert all(c.result is None for c in chunks[:-1])
    final = chunks[-1].result
    assert final is not None
    assert (final.content, final.finish_reason, final.prompt_tokens, final.completion_tokens) == (
        "one two three",
        "stop",
        5,
        3,
    )
    body = llm_server.requests[0].json
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


async def test_streamed_tool_call_fragments_are_joined_by_index(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply(text="", tool_calls=[("add", {"a": 1}), ("mul", {"b": [2, 3]})]))
    chunks = await streamed(transport, provider_at(llm_server.base_url), ChatRequest(messages=HELLO, tools=[ADD_TOOL]))
    assert len(chunks) == 1  # no text: only the result
    final = chunks[0].result
    assert final is not None
    assert [(c.name, json.loads(c.arguments)) for c in final.tool_calls] == [("add", {"a": 1}), ("mul", {"b": [2, 3]})]
    assert [c.id[:7] for c in final.tool_calls] == ["call_0_", "call_1_"]
    assert final.finish_reason == "tool_calls"


async def test_a_server_that_ignores_stream_is_read_as_one_answer(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    whole = {"choices": [{"message": {"content": "all at once"}, "finish_reason": "stop"}], "usage": {}}
    llm_server.script(Reply(body=json.dumps(whole)))
    chunks = await streamed(transport, provider_at(llm_server.base_url), ChatRequest(messages=HELLO))
    assert [c.delta for c in chunks] == ["all at once", ""]
    assert chunks[-1].result is not None
    assert chunks[-1].result.content == "all at once"


async def test_a_slow_drip_within_the_idle_timeout_streams_but_a_stall_fails(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    provider = provider_at(llm_server.base_url)
    # seven events 0.1 s apart: longer than the timeout in all, never that long between two
    llm_server.script(Reply.say("a b c d", drip_s=0.1), Reply.say("a b", drip_s=1.0))
    chunks = await streamed(transport, provider, ChatRequest(messages=HELLO), timeout_s=0.45)
    assert chunks[-1].result is not None
    assert chunks[-1].result.content == "a b c d"
    with pytest.raises(ProviderCallFailed) as stalled:
        await streamed(transport, provider, ChatRequest(messages=HELLO), timeout_s=0.45)
    assert (stalled.value.kind, stalled.value.retryable) == ("timeout", True)


async def test_a_stream_cut_off_midway_fails_as_a_connection_error_after_its_first_deltas(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.say("one two three four", cut_after=3))
    seen: list[str] = []
    with pytest.raises(ProviderCallFailed) as cut:
        async for chunk in transport.stream(provider_at(llm_server.base_url), "m1", ChatRequest(messages=HELLO), 5.0):
            seen.append(chunk.delta)
    assert seen == ["one", " two"]
    assert (cut.value.kind, cut.value.status) == ("connection", None)
    assert "RemoteProtocolError" in cut.value.detail


async def test_an_error_event_in_a_stream_is_a_provider_error(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    event = json.dumps({"error": {"message": f"overloaded, key {KEY}", "type": "server_error"}})
    llm_server.script(Reply(body=f"data: {event}\n\n", headers={"content-type": "text/event-stream"}))
    with pytest.raises(ProviderCallFailed) as failed:
        await streamed(transport, provider_at(llm_server.base_url), ChatRequest(messages=HELLO))
    assert failed.value.kind == "server_error"
    assert "server_error: overloaded, key [redacted]" in failed.value.detail


# -- faults ---------------------------------------------------------------------------------

JUNK = "Traceback (most recent call last): " * 50
FAULTS = [
    pytest.param(Reply.error(400, "bad model"), "bad_request", 400, "scripted: bad model (code 400)", id="400"),
    pytest.param(Reply.error(401, "invalid key"), "auth", 401, "scripted: invalid key (code 401)", id="401"),
    pytest.param(Reply.error(403, "forbidden"), "auth", 403, "forbidden", id="403"),
    pytest.param(Reply.error(404, "no such model"), "bad_request", 404, "no such model", id="404"),
    pytest.param(Reply.error(408), "timeout", None, "did not answer in time", id="408"),
    pytest.param(Reply.error(429, "slow down"), "rate_limited", 429, "slow down", id="429"),
    pytest.param(Reply.error(500, "boom"), "server_error", 500, "boom", id="500"),
    pytest.param(Reply.error(503, "busy"), "server_error", 503, "busy", id="503"),
    pytest.param(Reply.error(504), "timeout", None, "did not answer in time", id="504"),
    pytest.param(
        Reply(status=422, body=json.dumps({"detail": "field required", "dump": JUNK})),
        "bad_request",
        422,
        "field required",
        id="fastapi-422",
    ),
    pytest.param(
        Reply(status=502, body=f"<html>{JUNK}</html>"),
        "server_error",
        502,
        "the provider answered HTTP 502 without a readable error message",
        id="html-502",
    ),
    pytest.param(
        Reply.error(400, "parameter timeout is not supported"),
        "bad_request",  # the status decides, not a word in the message
        400,
        "parameter timeout is not supported",
        id="timeout-word-in-400",
    ),
    pytest.param(
        Reply.malformed(),
        "bad_response",
        None,
        "the provider's answer could not be read (JSONDecodeError)",
        id="malformed-json",
    ),
    pytest.param(
        Reply(body=json.dumps({"id": "x", "choices": []})), "bad_response", None, "unreadable reply", id="no-choices"
    ),
    pytest.param(
        Reply(body=json.dumps({"error": {"message": "oops"}})),
        "server_error",
        None,
        "the provider answered with an error instead of a reply: oops",
        id="error-in-a-200",
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(("reply", "kind", "status", "shown"), FAULTS)
async def test_every_fault_reads_as_litellm_reported_it(
    transport: OpenAIHTTPTransport,
    llm_server: ScriptedLLMServer,
    reply: Reply,
    kind: str,
    status: int | None,
    shown: str,
    stream: bool,
) -> None:
    llm_server.script(reply)
    with pytest.raises(ProviderCallFailed) as failed:
        await call(transport, provider_at(llm_server.base_url), stream)
    assert (failed.value.kind, failed.value.status) == (kind, status)
    assert shown in failed.value.detail
    assert "Traceback" not in str(failed.value)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_key_echoed_in_an_error_answer_is_redacted(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer, stream: bool
) -> None:
    llm_server.script(Reply.error(401, f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}"))
    with pytest.raises(ProviderCallFailed) as failed:
        await call(transport, provider_at(llm_server.base_url), stream)
    assert "Incorrect API key provided: [redacted]" in str(failed.value)
    assert KEY not in str(failed.value)
    assert KEY[8:20] not in str(failed.value)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_hanging_server_times_out_within_the_timeout(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer, stream: bool
) -> None:
    llm_server.script(Reply.hanging())
    with pytest.raises(ProviderCallFailed) as failed:
        await call(transport, provider_at(llm_server.base_url), stream, timeout_s=0.3)
    assert (failed.value.kind, failed.value.status, failed.value.retryable) == ("timeout", None, True)
    assert failed.value.detail == "the provider did not answer in time"


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_refused_connection_is_a_retryable_connection_failure(
    transport: OpenAIHTTPTransport, stream: bool
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(ProviderCallFailed) as failed:
        await call(transport, provider_at(f"http://127.0.0.1:{port}/v1"), stream)
    assert (failed.value.kind, failed.value.retryable) == ("connection", True)
    assert failed.value.detail.startswith("the connection to the provider failed (ConnectError")


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_redirect_is_refused_not_followed(
    transport: OpenAIHTTPTransport,
    llm_server: ScriptedLLMServer,
    second_llm_server: ScriptedLLMServer,
    stream: bool,
) -> None:
    llm_server.script(Reply.redirect(f"{second_llm_server.base_url}/chat/completions?token=sk-leak-0123456789"))
    with pytest.raises(ProviderCallFailed) as failed:
        await call(transport, provider_at(llm_server.base_url), stream)
    assert (failed.value.kind, failed.value.status) == ("redirect", 307)
    assert "sk-leak" not in str(failed.value)
    assert second_llm_server.requests == []


async def test_a_request_that_is_not_json_is_a_bad_request_never_sent(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": object()}])
    with pytest.raises(ProviderCallFailed) as failed:
        await transport.complete(provider_at(llm_server.base_url), "m1", request, 5.0)
    assert (failed.value.kind, failed.value.retryable) == ("bad_request", False)
    assert llm_server.requests == []


# -- cost ---------------------------------------------------------------------------------


async def test_the_cost_of_a_priced_model_comes_from_litellms_price_list(
    transport: OpenAIHTTPTransport, llm_server: ScriptedLLMServer
) -> None:
    llm_server.script(Reply.say("hi", prompt_tokens=1000, completion_tokens=100))
    provider = provider_at(llm_server.base_url, kind=ProviderKind.OPENAI)
    result = await transport.complete(provider, "gpt-4o-mini", ChatRequest(messages=HELLO), 5.0)
    prompt_cost, completion_cost = _litellm().cost_per_token(
        model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=100
    )
    assert result.cost_usd == pytest.approx(prompt_cost + completion_cost)
    assert result.cost_usd is not None
    assert result.cost_usd > 0


# -- in the service -------------------------------------------------------------------------


async def test_the_service_sends_openai_compatible_calls_without_litellm(
    db: Database, llm_server: ScriptedLLMServer
) -> None:
    stack = await make_stack(db)
    provider = await stack.add_provider(name="keyless", base_url=llm_server.base_url)
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert result.content == "ok"
    assert "authorization" not in llm_server.requests[0].headers  # LiteLLM would send "Bearer none"
    assert llm_server.requests[0].headers["user-agent"] == "crewcanvas"
    await stack.llm.aclose()


class _Canned:
    """A transport that answers every call with the same text."""

    async def complete(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> LLMResult:
        return LLMResult(content="canned", model=model)

    async def stream(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(result=LLMResult(content="canned", model=model))


async def test_a_transport_passed_to_the_service_still_replaces_the_built_in_one(
    db: Database, llm_server: ScriptedLLMServer
) -> None:
    stack = await make_stack(db, transports={ProviderKind.OPENAI_COMPATIBLE: _Canned()})
    provider = await stack.add_provider(name="vllm", base_url=llm_server.base_url)
    result = await stack.llm.complete(stack.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert result.content == "canned"
    assert llm_server.requests == []
