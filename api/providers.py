"""`/api/providers`: LLM provider records (admins manage, members list), their test, usage; `/api/llm/chat`.

Keys go in, never out: responses carry `credential_hint` (`sk-...9f2c`) only, and a
rejected body is never echoed back (`api.errors` leaves the submitted values out of
every 422), so a key in a wrong body does not come back either.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response, StreamingResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from api.deps import CurrentContext, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.fields import ShortLine
from core.errors import CoreError
from core.llm.service import ProviderTestResult
from core.llm.types import ChatRequest, LLMResult, ProviderKind, StreamChunk
from core.providers import KIND_LABELS, LOCAL_NOTE, ModelId, ProviderFields, ProviderInput, ProviderView
from core.text import Code, JsonObject
from core.usage import UsageEntry, UsageTotals

router = APIRouter(tags=["providers"])
log = logging.getLogger(__name__)
_TENANT = responses(*IN_TENANT)

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("must be a day written YYYY-MM-DD, e.g. 2026-11-30")
    return value


def _before_the_last_day(day: date) -> date:
    if day == date.max:  # the day after it, where its totals end, does not exist
        raise ValueError("must be a day before 9999-12-31")
    return day


#: A UTC day as `YYYY-MM-DD` only (pydantic alone would take `0` as 1970-01-01).
IsoDay = Annotated[date, BeforeValidator(_iso_day), AfterValidator(_before_the_last_day)]


class KindOut(BaseModel):
    """A kind of provider that can be configured."""

    kind: ProviderKind
    label: str
    note: str


class ChatMessage(BaseModel):
    """One message in OpenAI's chat format."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    # Prompts may be as long as source code (documents pasted in), with the same rules.
    content: Code | Annotated[list[JsonObject], Field(max_length=100)] | None = Field(
        default=None, description="Text, or a list of content parts."
    )
    name: ShortLine | None = None
    tool_calls: Annotated[list[JsonObject], Field(max_length=128)] | None = None
    tool_call_id: ShortLine | None = None


class ChatBody(BaseModel):
    """One chat completion: the messages, and optionally which provider and model."""

    model_config = ConfigDict(extra="forbid")

    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=1000)]
    model: ModelId | None = Field(default=None, description="Default: the provider's first model.")
    provider_id: uuid.UUID | None = Field(default=None, description="Default: the tenant's oldest enabled provider.")
    tools: Annotated[list[JsonObject], Field(max_length=128)] | None = Field(
        default=None, description="Function tools in OpenAI's format (`type: function`)."
    )
    tool_choice: ShortLine | JsonObject | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    stop: ShortLine | Annotated[list[ShortLine], Field(max_length=16)] | None = None
    stream: bool = Field(default=False, description="Answer with server-sent events: `data: {delta}`, then `result`.")
    params: JsonObject = Field(default_factory=dict, description="More parameters (top_p, seed, response_format, ...).")

    def request(self) -> ChatRequest:
        """The core request this body asks for."""
        return ChatRequest(
            messages=[m.model_dump(exclude_none=True) for m in self.messages],
            model=self.model,
            tools=self.tools,
            tool_choice=self.tool_choice,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            stop=[self.stop] if isinstance(self.stop, str) else self.stop,
            params=dict(self.params),
        )


@router.get("/api/providers", summary="List the tenant's LLM providers (any member)", responses=_TENANT)
async def list_providers(ctx: CurrentContext, services: ServicesDep) -> list[ProviderView]:
    return await services.llm_stack.providers.list(ctx)


@router.get("/api/providers/kinds", summary="The provider kinds that can be configured")
async def provider_kinds() -> list[KindOut]:
    return [
        KindOut(kind=kind, label=KIND_LABELS[kind], note=LOCAL_NOTE if kind is ProviderKind.LOCAL else "")
        for kind in ProviderKind
    ]


