"""`/api/chat/*`: chat with a crew or a flow. REST for the sessions and their history; a WebSocket to talk.

REST (signed in as for every router; editors start and delete chats, viewers read their own):

    GET    /api/chat/sessions                 the caller's chats, the most recently used first
    POST   /api/chat/sessions                 start one: {crew_id | flow_id, inputs?, title?}
    GET    /api/chat/sessions/{id}            one chat, with the run writing its reply (`replying`)
    DELETE /api/chat/sessions/{id}            delete it (a reply being written is cancelled)
    GET    /api/chat/sessions/{id}/messages   its messages in order

A chat belongs to the person who started it: anyone else's chat id is a 404 (a close with
4404 on the WebSocket), as for an id that does not exist.

`WebSocket /api/chat/{session_id}` is authenticated like REST: the handshake carries
`Authorization: Bearer <access token or API key>` (and `X-Tenant` to pick a tenant). No
cookie is read, so a page on another site cannot open a socket in a signed-in browser's
name. A refused handshake is accepted and closed at once with a code and a reason (a
close before accepting would reach the client as a bare HTTP 403): 4401 (no or bad
credentials), 4403 (not allowed), 4404 (no such chat of yours), 4400 (a malformed
header), 1011 (the server failed). Frames are JSON objects:

    server: {"type": "history", "session": {...}, "messages": [...], "replying": execution id | null}
            first; when a reply is being written it then streams, from its beginning
    client: {"type": "message", "text": "..."}      send a message (editor); its reply streams back
            {"type": "cancel"}                      cancel the reply being written
    server: {"type": "token", "text", "agent", "task", "node"}
            {"type": "step", "kind", "node", "task", "agent", ...}
            {"type": "reply", "message": {...}}      the stored reply; it ends the reply's stream
            {"type": "error", "message": "why", "reply": {...}}   the run failed (ends the stream)
            {"type": "cancelled", "reply": {...}}   the run was cancelled (ends the stream)
            {"type": "error", "message": "why"}     a frame was refused (the socket stays open)

The role is read again for every message, so a demotion applies to an open socket (its
messages are refused) and a removal from the tenant closes it (4404, or 4401 for an API key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, WebSocket, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from api.deps import CurrentContext, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.fields import SLUG_PATTERN
from core.auth.authenticator import Principal
from core.context import TenantContext
from core.errors import AuthenticationFailed, CoreError, InvalidInput, NotFound, PermissionDenied
from core.text import JsonObject, Name
from executor.errors import ExecutorError
from wiring.services import Services

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/chat", tags=["chat"], responses=responses(*IN_TENANT))

#: Close codes of a refused or ended socket, by the error that refused it (first match wins).
CLOSE_CODES: tuple[tuple[type[CoreError], int], ...] = (
    (AuthenticationFailed, 4401),
    (PermissionDenied, 4403),
    (NotFound, 4404),
    (InvalidInput, 4400),
)
INTERNAL_CLOSE = 1011
#: WebSocket close reasons are at most 123 bytes of UTF-8.
MAX_REASON_BYTES = 123
FAILED = "the server failed on this and logged why; try again, and tell the operator if it persists"


# -- REST ----------------------------------------------------------------------------------


class ChatStart(BaseModel):
    """What to chat with: a crew or a flow, and values for its other placeholders or inputs."""

    model_config = ConfigDict(extra="forbid")

    crew_id: uuid.UUID | None = Field(default=None, description="Chat with this crew (or give flow_id).")
    flow_id: uuid.UUID | None = Field(
        default=None, description="Chat with this flow; it must declare a string input named `message`."
    )
    inputs: JsonObject = Field(
        default_factory=dict,
        description="A crew's other placeholders (text), or a flow's other inputs; the message's text is never here.",
    )
    title: Name | None = Field(default=None, description="Shown in the list of chats; empty: the crew or flow name.")


class ChatSessionOut(BaseModel):
    """A chat of the caller's."""

    id: uuid.UUID
    title: str
    crew_id: uuid.UUID | None = Field(description="The crew it talks to (null: a flow, or the crew was deleted).")
    flow_id: uuid.UUID | None = Field(description="The flow it talks to (null: a crew, or the flow was deleted).")
    inputs: dict[str, Any]
    created_at: datetime
    updated_at: datetime = Field(description="When it was started or last written to.")


