"""`/api/llm/chat` on the bundled local model: a prompt that cannot fit its context is refused
with a 422 that names the limit, plain or streaming, and an error inside a stream ends the
stream with an `event: error` instead of leaving it open.

The pytest timeouts only guard against hangs; how fast the refusal is belongs in bench/.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.api.conftest import sign_up
from tests.api.test_providers import client, scripted
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server
__all__ = ["client"]  # a fixture, used by name

CONTEXT = 512  # the test settings' LLM_LOCAL_CONTEXT


def chat(content: str, stream: bool, **fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": content}], "stream": stream, "temperature": 0} | fields


def sse_events(text: str) -> list[tuple[str, dict[str, object]]]:
    """(event name, data) for each event of an SSE body; unnamed events are 'message'."""
    events = []
    for block in filter(None, text.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines.get("event", "message"), json.loads(lines["data"])))
    return events


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_prompt_longer_than_the_local_context_is_refused_with_its_token_count(
    client: httpx.AsyncClient, stream: bool
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    answered = await client.post("/api/llm/chat", headers=owner.headers, json=chat("lorem ipsum " * 600, stream))
    assert answered.status_code == 422, answered.text
    detail = answered.json()["detail"]
    match = re.search(
        r"the prompt is ([\d,]+) tokens; the local model takes at most ([\d,]+) including the reply", detail
    )
    assert match is not None, detail
    assert int(match[1].replace(",", "")) > CONTEXT
    assert int(match[2].replace(",", "")) == CONTEXT
    assert "shorten it" in detail


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_huge_prompt_is_refused_without_tokenizing_it(client: httpx.AsyncClient, stream: bool) -> None:
    """Within the request's limits (1 MiB, 256 Ki characters a message), far over what the context could hold."""
    owner = await sign_up(client, "owner@example.com", "acme")
    huge = "lorem ipsum dolor sit amet " * (200 * 1024 // 27)
    answered = await client.post("/api/llm/chat", headers=owner.headers, json=chat(huge, stream))
    assert answered.status_code == 422, answered.text[:500]
    detail = answered.json()["detail"]
    assert re.search(r"the prompt is [\d,]+ characters, at least [\d,]+ tokens", detail), detail
    assert f"the local model takes at most {CONTEXT} including the reply" in detail
    assert len(answered.text) < 1000  # the prompt is not echoed back


@pytest.mark.timeout(120)
async def test_a_10_mb_prompt_is_refused_before_it_is_read(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    huge = "lorem ipsum dolor sit amet " * (10 * 1024 * 1024 // 27)
    answered = await client.post("/api/llm/chat", headers=owner.headers, json=chat(huge, False))
    assert answered.status_code == 413, answered.text[:500]
    assert len(answered.text) < 1000


@pytest.mark.timeout(120)
async def test_room_for_the_reply_counts_against_the_local_context(client: httpx.AsyncClient) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    body = chat("lorem ipsum " * 30, False, max_tokens=CONTEXT - 100)
    answered = await client.post("/api/llm/chat", headers=owner.headers, json=body)
    assert answered.status_code == 422, answered.text
    assert f"the reply may take {CONTEXT - 100}" in answered.json()["detail"]
    assert "lower max_tokens" in answered.json()["detail"]
    fits = await client.post("/api/llm/chat", headers=owner.headers, json=chat("Say hello.", False, max_tokens=4))
    assert fits.status_code == 200, fits.text


@pytest.mark.timeout(120)
async def test_a_provider_failing_mid_stream_ends_the_stream_with_an_error_event(
    client: httpx.AsyncClient, llm_server: ScriptedLLMServer
) -> None:
    owner = await sign_up(client, "owner@example.com", "acme")
    provider = (await client.post("/api/providers", headers=owner.headers, json=scripted(llm_server))).json()
    llm_server.script(Reply.say("one two three four five", cut_after=3))
    streamed = await client.post(
        "/api/llm/chat", headers=owner.headers, json=chat("hi", True, provider_id=provider["id"])
    )
    assert streamed.status_code == 200
    events = sse_events(streamed.text)
    assert [name for name, _ in events[:-1]] == ["message"] * (len(events) - 1)
    assert events[0][1] == {"delta": "one"}
    name, data = events[-1]
    assert name == "error"
    assert data["error"] == "AllProvidersFailed"
    assert "provider 'scripted' failed: connection" in str(data["detail"])
