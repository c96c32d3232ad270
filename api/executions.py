"""`/api/executions/*`: list, read, cancel, retry and watch runs; resume, step and respond to paused ones.

Viewers read and watch; editors cancel, retry, resume and respond (checked in the services).
`?status=waiting` lists the runs that wait for someone (the inbox). Another tenant's
execution id is a 404, as for anything else in a tenant.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentContext, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.sse import event_stream
from core.text import Text
from executor.document import Json

router = APIRouter(prefix="/api/executions", tags=["executions"], responses=responses(*IN_TENANT))

#: Event seqs are INTEGER columns: a larger number must be a 422, not a database error.
MAX_SEQ = 2**31 - 1

Status = Literal["running", "waiting", "completed", "failed", "cancelled", "interrupted"]


@router.get("", summary="Runs, newest first, paged (viewer)")
async def list_executions(
    ctx: CurrentContext,
    services: ServicesDep,
    flow: uuid.UUID | None = Query(default=None, description="Only runs of this flow."),
    status: Status | None = Query(default=None, description="Only runs with this status."),
    limit: int = Query(default=50, ge=1, le=200),
    before: datetime | None = Query(default=None, description="`next_before` of the previous page."),
    before_id: uuid.UUID | None = Query(default=None, description="`next_before_id` of the previous page."),
    parent: uuid.UUID | None = Query(default=None, description="Only runs this run's subflow nodes started."),
) -> dict[str, Any]:
    page = await services.executions.list(
        ctx, flow_id=flow, status=status, limit=limit, before=before, before_id=before_id, parent_execution_id=parent
    )
    return {
        "items": [item.as_dict() for item in page.items],
        "next_before": page.next_before.isoformat() if page.next_before else None,
        "next_before_id": str(page.next_before_id) if page.next_before_id else None,
    }


@router.get("/{execution_id}", summary="One run with every node's inputs, output or error, attempts and timings")
async def get_execution(execution_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    return (await services.executions.get(ctx, execution_id)).as_dict()


@router.post("/{execution_id}/cancel", summary="Cancel a run (editor); running nodes stop within a second",
             responses=responses(409))  # fmt: skip
async def cancel_execution(execution_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    return (await services.executions.cancel(ctx, execution_id)).as_dict()


class Respond(BaseModel):
    """A person's answer to a human node."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "reject", "edit"]
    reason: Text = Field(default="", description="Why it was rejected (stored and shown in the run's error).")
    output: Json = Field(default=None, description="For `edit`: the value the node outputs instead.")


@router.post(
    "/{execution_id}/retry",
    status_code=status.HTTP_201_CREATED,
    summary="Run a failed, cancelled or interrupted run again from its failed nodes, keeping what succeeded (editor)",
    responses=responses(409),
)
async def retry_execution(
    execution_id: uuid.UUID,
    ctx: CurrentContext,
    services: ServicesDep,
    latest: bool = Query(default=False, description="Run the flow's latest version instead of the run's version."),
) -> dict[str, Any]:
    return (await services.executions.retry(ctx, execution_id, latest=latest)).as_dict()


@router.post("/{execution_id}/resume", summary="Continue a run paused at breakpoints (editor)",
             responses=responses(409))  # fmt: skip
async def resume_execution(execution_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    return (await services.executions.pauses.resume(ctx, execution_id)).as_dict()


@router.post("/{execution_id}/step", summary="Run the nodes paused at breakpoints, then pause again (editor)",
             responses=responses(409))  # fmt: skip
async def step_execution(execution_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> dict[str, Any]:
    return (await services.executions.pauses.resume(ctx, execution_id, step=True)).as_dict()


@router.post(
    "/{execution_id}/nodes/{node_id}/respond",
    summary="Approve, reject or edit at a human node that waits (editor); the run continues",
    responses=responses(*BODY_ERRORS, 409),
)
async def respond(
    execution_id: uuid.UUID,
    node_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")],
    body: Respond,
    ctx: CurrentContext,
    services: ServicesDep,
) -> dict[str, Any]:
    extra: dict[str, Any] = {"output": body.output} if "output" in body.model_fields_set else {}
    record = await services.executions.pauses.respond(
        ctx, execution_id, node_id, body.action, reason=body.reason, **extra
    )
    return record.as_dict()


@router.get("/{execution_id}/events", summary="Stored events after `after`, in order (viewer)")
async def list_events(
    execution_id: uuid.UUID,
    ctx: CurrentContext,
    services: ServicesDep,
    after: int = Query(default=0, ge=0, le=MAX_SEQ, description="Only events with a greater seq."),
    limit: int = Query(default=500, ge=1, le=1000),
) -> list[dict[str, Any]]:
    await services.executions.get(ctx, execution_id)  # 404 for an id that is not this tenant's
    events = await services.executions.events(ctx, execution_id, after_seq=after, limit=limit)
    return [event.as_dict() for event in events]


@router.get(
    "/{execution_id}/stream",
    summary="Watch a run as server-sent events: replay after Last-Event-ID (or `after`), then live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The run's events as SSE."}},
)
async def stream_execution(
    execution_id: uuid.UUID,
    ctx: CurrentContext,
    services: ServicesDep,
    after: int | None = Query(default=None, ge=0, le=MAX_SEQ, description="Replay events after this seq."),
    snapshot: bool = Query(default=False, description="First send every node's current state as one event."),
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,9}$")] = None,  # below MAX_SEQ
) -> StreamingResponse:
    await services.executions.get(ctx, execution_id)  # 404 before the stream starts
    resume = after if after is not None else int(last_event_id) if last_event_id else 0
    return StreamingResponse(
        event_stream(services.executions, ctx, execution_id, after_seq=resume, snapshot=snapshot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