class ChatSessionDetail(ChatSessionOut):
    """A chat, with the run writing its reply now."""

    replying: uuid.UUID | None = Field(description="The execution writing a reply now; null when none is.")


class ChatMessageOut(BaseModel):
    """One message: the user's, or the reply (`assistant`) that the run `execution_id` wrote."""

    id: uuid.UUID
    session_id: uuid.UUID
    turn: int = Field(description="A user message and the reply to it share a turn.")
    role: str = Field(description="user or assistant.")
    content: str = Field(description="The text; for a failed reply, why it failed.")
    status: str = Field(description="ok; for replies also failed or cancelled.")
    execution_id: uuid.UUID | None = Field(description="The run that answered (or answers) this turn.")
    created_at: datetime


@router.get("/sessions", summary="The caller's chats, the most recently used first (viewer)")
async def list_sessions(
    ctx: CurrentContext, services: ServicesDep, limit: int = Query(default=100, ge=1, le=500)
) -> list[ChatSessionOut]:
    sessions = await services.chat.list(ctx, limit=limit)
    return [ChatSessionOut.model_validate(session, from_attributes=True) for session in sessions]


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    summary="Start a chat with a crew or a flow (editor)",
    responses=responses(*BODY_ERRORS),
)
async def create_session(body: ChatStart, ctx: CurrentContext, services: ServicesDep) -> ChatSessionOut:
    session = await services.chat.create(
        ctx, crew_id=body.crew_id, flow_id=body.flow_id, inputs=body.inputs, title=body.title
    )
    return ChatSessionOut.model_validate(session, from_attributes=True)


