"""The bundled local model (SmolLM2-135M via llama.cpp): a new tenant runs a call on it offline."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.llm.local import MAX_BYTES_PER_TOKEN, LocalModelTransport, bundled_model_path
from core.llm.types import AllProvidersFailed, ChatRequest, ProviderKind, ResolvedProvider
from db.database import Database
from tests.fixtures.llm_stack import make_stack

LOCAL = ResolvedProvider(uuid.uuid4(), "local", ProviderKind.LOCAL, None, [], {}, None)


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


@pytest.mark.timeout(60)
async def test_a_broken_model_file_is_an_error_plain_or_streaming_never_a_hang(db: Database, tmp_path: Path) -> None:
    """The model loads on the worker thread; what fails there must reach the caller."""
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))
    transport = LocalModelTransport(threads=1, context=512, model_path=broken)
    stack = await make_stack(db, transports={ProviderKind.LOCAL: transport}, timeout_s=120, max_retries=0)
    request = ChatRequest(messages=[{"role": "user", "content": "Say hello."}], max_tokens=4)
    with pytest.raises(AllProvidersFailed, match="the local model file could not be loaded"):
        await stack.llm.complete(stack.admin, request)
    with pytest.raises(AllProvidersFailed, match="the local model file could not be loaded"):
        async for _ in stack.llm.stream(stack.admin, request):
            pass
    assert [r.outcome for r in await stack.usage.recent("acme")] == ["error", "error"]


async def test_a_prompt_too_long_for_the_context_is_invalid_input_before_generation(
    db: Database, local_model: LocalModelTransport
) -> None:
    stack = await make_stack(db, transports={ProviderKind.LOCAL: local_model})
    request = ChatRequest(messages=[{"role": "user", "content": "lorem ipsum " * 400}], max_tokens=4)
    with pytest.raises(InvalidInput, match=r"the prompt is [\d,]+ tokens; the local model takes at most 512") as caught:
        await stack.llm.complete(stack.admin, request)
    assert [p.field for p in caught.value.problems] == ["messages"]
    with pytest.raises(InvalidInput, match="the local model takes at most 512"):
        async for _ in stack.llm.stream(stack.admin, request):
            pass


def test_no_token_of_the_bundled_model_stands_for_more_than_max_bytes_per_token(
    local_model: LocalModelTransport,
) -> None:
    """The size check refuses only prompts that cannot fit, whatever their tokens."""
    llama = local_model._model(LOCAL)
    # A byte-level BPE vocabulary: each character of a token's text stands for one byte.
    longest = max(len(llama._model.token_get_text(i)) for i in range(llama.n_vocab()))
    assert 0 < longest <= MAX_BYTES_PER_TOKEN
