"""Requests, results and errors of LLM calls.

LLMError (CoreError)
├── ProviderCallFailed   one provider failed (after its retries); `kind` says how
└── AllProvidersFailed   every provider in the chain failed; names each (BackendUnavailable)
UnsafeEndpoint (InvalidInput)   a tenant's base URL points at a private or loopback address
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.errors import BackendUnavailable, CoreError, InvalidInput


class ProviderKind(StrEnum):
    """The kinds of LLM provider a tenant can configure."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    AZURE = "azure"
    OLLAMA = "ollama"
    OPENAI_COMPATIBLE = "openai_compatible"
    LOCAL = "local"


# Parameters a caller or a provider's defaults may set. Everything that could redirect
# the request (api_base, base_url, api_key, headers, ...) is deliberately absent.
PASSTHROUGH_PARAMS = frozenset(
    {
        "temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty",
        "frequency_penalty", "response_format", "user", "logit_bias", "parallel_tool_calls",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResolvedProvider:
    """A provider record with its decrypted credential: lives only inside the LLM path."""

    id: uuid.UUID
    name: str
    kind: ProviderKind
    base_url: str | None
    models: list[str]
    default_params: dict[str, Any]
    api_key: str | None = field(repr=False)
    fallback_id: uuid.UUID | None = None
    enabled: bool = True
    rpm_limit: int | None = None
    tpm_limit: int | None = None

    def model_for(self, requested: str | None, *, strict: bool = True) -> str:
        """The model to call: the requested one if offered (any, when none are listed), else the first.

        `strict`: refuse a requested model this provider does not offer (a fallback instead
        answers with its own first model).
        """
        if requested and (requested in self.models or (not self.models and self.kind is not ProviderKind.LOCAL)):
            return requested
        if requested and strict and self.kind is not ProviderKind.LOCAL:
            raise InvalidInput(f"provider {self.name!r} does not offer model {requested!r}; add it to its models")
        if not self.models:
            raise InvalidInput(f"provider {self.name!r} lists no models; add one, or name the model in the request")
        return self.models[0]


@dataclass(slots=True)
class ChatRequest:
    """One chat completion request, in OpenAI message format."""

    messages: list[dict[str, Any]]
    model: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] | None = None
    timeout_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Refuse parameters that may not be set per request (endpoints, keys, headers)."""
        if not self.messages:
            raise InvalidInput("a chat request needs at least one message")
        refused = sorted(set(self.params) - PASSTHROUGH_PARAMS)
        if refused:
            raise InvalidInput(
                f"parameter(s) {', '.join(refused)} cannot be set per request; "
                "endpoints and keys come from the provider's configuration"
            )
        for tool in self.tools or []:
            if tool.get("type") != "function":
                raise InvalidInput("only function tools are supported: each tool needs type 'function'")

    def estimated_prompt_tokens(self) -> int:
        """A cheap upper-ish estimate (4 characters per token) for token budgets."""
        chars = sum(len(str(m.get("content") or "")) for m in self.messages)
        return chars // 4 + 1


@dataclass(frozen=True, slots=True)
class CallMeta:
    """Where a call comes from, for usage records."""

    execution_id: uuid.UUID | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class LLMResult:
    """What a call produced, and who produced it."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    model: str = ""
    provider_id: uuid.UUID | None = None
    provider_name: str = ""
    provider_kind: str = ""


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A piece of a streamed answer; the last chunk carries the whole `result`."""

    delta: str = ""
    result: LLMResult | None = None


class LLMError(CoreError):
    """Root of the LLM call errors."""


class UnsafeEndpoint(InvalidInput):
    """A base URL resolves to an address tenants may not reach."""


# How a provider failed; the transient ones are retried before failing over.
RETRYABLE = frozenset({"rate_limited", "server_error", "timeout", "connection"})


class ProviderCallFailed(LLMError):
    """One provider failed. `kind`: auth, rate_limited, server_error, timeout, connection, bad_request, bad_response."""

    def __init__(self, provider: str, kind: str, detail: str, status: int | None = None) -> None:
        status_text = f" (HTTP {status})" if status else ""
        super().__init__(f"provider {provider!r} failed: {kind}{status_text}: {detail}")
        self.provider = provider
        self.kind = kind
        self.status = status
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class AllProvidersFailed(LLMError, BackendUnavailable):
    """Every provider in the chain failed; the message names each and why."""

    def __init__(self, failures: list[ProviderCallFailed]) -> None:
        names = "; ".join(str(f) for f in failures)
        super().__init__(f"the LLM call failed on every provider: {names}. Check the providers' keys and endpoints")
        self.failures = failures


_KEYLIKE = re.compile(r"\b(sk|pk|rk|key|api|token|bearer)[-_][A-Za-z0-9_\-]{8,}", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]{8,}", re.IGNORECASE)


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every given secret and anything key-shaped replaced by `[redacted]`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _BEARER.sub(r"\1[redacted]", text)
    return _KEYLIKE.sub("[redacted]", text)
