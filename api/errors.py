"""Core errors -> HTTP responses. The only place that knows status codes for them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core import errors

_STATUS: list[tuple[type[errors.CoreError], int]] = [
    (errors.InvalidInput, 422),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PermissionDenied, 403),
    (errors.AuthenticationFailed, 401),
    (errors.RateLimited, 429),
    (errors.BackendUnavailable, 503),
    (errors.ConfigurationError, 500),
]


async def _core_error(_request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    headers = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, errors.AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, minus the submitted values it would echo (`input`, `ctx`): they may be secrets."""
    problems: list[dict[str, Any]] = []
    if isinstance(exc, RequestValidationError):
        problems = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
    return JSONResponse({"detail": problems, "error": "InvalidInput"}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.CoreError, _core_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
