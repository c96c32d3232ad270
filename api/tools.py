"""`/api/tools/*`: the API twin of the Tools page (records, starter templates, Try-it runs).

A run that misbehaves (timeout, memory, output_limit, crashed, refused) is a normal
200 answer whose `reason` says why; 503 means the sandbox itself cannot run tools.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentContext, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from core.text import JsonObject
from core.tools import SandboxStatus, ToolKind, ToolRunReport, ToolSpec, ToolView, starter_spec

router = APIRouter(prefix="/api/tools", tags=["tools"], responses=responses(*IN_TENANT))


class TryRequest(BaseModel):
    """Arguments for one run of a saved tool."""

    model_config = ConfigDict(extra="forbid")

    input: JsonObject = Field(default_factory=dict, description="Keyword arguments, checked against the schema.")


class DraftTryRequest(TryRequest):
    """An unsaved tool (what an editor holds) and the arguments to run it with."""

    tool: ToolSpec


class Starter(BaseModel):
    """A new tool that runs as it is, and an input that satisfies its schema."""

    tool: ToolSpec
    input: dict[str, Any]


@router.get("", summary="The tenant's tools (viewer)")
async def list_tools(ctx: CurrentContext, services: ServicesDep) -> list[ToolView]:
    return await services.tools.list(ctx)


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create a tool (editor)", responses=responses(*BODY_ERRORS, 409)
)
async def create_tool(body: ToolSpec, ctx: CurrentContext, services: ServicesDep) -> ToolView:
    return await services.tools.create(ctx, body)


@router.get("/starter", summary="A starter tool of the given kind, with an example input")
async def starter(ctx: CurrentContext, services: ServicesDep, kind: ToolKind = Query(default="python")) -> Starter:
    spec = starter_spec(kind)
    return Starter(tool=spec, input=services.tools.example_input(spec))


@router.get("/sandbox", summary="Which sandbox runs tools, and whether it can isolate here")
async def sandbox_status(ctx: CurrentContext, services: ServicesDep) -> SandboxStatus:
    return await services.tools.sandbox_status()


@router.post("/try", summary="Run an unsaved tool once in the sandbox (editor)", responses=responses(*BODY_ERRORS, 503))
async def try_draft(body: DraftTryRequest, ctx: CurrentContext, services: ServicesDep) -> ToolRunReport:
    return await services.tools.try_draft(ctx, body.tool, body.input)


@router.get("/{tool_id}", summary="One tool (viewer)")
async def get_tool(tool_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> ToolView:
    return await services.tools.get(ctx, tool_id)


@router.put("/{tool_id}", summary="Replace a tool (editor)", responses=responses(*BODY_ERRORS, 409))
async def update_tool(tool_id: uuid.UUID, body: ToolSpec, ctx: CurrentContext, services: ServicesDep) -> ToolView:
    return await services.tools.update(ctx, tool_id, body)


@router.delete("/{tool_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a tool (editor)")
async def delete_tool(tool_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.tools.delete(ctx, tool_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{tool_id}/try", summary="Run a saved tool once in the sandbox (editor)", responses=responses(*BODY_ERRORS, 503)
)
async def try_tool(tool_id: uuid.UUID, body: TryRequest, ctx: CurrentContext, services: ServicesDep) -> ToolRunReport:
    return await services.tools.try_tool(ctx, tool_id, body.input)
