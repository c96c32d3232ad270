"""How a remote provider call failed, told briefly: LiteLLM/HTTP exceptions into `ProviderCallFailed`.

What reaches the workspace admin (the provider test, chat errors, usage records) is a
summary, never the provider's raw answer: the kind of failure, the HTTP status, and for
an error answer in one of the usual JSON shapes its `type`, `message` and `code` fields,
each capped, with anything key-shaped redacted. Error bodies can carry internal host
names, request dumps or an echo of the key; the rest of the body is dropped.

Usual shapes: OpenAI, Azure and Anthropic `{"error": {"type", "message", "code"}}`;
Ollama `{"error": "..."}`; vLLM and others `{"message": "...", "type": ...}`; FastAPI
servers `{"detail": "..."}`.

`translate_error` reads exceptions (LiteLLM's, httpx's, timeouts); `answer_error` reads an
error answer our own HTTP transport received (`openai_http.py`), classified by status
the way LiteLLM classifies it, so both transports report a failure alike.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

from core.llm.types import ProviderCallFailed, ResolvedProvider, scrub

_MESSAGE_CHARS = 200
_FIELD_CHARS = 60
_CONTROL = re.compile(r"\s+")


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps (LiteLLM keeps the original in `original_exception`)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 12:
        chain.append(current)
        wrapped = getattr(current, "original_exception", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__ or current.__context__
    return chain


def _short(value: Any, limit: int) -> str:
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


def error_fields(body: Any) -> dict[str, str] | None:
    """`type`, `message`, `code` of an error answer in one of the usual shapes, capped; else None."""
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        fields = inner
    elif isinstance(inner, str):
        fields = {"message": inner}
    elif isinstance(body.get("message"), str):
        fields = body  # an SDK hands over the inner object, or a vLLM-style top-level error
    elif isinstance(body.get("detail"), str):
        fields = {"message": body["detail"]}  # servers built on FastAPI
    else:
        return None
    found: dict[str, str] = {}
    for name, limit in (("type", _FIELD_CHARS), ("message", _MESSAGE_CHARS), ("code", _FIELD_CHARS)):
        value = fields.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            found[name] = _short(value, limit)
    return found if "message" in found else None


def _json_in(text: str) -> Any:
    """The first JSON object inside `text` (LiteLLM puts the body after a prefix), or None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(5):
        if start < 0:
            return None
        try:
            return decoder.raw_decode(text, start)[0]
        except ValueError:
            start = text.find("{", start + 1)
    return None


def _body_fields(causes: list[BaseException]) -> dict[str, str] | None:
    """The error fields of the provider's answer, from whichever wrapped exception still holds it."""
    import httpx

    for cause in causes:
        response = getattr(cause, "response", None)
        if isinstance(response, httpx.Response):
            try:
                fields = error_fields(json.loads(response.content)) if response.content else None
            except (httpx.ResponseNotRead, ValueError):  # a stream not read, or not JSON
                fields = None
            if fields:
                return fields
        fields = error_fields(getattr(cause, "body", None))
        if fields:
            return fields
    for cause in causes:
        message = getattr(cause, "message", None)
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        for text in (message, str(cause)):
            if isinstance(text, str) and "{" in text:
                fields = error_fields(_json_in(text[:20_000]))
                if fields:
                    return fields
    return None


def described(fields: dict[str, str]) -> str:
    """Error fields (from `error_fields`) in a line: `type: message (code c)`."""
    head = f"{fields['type']}: " if "type" in fields else ""
    code = f" (code {fields['code']})" if "code" in fields and fields["code"] != fields.get("type") else ""
    return f"{head}{fields['message']}{code}"


_NO_ANSWER = "the provider did not answer in time"


def _summary(kind: str, status: int | None, causes: list[BaseException]) -> str:
    """What went wrong, in a line, without the provider's raw answer."""
    import httpx

    fields = _body_fields(causes) if status is not None else None
    if fields:
        return described(fields)
    if status is not None:
        return f"the provider answered HTTP {status} without a readable error message"
    if kind == "timeout":
        return _NO_ANSWER
    if kind == "connection":
        failed = next(c for c in causes if isinstance(c, httpx.TransportError | OSError))
        return f"the connection to the provider failed ({type(failed).__name__}: {_short(failed, 120)})"
    root = next((c for c in causes if isinstance(c, _UNREADABLE)), causes[-1])
    return f"the provider's answer could not be read ({type(root).__name__})"


