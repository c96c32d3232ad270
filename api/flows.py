"""`/api/flows/*`: flows and their versions, validation, diff, restore, export/import, and starting runs.

Viewers read; editors create, save and run (checked in the services). A document that
is not a flow document at all is a 422 (`FlowInvalid`, problems naming node and field);
a well-formed document with problems is saved, and its problems come back with it.
Running refuses a version with problems with the same 422.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentContext, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.sse import event_stream
from core.flow_store import FlowRecord, VersionRecord, VersionSummary
from core.text import JsonObject, Line, Name, Text
from executor.document import Id, Json
from executor.errors import FlowProblem
from executor.flows import SavedVersion
from executor.reuse import RunOptions

router = APIRouter(prefix="/api/flows", tags=["flows"], responses=responses(*IN_TENANT))
types_router = APIRouter(prefix="/api/node-types", tags=["flows"], responses=responses(*IN_TENANT))

#: Version numbers are INTEGER columns: a larger number must be a 422, not a database error.
MAX_VERSION = 2**31 - 1
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION)]


class ProblemView(BaseModel):
    """One thing that stops a flow from running."""

    node_id: str | None = Field(description="The node it concerns; null for the flow as a whole.")
    field: str
    message: str


class FlowView(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class VersionView(BaseModel):
    """One immutable version; `document` is left out of lists."""

    id: uuid.UUID
    flow_id: uuid.UUID
    version: int
    message: str
    created_by: uuid.UUID | None
    created_at: datetime
    document: dict[str, Any] | None = None


class SavedView(BaseModel):
    """A stored version and what would stop it from running (empty: it can run)."""

    version: VersionView
    valid: bool
    problems: list[ProblemView]


class CreateFlow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Text = ""
    document: JsonObject | None = Field(default=None, description="The first version; a starter flow when left out.")


class RenameFlow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Text | None = None


class SaveVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: JsonObject
    expected_version: int | None = Field(
        default=None, ge=0, description="The version this edit started from; 409 if someone saved since."
    )
    message: Line = ""


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: JsonObject
    flow_id: uuid.UUID | None = Field(default=None, description="The flow it belongs to (to catch recursion).")


class Validation(BaseModel):
    valid: bool
    problems: list[ProblemView]


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: JsonObject = Field(default_factory=dict, description="Values for the flow's declared inputs.")
    version: int | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="The version to run; the latest when left out."
    )
    from_node: Id | None = Field(
        default=None, description="Run this node and what depends on it, reusing the other nodes' stored outputs."
    )
    reuse_execution: uuid.UUID | None = Field(
        default=None, description="The run whose outputs `from_node` reuses; the flow's latest run when left out."
    )
    overrides: dict[Id, Json] = Field(
        default_factory=dict, max_length=100, description="Outputs used instead of running these nodes, by node id."
    )
    use_pins: bool = Field(default=False, description="Nodes with a pinned output emit it instead of running.")
    breakpoints: list[Id] = Field(
        default_factory=list, max_length=100, description="Pause before each of these nodes (resume or step on)."
    )

    def options(self) -> RunOptions:
        return RunOptions(
            from_node=self.from_node,
            reuse_execution=self.reuse_execution,
            overrides=self.overrides,
            use_pins=self.use_pins,
            breakpoints=tuple(self.breakpoints),
        )


class RunAndWait(StartRun):
    timeout_s: float = Field(default=60, gt=0, le=3600, description="How long to wait for the outputs.")
    stream: bool = Field(default=False, description="Answer with the run's events as SSE instead of waiting.")


class RunResult(BaseModel):
    """A run that `run` waited for: its outputs once it ended, or its status at the timeout."""

    execution_id: uuid.UUID
    status: str
    outputs: dict[str, Any]
    error: str | None
    finished: bool


def _flow(record: FlowRecord) -> FlowView:
    return FlowView(**{name: getattr(record, name) for name in FlowView.model_fields})


def _version(record: VersionRecord | VersionSummary, *, with_document: bool = False) -> VersionView:
    return VersionView(
        id=record.id,
        flow_id=record.flow_id,
        version=record.version,
        message=record.message,
        created_by=record.created_by,
        created_at=record.created_at,
        document=getattr(record, "document", None) if with_document else None,
    )


def _problems(problems: list[FlowProblem]) -> list[ProblemView]:
    return [ProblemView(node_id=p.node_id, field=p.field, message=p.message) for p in problems]


def _saved(saved: SavedVersion) -> SavedView:
    return SavedView(
        version=_version(saved.version, with_document=True),
        valid=not saved.problems,
        problems=_problems(saved.problems),
    )


@types_router.get("", summary="Every node type: metadata, handles and the JSON schema of its data")
async def node_types(ctx: CurrentContext, services: ServicesDep) -> list[dict[str, Any]]:
    return services.registry.describe()


@router.get("", summary="The tenant's flows (viewer)")
async def list_flows(ctx: CurrentContext, services: ServicesDep) -> list[FlowView]:
    return [_flow(flow) for flow in await services.flows.list(ctx)]


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create a flow (editor)", responses=responses(*BODY_ERRORS, 409)
)
async def create_flow(body: CreateFlow, ctx: CurrentContext, services: ServicesDep) -> SavedView:
    return _saved(await services.flows.create(ctx, body.name, body.description, body.document))


@router.post("/validate", summary="Validate an unsaved document (viewer)", responses=responses(*BODY_ERRORS))
async def validate(body: ValidateRequest, ctx: CurrentContext, services: ServicesDep) -> Validation:
    problems = await services.flows.validate(ctx, body.document, flow_id=body.flow_id)
    return Validation(valid=not problems, problems=_problems(problems))


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    summary="Create a flow from an export (editor); lists references this workspace lacks",
    responses=responses(*BODY_ERRORS, 409),
)
async def import_flow(body: JsonObject, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    result = await services.flows.import_(ctx, body)
    return {
        "flow": _flow(result.flow).model_dump(mode="json"),
        "version": _version(result.version, with_document=True).model_dump(mode="json"),
        "missing": result.missing,
        "problems": [p.model_dump() for p in _problems(result.problems)],
    }


@router.get("/{flow_id}", summary="One flow with its latest version (viewer)")
async def get_flow(flow_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    flow = await services.flows.get(ctx, flow_id)
    latest = await services.flows.version(ctx, flow_id)
    return {
        **_flow(flow).model_dump(mode="json"),
        "version": _version(latest, with_document=True).model_dump(mode="json"),
    }


@router.patch("/{flow_id}", summary="Rename a flow or change its description (editor)", responses=responses(409))
async def rename_flow(flow_id: uuid.UUID, body: RenameFlow, ctx: CurrentContext, services: ServicesDep) -> FlowView:
    return _flow(await services.flows.rename(ctx, flow_id, name=body.name, description=body.description))


@router.delete("/{flow_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a flow and its runs (editor)")
async def delete_flow(flow_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.flows.delete(ctx, flow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{flow_id}/versions", summary="Every version, newest first (viewer)")
async def list_versions(flow_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> list[VersionView]:
    return [_version(v) for v in await services.flows.versions(ctx, flow_id)]


@router.post(
    "/{flow_id}/versions",
    status_code=status.HTTP_201_CREATED,
    summary="Save a new version (editor)",
    responses=responses(*BODY_ERRORS, 409),
)
async def save_version(flow_id: uuid.UUID, body: SaveVersion, ctx: CurrentContext, services: ServicesDep) -> SavedView:
    saved = await services.flows.save(
        ctx, flow_id, body.document, expected_version=body.expected_version, message=body.message
    )
    return _saved(saved)


@router.get("/{flow_id}/versions/{version}", summary="One version with its document (viewer)")
async def get_version(
    flow_id: uuid.UUID, version: VersionNumber, ctx: CurrentContext, services: ServicesDep
) -> VersionView:
    return _version(await services.flows.version(ctx, flow_id, version), with_document=True)


@router.post(
    "/{flow_id}/versions/{version}/restore",
    status_code=status.HTTP_201_CREATED,
    summary="Make an earlier version the latest, as a new version (editor)",
)
async def restore_version(
    flow_id: uuid.UUID, version: VersionNumber, ctx: CurrentContext, services: ServicesDep
) -> SavedView:
    return _saved(await services.flows.restore(ctx, flow_id, version))


@router.get("/{flow_id}/diff", summary="What changed between two versions (viewer)")
async def diff_versions(
    flow_id: uuid.UUID,
    ctx: CurrentContext,
    services: ServicesDep,
    from_version: int = Query(alias="from", ge=1, le=MAX_VERSION),
    to_version: int | None = Query(
        default=None, alias="to", ge=1, le=MAX_VERSION, description="The latest when left out."
    ),
) -> dict[str, Any]:
    return await services.flows.diff(ctx, flow_id, from_version, to_version)


@router.get("/{flow_id}/export", summary="The flow as a file, with the names of what it refers to (viewer)")
async def export_flow(
    flow_id: uuid.UUID,
    ctx: CurrentContext,
    services: ServicesDep,
    version: int | None = Query(default=None, ge=1, le=MAX_VERSION),
) -> dict[str, Any]:
    return await services.flows.export(ctx, flow_id, version)


@router.post(
    "/{flow_id}/executions",
    status_code=status.HTTP_201_CREATED,
    summary="Start a run (editor), optionally from a node, with overrides, pins or breakpoints; "
    "follow it at /api/executions/{id}/stream",
    responses=responses(*BODY_ERRORS, 409),
)
async def start_execution(
    flow_id: uuid.UUID, body: StartRun, ctx: CurrentContext, services: ServicesDep
) -> dict[str, Any]:
    execution = await services.executions.start_run(
        ctx, flow_id, body.inputs, version=body.version, options=body.options()
    )
    return execution.as_dict()


@router.post(
    "/{flow_id}/run",
    summary="Run and wait for the outputs (editor), or stream the run's events with `stream: true`",
    response_model=RunResult,
    responses={
        **responses(*BODY_ERRORS, 409),
        200: {
            "description": "The outputs, or with `stream: true` the events as SSE",
            "content": {"text/event-stream": {}},
        },
    },
)
async def run_flow(flow_id: uuid.UUID, body: RunAndWait, ctx: CurrentContext, services: ServicesDep) -> Any:
    execution = await services.executions.start_run(
        ctx, flow_id, body.inputs, version=body.version, options=body.options()
    )
    if body.stream:
        return StreamingResponse(
            event_stream(services.executions, ctx, execution.id, after_seq=0, snapshot=False),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    ended = await services.executions.wait(ctx, execution.id, body.timeout_s)
    return RunResult(
        execution_id=ended.id,
        status=ended.status,
        outputs=ended.outputs,
        error=ended.error,
        finished=ended.status in {"completed", "failed", "cancelled", "interrupted"},
    )
