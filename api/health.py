"""`/api/health`: liveness plus which backends are active."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


_REPORT = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}


@router.get(
    "/api/health",
    summary="Health and active backends",
    responses={
        200: {"description": "Every backend answers.", "content": _REPORT},
        503: {"description": "Some backend does not answer; the report says which.", "content": _REPORT},
    },
)
async def health(services: ServicesDep) -> JSONResponse:
    report: dict[str, Any] = await services.health()
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