# What LiteLLM raises, deep inside, when an answer does not parse (it then reports a made-up status).
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, IndexError, StopIteration)


def _litellm_error(name: str) -> tuple[type[BaseException], ...]:
    """LiteLLM's exception class `name`, when LiteLLM is loaded: only its own calls raise them, after importing it."""
    found = getattr(sys.modules.get("litellm"), name, None)
    return (found,) if isinstance(found, type) and issubclass(found, BaseException) else ()


def translate_error(exc: BaseException, provider: ResolvedProvider) -> ProviderCallFailed:
    """A LiteLLM/HTTP failure as a `ProviderCallFailed` with a short, redacted summary."""
    import httpx

    from core.llm.http import RedirectRefused

    causes = _causes(exc)
    redirect = next((c for c in causes if isinstance(c, RedirectRefused)), None)
    if redirect is not None:
        return ProviderCallFailed(provider.name, "redirect", str(redirect), redirect.status)
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    text = " ".join(str(c) for c in causes).lower()
    answered = any(isinstance(c, httpx.HTTPStatusError) for c in causes)
    timeouts = (asyncio.TimeoutError, httpx.TimeoutException, *_litellm_error("Timeout"))
    if any(isinstance(c, timeouts) for c in causes) or ("timeout" in text or "timed out" in text):
        kind, status = "timeout", None
    elif isinstance(exc, _litellm_error("AuthenticationError") + _litellm_error("PermissionDeniedError")) or (
        status in {401, 403}
    ):
        kind = "auth"
    elif isinstance(exc, _litellm_error("RateLimitError")) or status == 429:
        kind = "rate_limited"
    elif any(isinstance(c, httpx.TransportError | OSError) for c in causes) and status in {None, 500}:
        kind, status = "connection", None
    elif not answered and any(isinstance(c, _UNREADABLE) for c in causes):
        kind, status = "bad_response", None
    elif status is not None and status >= 500:
        kind = "server_error"
    elif isinstance(exc, _litellm_error("BadRequestError")) or (status is not None and 400 <= status < 500):
        kind = "bad_request"
    else:
        kind = "bad_response"
    detail = scrub(_summary(kind, status, causes), provider.api_key)
    return ProviderCallFailed(provider.name, kind, detail, status)


# LiteLLM reports these answers as timeouts (retried, no status); `answer_error` does the same.
_TIMEOUT_STATUSES = frozenset({408, 504})


def answer_error(status: int, content: bytes, provider: ResolvedProvider) -> ProviderCallFailed:
    """An error answer (HTTP `status`, body `content`) as a `ProviderCallFailed`: classified by status alone.

    Unlike `translate_error`, words in the body ("timeout" in a 400's message) do not
    change the kind: the status is what the provider meant.
    """
    if status in _TIMEOUT_STATUSES:
        return ProviderCallFailed(provider.name, "timeout", _NO_ANSWER)
    if status in {401, 403}:
        kind = "auth"
    elif status == 429:
        kind = "rate_limited"
    elif status >= 500:
        kind = "server_error"
    elif status >= 400:
        kind = "bad_request"
    else:
        kind = "bad_response"
    try:
        fields = error_fields(json.loads(content)) if content else None
    except (ValueError, RecursionError):  # not JSON (an HTML error page, a cut-off body)
        fields = None
    detail = described(fields) if fields else f"the provider answered HTTP {status} without a readable error message"
    return ProviderCallFailed(provider.name, kind, scrub(detail, provider.api_key), status)


def error_in_reply(body: Any, provider: ResolvedProvider) -> ProviderCallFailed:
    """A successful answer (or stream event) that carries an error object where the reply should be."""
    fields = error_fields(body)
    if fields is None:
        return ProviderCallFailed(provider.name, "bad_response", "unreadable reply: no choices")
    detail = scrub(f"the provider answered with an error instead of a reply: {described(fields)}", provider.api_key)
    return ProviderCallFailed(provider.name, "server_error", detail)
