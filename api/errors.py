"""Every error answer of the API in one shape, `ErrorBody`; the only place that knows status codes.

What answers with an `ErrorBody`:

- core errors (`CoreError` and its kinds: 422, 404, 409, 403, 401, 429, 503);
- FastAPI's request validation errors (422, one problem per wrong field; the submitted
  values are never repeated: they may be passwords or keys);
- Starlette's HTTP errors under `/api/`: no such route (404), a method the path does not
  take (405, with an `Allow` header naming every method of every route for that path), a
  body that cannot be read (400) and a body over the size limit (413, `api.limits`);
- a bug (500, never documented: the schemathesis suite checks that none happens).

Routers declare which of these they answer with `responses(...)`, so the OpenAPI
document names every status code the API can answer.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from core import errors
from executor.errors import ExecutorError, FlowInvalid, FlowProblem, UnknownNodeType

API_PREFIX = "/api/"

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


class ProblemOut(BaseModel):
    """One wrong field of a request."""

    field: str = Field(
        description="Where: a dotted path into the body (`models.3`), or `query.<name>`, `path.<name>`, "
        "`header.<name>`; `body` for the body as a whole."
    )
    message: str = Field(description="What is wrong with it (never the submitted value).")
    node_id: str | None = Field(
        default=None, description="For problems of a flow document: the node they concern (null: the whole flow)."
    )


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str = Field(
        description="The kind of error: InvalidInput, FlowInvalid, NotFound, Conflict, PermissionDenied, "
        "AuthenticationFailed, RateLimited, BackendUnavailable (or one of their kinds, e.g. "
        "SandboxUnavailableError), BadRequest, MethodNotAllowed, ContentTooLarge, InternalError."
    )
    detail: str = Field(description="What was wrong and what to do, in one sentence for people.")
    problems: list[ProblemOut] = Field(
        default_factory=list, description="For 422 answers: every wrong field. Empty otherwise."
    )


_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read (not UTF-8, or nested too deeply to decode).",
    401: "No credentials, or they are wrong, expired or revoked (`WWW-Authenticate: Bearer`).",
    403: "Your role in this tenant does not allow this.",
    404: "It does not exist, or is not visible to you in this tenant.",
    409: "It exists already, or its state does not allow this.",
    413: "The request body is larger than the server accepts (`APP_MAX_BODY_BYTES`).",
    422: "Something in the request is malformed: `problems` names every wrong field.",
    429: "Too many requests; try again after `Retry-After` seconds.",
    503: "A backend this needs (database, sandbox, LLM providers) is unavailable; try again later.",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error answers `codes`, each with the `ErrorBody` schema."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


#: What every operation with a JSON body may answer besides its own errors.
BODY_ERRORS = (400, 413, 422)
#: What every operation behind `CurrentPrincipal` may answer (401) and, with `CurrentContext`,
#: a tenant that is not yours (404), a role too low (403) or a malformed `X-Tenant` (422).
SIGNED_IN = (401,)
IN_TENANT = (401, 403, 404, 422)


def error_response(
    status: int,
    kind: str,
    detail: str,
    problems: Iterable[errors.Problem | FlowProblem] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An `ErrorBody` answer."""
    body = ErrorBody(
        error=kind,
        detail=detail,
        problems=[
            ProblemOut(field=p.field, message=p.message, node_id=p.node_id)
            if isinstance(p, FlowProblem)
            else ProblemOut(field=p.field, message=p.message)
            for p in problems
        ],
    )
    # `node_id` appears in the problems of flow documents only (null there: the flow as a whole).
    return JSONResponse(body.model_dump(exclude_unset=True), status_code=status, headers=headers)


async def _core_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.CoreError)
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    headers = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, errors.AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    problems = exc.problems if isinstance(exc, errors.InvalidInput) else []
    return error_response(status, type(exc).__name__, str(exc), problems, headers)


async def _executor_error(_request: Request, exc: Exception) -> Response:
    """A flow that does not validate (or names an unknown node type) is the caller's to fix: 422."""
    assert isinstance(exc, ExecutorError)
    if isinstance(exc, FlowInvalid):
        return error_response(422, "FlowInvalid", str(exc), exc.problems)
    if isinstance(exc, UnknownNodeType):
        return error_response(422, "UnknownNodeType", str(exc))
    return error_response(500, "InternalError", "the flow engine failed; the server log has the details")


def validation_problems(exc: RequestValidationError) -> list[errors.Problem]:
    """FastAPI's validation errors as `{field, message}` problems, minus the submitted values."""
    return errors.problems_from(exc.errors(), root="body")


async def _validation_error(_request: Request, exc: Exception) -> Response:
    """FastAPI's 422 as an `ErrorBody`: every wrong field, never the value that was sent."""
    assert isinstance(exc, RequestValidationError)
    problems = validation_problems(exc)
    summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return error_response(422, "InvalidInput", f"invalid request: {summary}{more}; fix the fields named", problems)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at this request's path.

    Starlette's 405 names the methods of the first route matching the path only; here each
    method is tried against every route, with a fresh scope so the request's is untouched."""
    scope = request.scope
    allowed = []
    for method in _METHODS:
        probe = {key: scope[key] for key in ("type", "path", "root_path", "headers", "query_string") if key in scope}
        probe["method"] = method
        if any(route.matches(dict(probe))[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


_HTTP_KINDS: dict[int, str] = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "ContentTooLarge"}


def _http_answer(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 404:
        detail = "nothing is served at this address; /api/openapi.json lists the API's operations"
    elif status == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; use {', '.join(allowed) or 'another address'}"
    elif status == 400:
        detail = "the request body could not be read: send UTF-8 JSON, nested at most a few dozen levels"
    elif isinstance(exc.detail, str) and exc.detail and exc.detail != HTTPStatus(status).phrase:
        detail = exc.detail
    else:
        detail = f"{HTTPStatus(status).phrase.lower()}; /api/openapi.json describes the API"
    kind = _HTTP_KINDS.get(status) or HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    return error_response(status, kind, detail, headers=headers)


Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def _http_error(fallback: Handler | None) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Starlette's HTTP errors as `ErrorBody` under `/api/`; elsewhere (the UI's pages) as before."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith(API_PREFIX) or fallback is None:
            return _http_answer(request, exc)
        answer = fallback(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    return handle


def _server_error(fallback: Handler | None) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A bug: the traceback goes to the log (Starlette re-raises after this), the caller gets an `ErrorBody`."""

    async def handle(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(API_PREFIX) or fallback is None:
            detail = "the server failed on this request and logged why; try again, and tell the operator if it persists"
            return error_response(500, "InternalError", detail)
        answer = fallback(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    return handle


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error under `/api/` with an `ErrorBody`; keep handlers already installed for other paths."""
    app.add_exception_handler(Exception, _server_error(app.exception_handlers.get(Exception)))
    app.add_exception_handler(errors.CoreError, _core_error)
    app.add_exception_handler(ExecutorError, _executor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # NiceGUI installs HTML pages for some status codes (404); Starlette looks handlers up by
    # status code before class, so the API's codes get a handler of their own that passes
    # other paths on to whatever was there.
    handlers = app.exception_handlers
    default = handlers.get(StarletteHTTPException)
    for code in (400, 404, 405, 413):
        app.add_exception_handler(code, _http_error(handlers.get(code) or default))
    app.add_exception_handler(StarletteHTTPException, _http_error(default))
