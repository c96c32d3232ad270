"""Abuse suite: a provider key never reaches logs, errors, usage records or events."""

from __future__ import annotations

import logging

import pytest

from core.llm.types import AllProvidersFailed, ChatRequest
from db.database import Database
from tests.fixtures.llm_server import Reply, ScriptedLLMServer
from tests.fixtures.llm_stack import make_stack

CANARY = "sk-canary-7f3a9b1c5d2e8f40aa11"


async def test_a_key_echoed_by_a_failing_provider_is_scrubbed_everywhere(
    db: Database, llm_server: ScriptedLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = await make_stack(db)
    view = await stack.add_provider(name="leaky", base_url=llm_server.base_url, api_key=CANARY)
    echo = f"Incorrect API key provided: {CANARY}. Authorization: Bearer {CANARY}"
    llm_server.default = Reply.error(401, echo)
    with pytest.raises(AllProvidersFailed) as failed:
        await stack.llm.complete(
            stack.admin, ChatRequest(messages=[{"role": "user", "content": "hi"}]), provider_id=view.id
        )
    with pytest.raises(AllProvidersFailed) as failed_stream:
        async for _ in stack.llm.stream(
            stack.admin, ChatRequest(messages=[{"role": "user", "content": "hi"}]), provider_id=view.id
        ):
            pass
    result = await stack.llm.test_provider(stack.admin, view.id)

    assert llm_server.requests[0].headers["authorization"] == f"Bearer {CANARY}"  # it was really sent
    assert "Incorrect API key provided" in str(failed.value)  # the provider's error is shown...
    for text in (str(failed.value), str(failed_stream.value), result.message, caplog.text):
        assert CANARY not in text  # ...without the key
        assert CANARY[8:20] not in text
    records = await stack.usage.recent("acme")
    assert len(records) == 3
    for record in records:
        assert CANARY not in repr(record)
    assert not result.ok
    assert CANARY not in repr(await stack.providers.list(stack.admin))