@router.post(
    "/api/providers",
    status_code=201,
    summary="Add a provider (admins)",
    responses=_TENANT | responses(*BODY_ERRORS, 409),
)
async def create_provider(body: ProviderInput, ctx: CurrentContext, services: ServicesDep) -> ProviderView:
    return await services.llm_stack.providers.create(ctx, body)


@router.get("/api/providers/{provider_id}", summary="One provider", responses=_TENANT)
async def get_provider(provider_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> ProviderView:
    return await services.llm_stack.providers.get(ctx, provider_id)


@router.patch(
    "/api/providers/{provider_id}",
    summary="Edit, enable or disable a provider (admins)",
    responses=_TENANT | responses(*BODY_ERRORS, 409),
)
async def update_provider(
    provider_id: uuid.UUID, body: ProviderFields, ctx: CurrentContext, services: ServicesDep
) -> ProviderView:
    return await services.llm_stack.providers.update(ctx, provider_id, body)


@router.delete("/api/providers/{provider_id}", status_code=204, summary="Delete a provider (admins)", responses=_TENANT)
async def delete_provider(provider_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.llm_stack.providers.delete(ctx, provider_id)
    return Response(status_code=204)


@router.post(
    "/api/providers/{provider_id}/test",
    summary="Send a 1-token request; latency or the provider's error",
    responses=_TENANT,
)
async def test_provider(provider_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> ProviderTestResult:
    return await services.llm_stack.llm.test_provider(ctx, provider_id)


@router.get("/api/usage", summary="The tenant's newest LLM usage records (admins)", responses=_TENANT)
async def recent_usage(
    ctx: CurrentContext, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[UsageEntry]:
    return await services.llm_stack.llm.recent_usage(ctx, limit)


@router.get("/api/usage/daily", summary="The tenant's LLM usage totals for one UTC day (admins)", responses=_TENANT)
async def daily_usage(
    ctx: CurrentContext,
    services: ServicesDep,
    day: Annotated[IsoDay | None, Query(description="YYYY-MM-DD (default: today, UTC).")] = None,
) -> UsageTotals:
    return await services.llm_stack.llm.daily_usage(ctx, day or datetime.now(UTC).date())


async def _sse(chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            if chunk.result is not None:
                payload = jsonable_encoder(asdict(chunk.result))
                yield f"event: result\ndata: {json.dumps(payload)}\n\n".encode()
            elif chunk.delta:
                yield f"data: {json.dumps({'delta': chunk.delta})}\n\n".encode()
    except CoreError as exc:
        yield f"event: error\ndata: {json.dumps({'detail': str(exc), 'error': type(exc).__name__})}\n\n".encode()
    except Exception as exc:  # the status line is sent: the client learns of the failure here, or never
        log.error("a chat stream failed: %s", type(exc).__name__)
        detail = "the stream failed on the server; try again, and tell the operator if it keeps failing"
        yield f"event: error\ndata: {json.dumps({'detail': detail, 'error': 'InternalError'})}\n\n".encode()


_STREAMED = {"text/event-stream": {"schema": {"type": "string"}}}


@router.post(
    "/api/llm/chat",
    summary="One chat completion through the tenant's providers (editors)",
    response_model=LLMResult,
    responses={200: {"content": _STREAMED, "description": "The answer, or with `stream` its events."}}
    | _TENANT
    | responses(*BODY_ERRORS, 429, 503),
)
async def chat(body: ChatBody, ctx: CurrentContext, services: ServicesDep) -> Any:
    request = body.request()
    llm = services.llm_stack.llm
    if not body.stream:
        return await llm.complete(ctx, request, provider_id=body.provider_id)
    chunks = aiter(llm.stream(ctx, request, provider_id=body.provider_id))
    first = await anext(chunks, None)  # errors before the first chunk answer with a status code
    return StreamingResponse(_sse(_prepend(first, chunks)), media_type="text/event-stream")


async def _prepend(first: StreamChunk | None, rest: AsyncIterator[StreamChunk]) -> AsyncIterator[StreamChunk]:
    if first is not None:  # a stream may end before its first chunk
        yield first
    async for chunk in rest:
        yield chunk
