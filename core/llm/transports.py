"""Transports: how a call reaches a provider. LiteLLM for Anthropic, Azure and Ollama; `openai_http.py` for
OpenAI and OpenAI-compatible servers (no LiteLLM on that path: it cost milliseconds a call); `local.py`
for the bundled model.

A transport turns a `ChatRequest` for one provider and model into an `LLMResult` (or a
stream of `StreamChunk`s) and every failure into a short, scrubbed `ProviderCallFailed`
(`failures.py`). LiteLLM is imported lazily (it takes seconds) with its price list read
from the package (`LITELLM_LOCAL_MODEL_COST_MAP`), never fetched. Every remote call is
sent with a client of ours that never follows a redirect (`http.py`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from core.llm.failures import translate_error
from core.llm.types import (
    PASSTHROUGH_PARAMS,
    ChatRequest,
    LLMResult,
    ProviderCallFailed,
    ProviderKind,
    ResolvedProvider,
    StreamChunk,
    ToolCall,
)

if TYPE_CHECKING:
    from core.llm.http import ProviderHTTP


class Transport(Protocol):
    """Sends one request to one provider."""

    async def complete(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> LLMResult: ...

    def stream(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> AsyncIterator[StreamChunk]: ...


_PREFIX = {
    ProviderKind.OPENAI: "openai",
    ProviderKind.ANTHROPIC: "anthropic",
    ProviderKind.AZURE: "azure",
    ProviderKind.OLLAMA: "ollama_chat",
    ProviderKind.OPENAI_COMPATIBLE: "openai",
}
_AZURE_API_VERSION = "2024-10-21"
_litellm_lock = threading.Lock()


def _litellm() -> Any:
    """Import LiteLLM once, configured never to fetch, print or phone home."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with _litellm_lock:
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        return litellm


def litellm_arguments(provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float) -> dict[str, Any]:
    """The keyword arguments for `litellm.acompletion`: endpoint and key from the provider only."""
    kwargs: dict[str, Any] = {k: v for k, v in provider.default_params.items() if k in PASSTHROUGH_PARAMS}
    kwargs.update(request.params)
    for name in ("max_tokens", "temperature", "stop"):
        value = getattr(request, name)
        if value is not None:
            kwargs[name] = value
    kwargs |= {
        "model": f"{_PREFIX[provider.kind]}/{model}",
        "messages": request.messages,
        "timeout": timeout_s,
        "num_retries": 0,  # the service retries, with backoff, and fails over
        "max_retries": 0,
    }
    if provider.base_url:
        kwargs["api_base"] = provider.base_url
    if provider.kind is ProviderKind.AZURE:
        kwargs["api_version"] = str(provider.default_params.get("api_version") or _AZURE_API_VERSION)
    if provider.api_key:
        kwargs["api_key"] = provider.api_key
    elif provider.kind in {ProviderKind.OPENAI_COMPATIBLE, ProviderKind.OLLAMA}:
        kwargs["api_key"] = "none"  # keyless servers; the OpenAI client insists on some value
    if request.tools:
        kwargs["tools"] = request.tools
        if request.tool_choice is not None:
            kwargs["tool_choice"] = request.tool_choice
        # LiteLLM's MCP-gateway hook imports mcp>=2 names that crewai's mcp<2 lacks
        # (ImportError: CacheableResult). Our tools are plain function tools (checked in
        # ChatRequest.validate), for which that hook does nothing, so skip it.
        kwargs["_skip_mcp_handler"] = True
    return kwargs


def _cost(litellm: Any, response: Any) -> float | None:
    try:
        cost = litellm.completion_cost(completion_response=response)
    except Exception:  # unknown model or price: cost is then simply not known
        return None
    return float(cost) if cost else None


def _openai_through_litellm_http() -> bool:
    """LiteLLM sends OpenAI calls through its own HTTP handler instead of the SDK when this is set."""
    return os.environ.get("EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER", "").strip().lower() == "true"


