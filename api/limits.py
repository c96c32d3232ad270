"""A cap on request bodies under `/api/`, enforced before a body is read whole.

`BodyLimit` is plain ASGI (not `BaseHTTPMiddleware`, which would buffer the body
itself). A `Content-Length` over the limit is answered with 413 before the app runs; a
body without one (chunked) is counted as it streams, and the first chunk that crosses
the limit stops the request with the same 413. Either way at most the limit plus one
chunk is ever held. Routes whose last path segment is `import` get the larger import
limit (`APP_MAX_IMPORT_BYTES`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import API_PREFIX, error_response


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body crosses the limit; answered as 413 by `api.errors`."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large(limit))
        self.limit = limit


def _too_large(limit: int) -> str:
    return f"the request body is larger than the {limit} bytes this address accepts; send a smaller body"


def api_body_limits(max_body_bytes: int, max_import_bytes: int) -> Callable[[str], int | None]:
    """The limit for a path: none outside `/api/`, the import limit for `.../import`, else the body limit."""

    def limit_for(path: str) -> int | None:
        if not path.startswith(API_PREFIX):
            return None
        return max_import_bytes if path.rstrip("/").rsplit("/", 1)[-1] == "import" else max_body_bytes

    return limit_for


class BodyLimit:
    """Refuse request bodies larger than `limit_for(path)` bytes with 413, without reading them whole."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                response = error_response(
                    400, "BadRequest", "the Content-Length header is not a number; send the body's size in bytes"
                )
                await response(scope, receive, send)
                return
            if int(declared) > limit:
                await error_response(413, "ContentTooLarge", _too_large(limit))(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            # Raised where no exception handler sees it (e.g. a route that streams the body itself).
            if started:
                raise
            await error_response(413, "ContentTooLarge", _too_large(limit))(scope, receive, send)
