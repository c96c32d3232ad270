"""`/api/providers`: LLM provider records (admins manage, members list), their test, usage; `/api/llm/chat`.

Keys go in, never out: responses carry `credential_hint` (`sk-...9f2c`) only. Bodies are
validated by core (`parse_input`) so a rejected body is never echoed back with its key.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse

from api.deps import CurrentContext, ServicesDep
from core.errors import CoreError, InvalidInput
from core.llm.types import ChatRequest, ProviderKind, StreamChunk
from core.providers import KIND_LABELS, LOCAL_NOTE, ProviderFields, ProviderInput, parse_input

router = APIRouter(tags=["providers"])
log = logging.getLogger(__name__)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object. Unlike FastAPI's own validation errors, ours never
    repeat the body back: it may hold an API key."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("the request body is not valid JSON; send a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"the request body must be a JSON object, not a {type(body).__name__}")
    return body


JsonBody = Annotated[dict[str, Any], Depends(json_object)]


@router.get("/api/providers", summary="List the tenant's LLM providers (any member)")
async def list_providers(ctx: CurrentContext, services: ServicesDep) -> list[dict[str, Any]]:
    return [asdict(v) for v in await services.llm_stack.providers.list(ctx)]


@router.get("/api/providers/kinds", summary="The provider kinds that can be configured")
async def provider_kinds() -> list[dict[str, str]]:
    return [
        {"kind": str(kind), "label": KIND_LABELS[kind], "note": LOCAL_NOTE if kind is ProviderKind.LOCAL else ""}
        for kind in ProviderKind
    ]


@router.post("/api/providers", status_code=201, summary="Add a provider (admins)")
async def create_provider(ctx: CurrentContext, services: ServicesDep, body: JsonBody) -> dict[str, Any]:
    view = await services.llm_stack.providers.create(ctx, parse_input(ProviderInput, body))
    return asdict(view)


@router.get("/api/providers/{provider_id}", summary="One provider")
async def get_provider(provider_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    return asdict(await services.llm_stack.providers.get(ctx, provider_id))


@router.patch("/api/providers/{provider_id}", summary="Edit, enable or disable a provider (admins)")
async def update_provider(
    provider_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep, body: JsonBody
) -> dict[str, Any]:
    view = await services.llm_stack.providers.update(ctx, provider_id, parse_input(ProviderFields, body))
    return asdict(view)


@router.delete("/api/providers/{provider_id}", status_code=204, summary="Delete a provider (admins)")
async def delete_provider(provider_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.llm_stack.providers.delete(ctx, provider_id)
    return Response(status_code=204)


@router.post("/api/providers/{provider_id}/test", summary="Send a 1-token request; latency or the provider's error")
async def test_provider(provider_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    return asdict(await services.llm_stack.llm.test_provider(ctx, provider_id))


@router.get("/api/usage", summary="The tenant's newest LLM usage records (admins)")
async def recent_usage(
    ctx: CurrentContext, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    return [asdict(e) for e in await services.llm_stack.llm.recent_usage(ctx, limit)]


@router.get("/api/usage/daily", summary="The tenant's LLM usage totals for one UTC day (admins)")
async def daily_usage(ctx: CurrentContext, services: ServicesDep, day: date | None = None) -> dict[str, Any]:
    totals = await services.llm_stack.llm.daily_usage(ctx, day or datetime.now(UTC).date())
    return asdict(totals)


def _chat_request(body: dict[str, Any]) -> tuple[ChatRequest, uuid.UUID | None, bool]:
    allowed = {"messages", "model", "provider_id", "tools", "tool_choice", "max_tokens", "temperature", "stop"}
    unknown = sorted(set(body) - allowed - {"stream", "params"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InvalidInput("messages must be a list of {role, content} objects")
    try:
        provider_id = uuid.UUID(str(body["provider_id"])) if body.get("provider_id") else None
        request = ChatRequest(
            messages=messages,
            model=body.get("model"),
            tools=body.get("tools"),
            tool_choice=body.get("tool_choice"),
            max_tokens=int(body["max_tokens"]) if body.get("max_tokens") is not None else None,
            temperature=float(body["temperature"]) if body.get("temperature") is not None else None,
            stop=body.get("stop"),
            params=dict(body.get("params") or {}),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid chat request: {exc}") from None
    return request, provider_id, bool(body.get("stream"))


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


@router.post("/api/llm/chat", summary="One chat completion through the tenant's providers (editors)")
async def chat(ctx: CurrentContext, services: ServicesDep, body: JsonBody) -> Any:
    request, provider_id, stream = _chat_request(body)
    llm = services.llm_stack.llm
    if not stream:
        return asdict(await llm.complete(ctx, request, provider_id=provider_id))
    chunks = aiter(llm.stream(ctx, request, provider_id=provider_id))
    first = await anext(chunks)  # errors before the first chunk answer with a status code
    return StreamingResponse(_sse(_prepend(first, chunks)), media_type="text/event-stream")


async def _prepend(first: StreamChunk, rest: AsyncIterator[StreamChunk]) -> AsyncIterator[StreamChunk]:
    yield first
    async for chunk in rest:
        yield chunk