class LiteLLMTransport:
    """Every remote provider kind through `litellm.acompletion`, on connections that refuse redirects."""

    def __init__(self) -> None:
        self._pools: ProviderHTTP | None = None

    def _http(self) -> ProviderHTTP:
        if self._pools is None:
            from core.llm.http import ProviderHTTP

            self._pools = ProviderHTTP()
        return self._pools

    async def aclose(self) -> None:
        """Close the connection pool of the running event loop."""
        if self._pools is not None:
            await self._pools.aclose()

    def _client(self, provider: ResolvedProvider, kwargs: dict[str, Any], timeout_s: float) -> Any:
        """The client LiteLLM sends this call with. Without one it picks its own, which follow redirects.

        LiteLLM uses a passed client only when it is of the type that path expects: the
        OpenAI SDK's for OpenAI (unless LiteLLM is told to use its own handler) and Azure,
        its `AsyncHTTPHandler` for Anthropic and Ollama. Tests cover every kind on the wire.
        """
        http = self._http()
        if provider.kind is ProviderKind.AZURE or (
            provider.kind in {ProviderKind.OPENAI, ProviderKind.OPENAI_COMPATIBLE}
            and not _openai_through_litellm_http()
        ):
            import openai

            common: dict[str, Any] = {
                # never the SDK's fallback to the server's environment (OPENAI_API_KEY)
                "api_key": kwargs.get("api_key") or "none",
                "http_client": http.client(timeout_s),
                "max_retries": 0,
                "timeout": timeout_s,
            }
            if provider.kind is ProviderKind.AZURE:
                return openai.AsyncAzureOpenAI(
                    azure_endpoint=provider.base_url or "", api_version=kwargs["api_version"], **common
                )
            return openai.AsyncOpenAI(base_url=provider.base_url, **common)
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        return AsyncHTTPHandler(timeout=timeout_s, transport=http.transport(), follow_redirects=False)

    async def complete(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> LLMResult:
        litellm = await asyncio.to_thread(_litellm)
        kwargs = litellm_arguments(provider, model, request, timeout_s)
        try:
            kwargs["client"] = self._client(provider, kwargs, timeout_s)
            response = await asyncio.wait_for(litellm.acompletion(**kwargs), timeout_s + 1.0)
        except Exception as exc:  # every failure becomes a scrubbed ProviderCallFailed
            raise translate_error(exc, provider) from None
        try:
            choice = response.choices[0]
            message = choice.message
            calls = [
                ToolCall(id=c.id or "", name=c.function.name or "", arguments=c.function.arguments or "{}")
                for c in (message.tool_calls or [])
            ]
            usage = getattr(response, "usage", None)
            return LLMResult(
                content=message.content or "",
                tool_calls=calls,
                finish_reason=choice.finish_reason,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                cost_usd=_cost(litellm, response),
                model=model,
            )
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ProviderCallFailed(provider.name, "bad_response", f"unreadable reply: {type(exc).__name__}") from None

    async def stream(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        litellm = await asyncio.to_thread(_litellm)
        kwargs = litellm_arguments(provider, model, request, timeout_s)
        kwargs |= {"stream": True, "stream_options": {"include_usage": True}}
        try:
            kwargs["client"] = self._client(provider, kwargs, timeout_s)
            response = await asyncio.wait_for(litellm.acompletion(**kwargs), timeout_s + 1.0)
            iterator = response.__aiter__()
        except Exception as exc:  # every failure becomes a scrubbed ProviderCallFailed
            raise translate_error(exc, provider) from None
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        prompt_tokens = completion_tokens = 0
        finish_reason = None
        while True:
            try:
                chunk = await asyncio.wait_for(iterator.__anext__(), timeout_s)
            except StopAsyncIteration:
                break
            except Exception as exc:  # idle timeout, malformed chunk, dropped connection
                raise translate_error(exc, provider) from None
            usage = getattr(chunk, "usage", None)
            if usage:
                prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or prompt_tokens)
                completion_tokens = int(getattr(usage, "completion_tokens", 0) or completion_tokens)
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            finish_reason = choice.finish_reason or finish_reason
            delta = choice.delta
            for call in getattr(delta, "tool_calls", None) or []:
                slot = calls.setdefault(call.index or 0, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] = call.function.name or slot["name"]
                    slot["arguments"] += call.function.arguments or ""
            if delta.content:
                text.append(delta.content)
                yield StreamChunk(delta=delta.content)
        yield StreamChunk(
            result=LLMResult(
                content="".join(text),
                tool_calls=[ToolCall(c["id"], c["name"], c["arguments"] or "{}") for _, c in sorted(calls.items())],
                finish_reason=finish_reason,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                model=model,
            )
        )
