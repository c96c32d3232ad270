"""`/api/health`: liveness plus which backends are active."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/api/health", summary="Health and active backends")
async def health(services: ServicesDep) -> JSONResponse:
    report: dict[str, Any] = await services.health()
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
