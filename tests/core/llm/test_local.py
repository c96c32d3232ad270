"""The bundled local model (SmolLM2-135M via llama.cpp): a new tenant runs a call on it offline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.llm.local import LocalModelTransport, bundled_model_path
from core.llm.types import AllProvidersFailed, ChatRequest, ProviderKind
from db.database import Database
from tests.fixtures.llm_stack import make_stack


@pytest.fixture(scope="module")
def local_model() -> Iterator[LocalModelTransport]:
    """One model in memory for the module (loading costs about a second), freed afterwards."""
    transport = LocalModelTransport(threads=1, context=512)
    yield transport
    transport.close()


async def test_a_new_tenant_answers_on_the_local_model_by_default(
    db: Database, local_model: LocalModelTransport
) -> None:
    assert bundled_model_path() is not None
    stack = await make_stack(db, transports={ProviderKind.LOCAL: local_model})
    request = ChatRequest(messages=[{"role": "user", "content": "Say hello."}], max_tokens=4, temperature=0)
    result = await stack.llm.complete(stack.admin, request)
    assert result.provider_kind == "local"
    assert result.content.strip()
    assert 0 < result.completion_tokens <= 4
    chunks = [c async for c in stack.llm.stream(stack.admin, request)]
    assert chunks[-1].result is not None
    assert "".join(c.delta for c in chunks) == chunks[-1].result.content
    records = await stack.usage.recent("acme")
    assert [r.provider_kind for r in records] == ["local", "local"]


async def test_the_local_model_says_plainly_that_it_cannot_use_tools(
    db: Database, local_model: LocalModelTransport
) -> None:
    stack = await make_stack(db, transports={ProviderKind.LOCAL: local_model})
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    request = ChatRequest(messages=[{"role": "user", "content": "2+3?"}], tools=[tool], max_tokens=4)
    with pytest.raises(AllProvidersFailed, match="tiny and cannot use tools"):
        await stack.llm.complete(stack.admin, request)
