"""`OpenAIHTTPTransport`: the OpenAI chat-completions wire protocol spoken directly over httpx.

For the `openai` and `openai_compatible` kinds (OpenAI, vLLM, llama.cpp, LM Studio,
Ollama's `/v1`, ...), where LiteLLM would add milliseconds to every call only to build
the same JSON. One POST to `{base_url}/chat/completions` on the redirect-refusing pools
of `http.py`; the body carries the model, messages, tools, and the passthrough
parameters (provider defaults, then the request's own, as `litellm_arguments` merges
them). Keyless servers get no `Authorization` header. For `openai` itself the token cap
goes out as `max_completion_tokens` (its reasoning models refuse `max_tokens`; every
model takes the new name); compatible servers get `max_tokens`, which they all know.

Streams are read as server-sent events until `[DONE]`: text deltas as they come, tool
call fragments joined by index, usage from the final event, then one chunk with the
whole `LLMResult`. A server that ignores `"stream": true` and answers in one JSON piece
is read as such.

Failures: error answers through `answer_error` (by status, body summarised and scrubbed),
exceptions (timeouts, connection errors, refused redirects, unreadable JSON) through
`translate_error`, so a failure reads the same as through LiteLLM. The whole call is
bounded by `timeout_s`, and so is the wait for each event of a stream.

Cost comes from LiteLLM's local price list when it knows the model; LiteLLM is imported
once, in a worker thread, and the price is worked out in one too (it takes a few hundred
microseconds of CPU).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import httpx

from core.llm.failures import answer_error, error_in_reply, translate_error
from core.llm.http import ProviderHTTP
from core.llm.transports import _litellm
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

OPENAI_API = "https://api.openai.com/v1"
_ERROR_BODY_BYTES = 64 * 1024  # enough for any error object; a bigger body is junk, dropped anyway
_UNREADABLE = (AttributeError, KeyError, IndexError, TypeError, ValueError)


@lru_cache(maxsize=512)
def _endpoint(base_url: str) -> httpx.URL:
    """The chat-completions URL under a base URL, parsed once."""
    return httpx.URL(f"{base_url.rstrip('/')}/chat/completions")


def openai_body(provider: ResolvedProvider, model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of one chat completion; parameters merged with the precedence of `litellm_arguments`."""
    body: dict[str, Any] = {k: v for k, v in provider.default_params.items() if k in PASSTHROUGH_PARAMS}
    body.update(request.params)
    for name in ("max_tokens", "temperature", "stop"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    body = {k: v for k, v in body.items() if v is not None}  # as LiteLLM: an unset parameter is not sent
    if provider.kind is ProviderKind.OPENAI and "max_tokens" in body:
        body["max_completion_tokens"] = body.pop("max_tokens")
    body["model"] = model
    body["messages"] = request.messages
    if request.tools:
        body["tools"] = request.tools
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _text(value: Any) -> str:
    """Message content as text: a string, or the text parts of a list of content parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _arguments(value: Any) -> str:
    """Tool call arguments as a JSON string (some servers send an object)."""
    return value if isinstance(value, str) else json.dumps(value) if value is not None else ""


def _tokens(usage: Any, name: str) -> int:
    return int(usage.get(name) or 0) if isinstance(usage, dict) else 0


def parse_completion(data: Any, model: str, provider: ResolvedProvider) -> LLMResult:
    """An `LLMResult` from a chat-completion answer; `ProviderCallFailed` (bad_response) if it is not one."""
    if isinstance(data, dict) and not data.get("choices") and "error" in data:
        raise error_in_reply(data, provider)
    try:
        choice = data["choices"][0]
        message = choice["message"]
        calls = [
            ToolCall(
                id=call.get("id") or "",
                name=call["function"].get("name") or "",
                arguments=_arguments(call["function"].get("arguments")) or "{}",
            )
            for call in message.get("tool_calls") or []
        ]
        usage = data.get("usage")
        return LLMResult(
            content=_text(message.get("content")),
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=_tokens(usage, "prompt_tokens"),
            completion_tokens=_tokens(usage, "completion_tokens"),
            model=model,
        )
    except _UNREADABLE as exc:
        raise ProviderCallFailed(provider.name, "bad_response", f"unreadable reply: {type(exc).__name__}") from None


@dataclass(slots=True)
class _StreamState:
    """What the events of a stream add up to."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None

    def add(self, chunk: Any) -> str:
        """Take in one `chat.completion.chunk`; returns its text delta."""
        usage = chunk.get("usage")
        if usage:
            self.prompt_tokens = _tokens(usage, "prompt_tokens") or self.prompt_tokens
            self.completion_tokens = _tokens(usage, "completion_tokens") or self.completion_tokens
        choices = chunk.get("choices")
        if not choices:
            return ""
        choice = choices[0]
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        delta = choice.get("delta") or {}
        for call in delta.get("tool_calls") or []:
            slot = self.calls.setdefault(call.get("index") or 0, {"id": "", "name": "", "arguments": ""})
            slot["id"] = call.get("id") or slot["id"]
            function = call.get("function") or {}
            slot["name"] = function.get("name") or slot["name"]
            slot["arguments"] += _arguments(function.get("arguments"))
        content = _text(delta.get("content"))
        if content:
            self.text.append(content)
        return content

    def result(self, model: str) -> LLMResult:
        return LLMResult(
            content="".join(self.text),
            tool_calls=[ToolCall(c["id"], c["name"], c["arguments"] or "{}") for _, c in sorted(self.calls.items())],
            finish_reason=self.finish_reason,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            model=model,
        )


async def _next_event(lines: AsyncIterator[str]) -> str | None:
    """The data of the next server-sent event (its `data:` lines joined), or None at the end of the stream."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                return "\n".join(data)
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # event:, id:, retry: and comments (keep-alives) carry nothing a completion needs
    return "\n".join(data) if data else None


async def _error_body(response: httpx.Response) -> bytes:
    """The start of an error answer's body, at most `_ERROR_BODY_BYTES`."""
    body = bytearray()
    async for part in response.aiter_bytes():
        body += part
        if len(body) >= _ERROR_BODY_BYTES:
            break
    return bytes(body[:_ERROR_BODY_BYTES])


def _priced(litellm: Any, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            custom_llm_provider="openai",
        )
    except Exception:  # a price LiteLLM cannot work out: cost is then simply not known
        return None
    return float(prompt_cost + completion_cost) or None


class OpenAIHTTPTransport:
    """The `openai` and `openai_compatible` kinds over httpx, on connections that refuse redirects."""

    def __init__(self, http: ProviderHTTP | None = None) -> None:
        self._http = http or ProviderHTTP()
        self._litellm: Any = None

    async def aclose(self) -> None:
        """Close the connection pool of the running event loop."""
        await self._http.aclose()

    async def complete(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> LLMResult:
        outgoing = self._request(provider, model, request, timeout_s, stream=False)
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._send(provider, outgoing)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
        except ProviderCallFailed:
            raise
        except Exception as exc:  # every failure becomes a scrubbed ProviderCallFailed
            raise translate_error(exc, provider) from None
        result = parse_completion(self._json(content, provider), model, provider)
        result.cost_usd = await self._cost(result)
        return result

    async def stream(
        self, provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        outgoing = self._request(provider, model, request, timeout_s, stream=True)
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._send(provider, outgoing)
        except ProviderCallFailed:
            raise
        except Exception as exc:  # every failure becomes a scrubbed ProviderCallFailed
            raise translate_error(exc, provider) from None
        # httpx declares an AsyncIterator; it is an async generator, closed here rather than left to the GC
        lines = cast(AsyncGenerator[str, None], response.aiter_lines())
        try:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                result = await self._whole_answer(provider, model, response, timeout_s)
                if result.content:
                    yield StreamChunk(delta=result.content)
            else:
                state = _StreamState()
                while True:
                    try:
                        async with asyncio.timeout(timeout_s):  # idle time between events; never around a yield
                            data = await _next_event(lines)
                    except Exception as exc:  # idle timeout, dropped connection
                        raise translate_error(exc, provider) from None
                    if data is None or data.strip() == "[DONE]":
                        break
                    chunk = self._json(data, provider)
                    if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
                        raise error_in_reply(chunk, provider)
                    try:
                        delta = state.add(chunk)
                    except _UNREADABLE as exc:
                        raise ProviderCallFailed(
                            provider.name, "bad_response", f"unreadable stream event: {type(exc).__name__}"
                        ) from None
                    if delta:
                        yield StreamChunk(delta=delta)
                result = state.result(model)
            result.cost_usd = await self._cost(result)
            yield StreamChunk(result=result)
        finally:
            await lines.aclose()
            await response.aclose()

    # -- steps ---------------------------------------------------------------------------

    @staticmethod
    def _request(
        provider: ResolvedProvider, model: str, request: ChatRequest, timeout_s: float, *, stream: bool
    ) -> httpx.Request:
        try:
            body = openai_body(provider, model, request, stream=stream)
            content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise ProviderCallFailed(
                provider.name, "bad_request", f"the request cannot be sent as JSON: {type(exc).__name__}"
            ) from None
        # what the OpenAI SDK sends (`accept` included, for streams too), so servers see a familiar request
        headers = {"content-type": "application/json", "accept": "application/json", "user-agent": "crewcanvas"}
        if provider.api_key:
            headers["authorization"] = f"Bearer {provider.api_key}"
        timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        return httpx.Request(
            "POST",
            _endpoint(provider.base_url or OPENAI_API),
            headers=headers,
            content=content,
            extensions={"timeout": timeouts},
        )

    async def _send(self, provider: ResolvedProvider, outgoing: httpx.Request) -> httpx.Response:
        """Send through the running loop's pool; an error answer is read (capped) and raised."""
        response = await self._http.transport().handle_async_request(outgoing)
        if response.is_success:
            return response
        try:
            body = await _error_body(response)
        finally:
            await response.aclose()
        raise answer_error(response.status_code, body, provider)

    async def _whole_answer(
        self, provider: ResolvedProvider, model: str, response: httpx.Response, timeout_s: float
    ) -> LLMResult:
        """A stream request answered in one JSON piece (the server ignored `stream`)."""
        try:
            async with asyncio.timeout(timeout_s):
                content = await response.aread()
        except Exception as exc:  # timeout, dropped connection
            raise translate_error(exc, provider) from None
        return parse_completion(self._json(content, provider), model, provider)

    @staticmethod
    def _json(content: bytes | str, provider: ResolvedProvider) -> Any:
        try:
            return json.loads(content)
        except (ValueError, RecursionError) as exc:
            raise translate_error(exc, provider) from None

    async def _cost(self, result: LLMResult) -> float | None:
        """The call's price from LiteLLM's local price list, if it knows the model; else None."""
        if not (result.prompt_tokens or result.completion_tokens):
            return None
        if self._litellm is None:
            self._litellm = await asyncio.to_thread(_litellm)
        if result.model not in self._litellm.model_cost:
            return None
        return await asyncio.to_thread(
            _priced, self._litellm, result.model, result.prompt_tokens, result.completion_tokens
        )