@router.get("/sessions/{session_id}", summary="One of the caller's chats (viewer)")
async def get_session(session_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> ChatSessionDetail:
    session = await services.chat.get(ctx, session_id)
    replying = await services.chat.replying(ctx, session_id)
    fields = ChatSessionOut.model_validate(session, from_attributes=True).model_dump()
    return ChatSessionDetail(**fields, replying=replying)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of the caller's chats; a reply being written is cancelled (editor)",
)
async def delete_session(session_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.chat.delete(ctx, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions/{session_id}/messages", summary="A chat's messages in order (viewer)")
async def list_messages(
    session_id: uuid.UUID,
    ctx: CurrentContext,
    services: ServicesDep,
    last: Annotated[int | None, Query(ge=1, le=1000, description="Only the last this many messages.")] = None,
) -> list[ChatMessageOut]:
    messages = await services.chat.history(ctx, session_id, last=last)
    return [ChatMessageOut.model_validate(message, from_attributes=True) for message in messages]


# -- WebSocket -----------------------------------------------------------------------------


@router.websocket("/{session_id}")
async def chat_socket(websocket: WebSocket, session_id: str) -> None:
    """Talk in one of the caller's chats (see the module's docstring for the frames)."""
    services: Services = websocket.app.state.services
    await websocket.accept()
    try:
        caller = await _caller(services, websocket)
        chat_id = _chat_id(session_id)
    except CoreError as exc:
        await _close(websocket, _close_code(exc), str(exc))
        return
    except Exception:  # a bug or a backend away: the client hears that, the log has the rest
        log.exception("opening a chat socket failed")
        await _close(websocket, INTERNAL_CLOSE, FAILED)
        return
    await ChatSocket(websocket, services, caller, chat_id).serve()


@dataclass
class _Caller:
    """Who opened the socket; the role is read again (`refresh`) for every message."""

    principal: Principal
    tenant: str | None
    context: TenantContext


async def _caller(services: Services, websocket: WebSocket) -> _Caller:
    """The caller of the handshake, authenticated as `api.deps.get_context` does for REST."""
    scheme, _, credential = websocket.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationFailed("sign in first: send 'Authorization: Bearer <access token or API key>'")
    tenant = websocket.headers.get("x-tenant") or None
    if tenant is not None and not re.fullmatch(SLUG_PATTERN, tenant):
        raise InvalidInput("the X-Tenant header must be a tenant slug", field="header.x-tenant")
    principal = await services.identity.auth.principal(credential)
    return _Caller(principal, tenant, await services.identity.auth.context(principal, tenant))


def _chat_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("no chat with that id; chat ids are UUIDs from /api/chat/sessions") from None


def _close_code(exc: CoreError) -> int:
    return next((code for kind, code in CLOSE_CODES if isinstance(exc, kind)), INTERNAL_CLOSE)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    clipped = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
    with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected):
        await websocket.close(code=code, reason=clipped)


class _Refused(Exception):
    """The caller may no longer use the socket (signed out, removed); it is closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class ChatSocket:
    """One open socket: sends history and reply frames, takes message and cancel frames."""

    def __init__(self, websocket: WebSocket, services: Services, caller: _Caller, chat_id: uuid.UUID) -> None:
        self._ws = websocket
        self._chat = services.chat
        self._identity = services.identity
        self._caller = caller
        self._chat_id = chat_id
        self._sending = asyncio.Lock()  # frames from the reply stream and from refusals never interleave
        self._streams: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        """Until the client leaves; reply streams stop with the socket (the runs go on)."""
        try:
            await self._greet()
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                raw = message.get("text")
                if raw is None:
                    raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
                await self._take(raw)
        except _Refused as refused:
            await _close(self._ws, refused.code, str(refused))
        except (WebSocketDisconnect, WebSocketDisconnected):
            return
        except Exception:  # a bug: the client hears that, the log has the rest
            log.exception("chat socket %s failed", self._chat_id)
            await _close(self._ws, INTERNAL_CLOSE, FAILED)
        finally:
            for task in self._streams:
                task.cancel()
            for task in list(self._streams):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _greet(self) -> None:
        ctx = self._caller.context
        try:
            session = await self._chat.get(ctx, self._chat_id)
            messages = await self._chat.history(ctx, self._chat_id)
            replying = await self._chat.replying(ctx, self._chat_id)
        except CoreError as exc:
            raise _Refused(_close_code(exc), str(exc)) from exc
        await self._send(
            {
                "type": "history",
                "session": session.as_dict(),
                "messages": [message.as_dict() for message in messages],
                "replying": str(replying) if replying else None,
            }
        )
        if replying is not None:
            self._stream(replying)

    async def _take(self, raw: str) -> None:
        """Act on one frame from the client; a refusal is an `error` frame, the socket stays open."""
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            await self._refuse('frames are JSON objects: {"type": "message", "text": "..."} or {"type": "cancel"}')
            return
        kind = frame.get("type")
        try:
            if kind == "message":
                text = frame.get("text")
                if not isinstance(text, str):
                    await self._refuse('a message frame needs its text: {"type": "message", "text": "..."}')
                    return
                execution = await self._chat.send(await self._context(), self._chat_id, text)
                self._stream(execution.id)
            elif kind == "cancel":
                await self._chat.cancel(await self._context(), self._chat_id)
            else:
                await self._refuse('unknown frame type; send {"type": "message", "text": "..."} or {"type": "cancel"}')
        except (CoreError, ExecutorError) as exc:
            await self._refuse(str(exc))

    async def _context(self) -> TenantContext:
        """The caller's context with their role as of now."""
        try:
            return await self._identity.auth.context(self._caller.principal, self._caller.tenant)
        except (AuthenticationFailed, NotFound) as exc:
            raise _Refused(_close_code(exc), str(exc)) from exc

    def _stream(self, execution_id: uuid.UUID) -> None:
        task = asyncio.create_task(self._relay(execution_id), name=f"chat {self._chat_id} reply {execution_id}")
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _relay(self, execution_id: uuid.UUID) -> None:
        """Send the reply's frames until its last one, or until the socket closes."""
        try:
            async for frame in self._chat.reply_stream(self._caller.context, self._chat_id, execution_id):
                await self._send(frame)
        except (WebSocketDisconnect, WebSocketDisconnected):
            return
        except CoreError as exc:
            await self._refuse(str(exc))
        except Exception:  # a bug: the client hears that, the log has the rest
            log.exception("streaming the reply of execution %s failed", execution_id)
            await self._refuse(FAILED)

    async def _refuse(self, message: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected):
            await self._send({"type": "error", "message": message})

    async def _send(self, frame: dict[str, Any]) -> None:
        async with self._sending:
            await self._ws.send_text(json.dumps(frame, ensure_ascii=False, default=str))
