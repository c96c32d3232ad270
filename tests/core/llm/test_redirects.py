"""Provider calls never follow a redirect: the SSRF guard checks the base URL, and a redirect
would carry the request, and the provider's key, to an address the guard never saw.

The guard runs in its production mode here: private addresses are refused, except the
scripted server itself, which the operator trusts by host and port. The redirect points at
a second scripted server on 127.0.0.2, which the guard refuses; it must never be reached.
"""

from __future__ import annotations

import uuid

import pytest

from core.llm.ssrf import EndpointGuard
from core.llm.transports import LiteLLMTransport
from core.llm.types import AllProvidersFailed, ChatRequest, ProviderKind, UnsafeEndpoint
from db.database import Database
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.llm_stack import Stack, make_stack

HELLO = [{"role": "user", "content": "hi"}]
KEY = "sk-test-redirect-0123456789"
# Where each kind's base URL points: the scripted server answers every path.
KINDS = {"openai_compatible": "/v1", "anthropic": "", "ollama": "", "azure": ""}


@pytest.fixture
async def guarded(db: Database, llm_server: ScriptedLLMServer) -> Stack:
    """The LLM stack with the guard in production mode, trusting only the scripted server's host:port."""
    stack = await make_stack(db, allow_private=False, max_retries=0)
    assert isinstance(stack.guard, EndpointGuard)
    stack.guard.allowed_hosts = frozenset({f"127.0.0.1:{llm_server.port}"})
    return stack


async def call(stack: Stack, provider_id: uuid.UUID, stream: bool) -> None:
    request = ChatRequest(messages=HELLO, max_tokens=4)
    if stream:
        async for _ in stack.llm.stream(stack.admin, request, provider_id=provider_id):
            pass
    else:
        await stack.llm.complete(stack.admin, request, provider_id=provider_id)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_redirect_to_a_private_address_is_refused_not_followed(
    guarded: Stack,
    llm_server: ScriptedLLMServer,
    second_llm_server: ScriptedLLMServer,
    kind: str,
    stream: bool,
) -> None:
    target = f"{second_llm_server.base_url}/chat/completions"
    with pytest.raises(UnsafeEndpoint):
        await guarded.guard.check(target)  # the guard would refuse the target itself...
    root = llm_server.base_url.removesuffix("/v1")
    provider = await guarded.add_provider(name="moved", kind=kind, base_url=root + KINDS[kind], api_key=KEY)
    llm_server.default = Reply.redirect(f"{target}?token=sk-leak-0123456789")

    with pytest.raises(AllProvidersFailed) as failed:
        await call(guarded, provider.id, stream)

    assert second_llm_server.requests == []  # ...and the redirect does not get around it
    assert len(llm_server.requests) == 1
    message = str(failed.value)
    assert f"redirect (HTTP 307) to {target};" in message  # the query (it may hold a token) is left out
    assert "set the provider's base URL to the final address" in message
    assert "sk-leak" not in message
    [record] = await guarded.usage.recent("acme")
    assert record.outcome == "error"


@pytest.mark.parametrize("status", [301, 302, 303, 308])
async def test_every_redirect_status_is_refused(
    guarded: Stack, llm_server: ScriptedLLMServer, second_llm_server: ScriptedLLMServer, status: int
) -> None:
    provider = await guarded.add_provider(name="moved", base_url=llm_server.base_url, api_key=KEY)
    llm_server.default = Reply.redirect(f"{second_llm_server.base_url}/chat/completions", status)
    with pytest.raises(AllProvidersFailed, match=f"redirect \\(HTTP {status}\\)"):
        await call(guarded, provider.id, stream=False)
    assert second_llm_server.requests == []


async def test_a_relative_redirect_is_refused_and_named_absolute(guarded: Stack, llm_server: ScriptedLLMServer) -> None:
    provider = await guarded.add_provider(name="moved", base_url=llm_server.base_url, api_key=KEY)
    llm_server.script(Reply.redirect("/elsewhere/chat/completions"), Reply.say("must not be asked"))
    with pytest.raises(AllProvidersFailed, match=f"to http://127.0.0.1:{llm_server.port}/elsewhere/chat/completions"):
        await call(guarded, provider.id, stream=False)
    assert [r.path for r in llm_server.requests] == ["/v1/chat/completions"]


async def test_the_test_button_reports_the_redirect(
    guarded: Stack, llm_server: ScriptedLLMServer, second_llm_server: ScriptedLLMServer
) -> None:
    provider = await guarded.add_provider(name="moved", base_url=llm_server.base_url, api_key=KEY)
    llm_server.default = Reply.redirect(f"{second_llm_server.base_url}/chat/completions", 302)
    result = await guarded.llm.test_provider(guarded.admin, provider.id)
    assert not result.ok
    assert "redirect (HTTP 302)" in result.message
    assert "set the provider's base URL to the final address" in result.message
    assert second_llm_server.requests == []


@pytest.mark.parametrize("kind", ["openai_compatible", "azure"])  # the kinds that speak the scripted format
async def test_a_provider_that_answers_directly_still_works(
    guarded: Stack, llm_server: ScriptedLLMServer, kind: str
) -> None:
    root = llm_server.base_url.removesuffix("/v1")
    provider = await guarded.add_provider(name="direct", kind=kind, base_url=root + KINDS[kind], api_key=KEY)
    llm_server.script(Reply.say("hello"), Reply.say("hello again"))
    result = await guarded.llm.complete(guarded.admin, ChatRequest(messages=HELLO), provider_id=provider.id)
    assert result.content == "hello"
    chunks = [c async for c in guarded.llm.stream(guarded.admin, ChatRequest(messages=HELLO), provider_id=provider.id)]
    assert chunks[-1].result is not None
    assert chunks[-1].result.content == "hello again"
    headers = llm_server.requests[0].headers
    assert headers.get("authorization") == f"Bearer {KEY}" or headers.get("api-key") == KEY


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_openai_calls_through_litellms_own_handler_refuse_redirects_too(
    db: Database,
    llm_server: ScriptedLLMServer,
    second_llm_server: ScriptedLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    # OpenAI kinds go through `OpenAIHTTPTransport`; should LiteLLM carry them (a `transports` override),
    # its own HTTP handler, chosen by this variable instead of the OpenAI SDK, must refuse redirects too.
    monkeypatch.setenv("EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER", "True")
    through_litellm = {ProviderKind.OPENAI_COMPATIBLE: LiteLLMTransport()}
    guarded = await make_stack(db, allow_private=False, max_retries=0, transports=through_litellm)
    assert isinstance(guarded.guard, EndpointGuard)
    guarded.guard.allowed_hosts = frozenset({f"127.0.0.1:{llm_server.port}"})
    provider = await guarded.add_provider(name="moved", base_url=llm_server.base_url, api_key=KEY)
    llm_server.default = Reply.redirect(f"{second_llm_server.base_url}/chat/completions")
    with pytest.raises(AllProvidersFailed, match=r"redirect \(HTTP 307\)"):
        await call(guarded, provider.id, stream)
    assert second_llm_server.requests == []
    llm_server.default = Reply.say("direct")
    await call(guarded, provider.id, stream)
