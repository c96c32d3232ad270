"""Chat sessions and their messages: a person's conversations with a crew or a flow, stored per tenant.

A session belongs to the user who started it. Everyone else, an admin of the same tenant
included, gets `NotFound` for it, as for an id that does not exist. Starting a session or
writing to one needs the editor role (a message runs a crew or a flow); reading one's own
sessions needs viewer.

Messages are numbered in turns: a user message opens turn n and the reply to it joins
turn n. The unique index on (session_id, turn, role) is what keeps a conversation in
order across processes: a user message is stored only if the turn before it has its
reply, and two messages racing for the same turn cannot both be stored; a reply stored
twice (two watchers of one run) is stored once.

A message's `status` is `ok`; a reply whose run did not complete is `failed` (its
content says why) or `cancelled`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import Select, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.text import check_json, check_text
from db.base import utcnow
from db.database import Database
from db.models.tenant import ChatMessage, ChatSession

MessageStatus = Literal["ok", "failed", "cancelled"]

#: What a second message gets while the first one's reply is still being written.
REPLY_PENDING: Final = "a reply is still being written; wait for it or cancel it"
MAX_SESSIONS_PAGE = 500
MAX_TITLE_CHARS = 200


@dataclass(frozen=True, slots=True)
class ChatSessionRecord:
    """One conversation: with a crew (`crew_id`) or a flow (`flow_id`), and the values it runs with."""

    id: uuid.UUID
    title: str
    user_id: uuid.UUID | None
    crew_id: uuid.UUID | None
    flow_id: uuid.UUID | None
    inputs: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ids as text, moments in ISO 8601."""
        return {
            "id": str(self.id),
            "title": self.title,
            "crew_id": _str(self.crew_id),
            "flow_id": _str(self.flow_id),
            "inputs": self.inputs,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ChatMessageRecord:
    """One message: the user's, or the reply (`assistant`) written by the run in `execution_id`."""

    id: uuid.UUID
    session_id: uuid.UUID
    turn: int
    role: str
    content: str
    status: str
    execution_id: uuid.UUID | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ids as text, moments in ISO 8601."""
        return {
            "id": str(self.id),
            "session_id": str(self.session_id),
            "turn": self.turn,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "execution_id": _str(self.execution_id),
            "created_at": self.created_at.isoformat(),
        }


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _session(row: ChatSession) -> ChatSessionRecord:
    return ChatSessionRecord(
        id=row.id,
        title=row.title,
        user_id=row.user_id,
        crew_id=row.crew_id,
        flow_id=row.flow_id,
        inputs=dict(row.inputs or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _message(row: ChatMessage) -> ChatMessageRecord:
    return ChatMessageRecord(
        id=row.id,
        session_id=row.session_id,
        turn=row.turn,
        role=row.role,
        content=row.content,
        status=row.status,
        execution_id=row.execution_id,
        created_at=row.created_at,
    )


def _in_order() -> tuple[Any, ...]:
    """Messages in conversation order: by turn, the user's message before its reply."""
    return (ChatMessage.turn, case((ChatMessage.role == "user", 0), else_=1), ChatMessage.created_at)


def check_message(text: str) -> str:
    """A message's text, stripped; `InvalidInput` naming `text` if it is empty or not acceptable text."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text is empty; write a message", field="text")
    return check_text(text.strip(), "text", "text")


class ChatStore:
    """Sessions and messages of the caller; nobody else's are ever read or written."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- sessions --------------------------------------------------------------------------

    async def create_session(
        self,
        ctx: TenantContext,
        *,
        title: str,
        crew_id: uuid.UUID | None = None,
        flow_id: uuid.UUID | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> ChatSessionRecord:
        """Store a new session of the caller with a crew or a flow (exactly one)."""
        ctx.require(Role.EDITOR, "chat")
        user_id = _user(ctx)
        if (crew_id is None) == (flow_id is None):
            raise InvalidInput("a chat is with a crew or with a flow: give crew_id or flow_id, not both")
        title = check_text(title.strip(), "title", "name", max_length=MAX_TITLE_CHARS)
        values = check_json(dict(inputs or {}), "inputs")
        now = utcnow()
        row = ChatSession(
            id=uuid.uuid4(),
            title=title,
            user_id=user_id,
            crew_id=crew_id,
            flow_id=flow_id,
            inputs=values,
            created_at=now,
            updated_at=now,
        )
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:  # the foreign keys: the crew or flow was deleted meanwhile
                await session.rollback()
                raise InvalidInput("the crew or flow of this chat no longer exists; pick another one") from exc
        return _session(row)

    async def list_sessions(self, ctx: TenantContext, *, limit: int = 100) -> list[ChatSessionRecord]:
        """The caller's sessions, the most recently used first."""
        ctx.require(Role.VIEWER, "see chats")
        if not 1 <= limit <= MAX_SESSIONS_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_SESSIONS_PAGE}", field="limit")
        query = (
            select(ChatSession)
            .where(ChatSession.user_id == _user(ctx))
            .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
            .limit(limit)
        )
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return [_session(row) for row in await session.scalars(query)]

    async def get_session(self, ctx: TenantContext, session_id: uuid.UUID) -> ChatSessionRecord:
        """One of the caller's sessions; `NotFound` for anyone else's."""
        ctx.require(Role.VIEWER, "see chats")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return _session(await _own(session, ctx, session_id))

    async def delete_session(self, ctx: TenantContext, session_id: uuid.UUID) -> None:
        """Delete one of the caller's sessions with its messages (the runs stay in the run history)."""
        ctx.require(Role.EDITOR, "delete chats")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            result = await session.execute(
                delete(ChatSession).where(ChatSession.id == session_id, ChatSession.user_id == _user(ctx))
            )
            if getattr(result, "rowcount", 0) == 0:
                raise _missing(session_id)
            await session.commit()

    # -- messages --------------------------------------------------------------------------

    async def messages(
        self, ctx: TenantContext, session_id: uuid.UUID, *, last: int | None = None
    ) -> list[ChatMessageRecord]:
        """The session's messages in conversation order; with `last`, only the last that many."""
        ctx.require(Role.VIEWER, "see chats")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await _own(session, ctx, session_id)
            query = select(ChatMessage).where(ChatMessage.session_id == session_id)
            if last is None:
                rows = list(await session.scalars(query.order_by(*_in_order())))
            else:
                newest_first = [column.desc() for column in _in_order()]
                rows = list(reversed(list(await session.scalars(query.order_by(*newest_first).limit(last)))))
        return [_message(row) for row in rows]

    async def last_turn(
        self, ctx: TenantContext, session_id: uuid.UUID
    ) -> tuple[ChatMessageRecord | None, ChatMessageRecord | None]:
        """The user message of the session's last turn and its reply (None for what is not there)."""
        ctx.require(Role.VIEWER, "see chats")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await _own(session, ctx, session_id)
            rows = await _turn(session, session_id, None)
        return rows.get("user"), rows.get("assistant")

    async def turn_of(self, ctx: TenantContext, session_id: uuid.UUID, execution_id: uuid.UUID) -> int:
        """The turn whose user message started `execution_id`; `NotFound` if none of this session did."""
        ctx.require(Role.VIEWER, "see chats")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await _own(session, ctx, session_id)
            turn = await session.scalar(
                select(ChatMessage.turn).where(
                    ChatMessage.session_id == session_id,
                    ChatMessage.execution_id == execution_id,
                    ChatMessage.role == "user",
                )
            )
        if turn is None:
            raise NotFound(f"no message of this chat started execution {execution_id}")
        return int(turn)

    async def turn(
        self, ctx: TenantContext, session_id: uuid.UUID, turn: int
    ) -> tuple[ChatMessageRecord | None, ChatMessageRecord | None]:
        """The user message of `turn` and its reply (None for what is not there)."""
        ctx.require(Role.VIEWER, "see chats")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await _own(session, ctx, session_id)
            rows = await _turn(session, session_id, turn)
        return rows.get("user"), rows.get("assistant")

    async def add_user_message(self, ctx: TenantContext, session_id: uuid.UUID, text: str) -> ChatMessageRecord:
        """Store the caller's message as the next turn; `Conflict` while the last turn has no reply."""
        ctx.require(Role.EDITOR, "chat")
        text = check_message(text)
        now = utcnow()
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            # Two sends are taken one after the other: see `_touch`.
            await _touch(session, ctx, session_id, now)
            last = await _turn(session, session_id, None)
            if "user" in last and "assistant" not in last:
                raise Conflict(REPLY_PENDING)
            turn = max((message.turn for message in last.values()), default=0) + 1
            row = ChatMessage(
                id=uuid.uuid4(),
                session_id=session_id,
                turn=turn,
                role="user",
                content=text,
                status="ok",
                created_at=now,
            )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:  # another process stored a message for this turn first
                await session.rollback()
                raise Conflict(REPLY_PENDING) from exc
        return _message(row)

    async def attach_execution(
        self, ctx: TenantContext, session_id: uuid.UUID, message_id: uuid.UUID, execution_id: uuid.UUID
    ) -> None:
        """Tie a user message to the run that answers it."""
        ctx.require(Role.EDITOR, "chat")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            result = await session.execute(
                update(ChatMessage)
                .where(ChatMessage.id == message_id, ChatMessage.session_id.in_(_owned(ctx, session_id)))
                .values(execution_id=execution_id)
            )
            if getattr(result, "rowcount", 0) == 0:
                raise NotFound(f"no message with id {message_id} in this chat; was the chat deleted?")
            await session.commit()

    async def withdraw(self, ctx: TenantContext, session_id: uuid.UUID, message_id: uuid.UUID) -> None:
        """Remove a user message whose run could not be started, so the turn is free again."""
        ctx.require(Role.EDITOR, "chat")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await session.execute(
                delete(ChatMessage).where(
                    ChatMessage.id == message_id,
                    ChatMessage.role == "user",
                    ChatMessage.session_id.in_(_owned(ctx, session_id)),
                )
            )
            await session.commit()

    async def add_reply(
        self,
        ctx: TenantContext,
        session_id: uuid.UUID,
        turn: int,
        content: str,
        *,
        status: MessageStatus = "ok",
        execution_id: uuid.UUID | None = None,
        created_at: datetime | None = None,
    ) -> ChatMessageRecord:
        """Store the reply of `turn`, once: if it is stored already, that reply is returned unchanged.

        Viewer is enough: the reply belongs to a message the caller sent, whose run has ended."""
        ctx.require(Role.VIEWER, "see chats")
        _user_message, existing = await self.turn(ctx, session_id, turn)
        if existing is not None:
            return existing
        row = ChatMessage(
            id=uuid.uuid4(),
            session_id=session_id,
            turn=turn,
            role="assistant",
            content=content,
            status=status,
            execution_id=execution_id,
            created_at=created_at or utcnow(),
        )
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            await _touch(session, ctx, session_id)
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # another watcher of the run stored it first: theirs stands
                await session.rollback()
            else:
                return _message(row)
        _user_message, stored = await self.turn(ctx, session_id, turn)
        if stored is None:
            raise Conflict(f"the reply of turn {turn} could not be stored; reload the chat")
        return stored


def _user(ctx: TenantContext) -> uuid.UUID:
    if ctx.user_id is None:
        raise PermissionDenied("chats belong to a person; call as a signed-in user or with a personal API key")
    return ctx.user_id


def _missing(session_id: uuid.UUID) -> NotFound:
    return NotFound(f"no chat with id {session_id} of yours in this workspace; it may have been deleted")


def _owned(ctx: TenantContext, session_id: uuid.UUID) -> Select[uuid.UUID]:
    """The session's id if it is the caller's (for `IN`: no row, no match)."""
    return select(ChatSession.id).where(ChatSession.id == session_id, ChatSession.user_id == _user(ctx))


async def _touch(session: AsyncSession, ctx: TenantContext, session_id: uuid.UUID, now: datetime | None = None) -> None:
    """Mark the caller's session as used now, or `NotFound`; the first statement of a writing transaction.

    Writing first takes the session's row lock (PostgreSQL) or the database's write lock
    (SQLite) before anything is read: SQLite cannot turn a read transaction into a write
    once another writer (the journal of a run) has committed since, and on PostgreSQL the
    writers of one session go one after the other."""
    result = await session.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id, ChatSession.user_id == _user(ctx))
        .values(updated_at=now or utcnow())
    )
    if getattr(result, "rowcount", 0) == 0:
        raise _missing(session_id)


async def _own(session: AsyncSession, ctx: TenantContext, session_id: uuid.UUID) -> ChatSession:
    row = await session.get(ChatSession, session_id)
    if row is None or row.user_id is None or row.user_id != ctx.user_id:
        raise _missing(session_id)
    return row


async def _turn(session: AsyncSession, session_id: uuid.UUID, turn: int | None) -> dict[str, ChatMessageRecord]:
    """The messages of `turn` (the last one when None) by role."""
    if turn is None:
        turn = await session.scalar(select(func.max(ChatMessage.turn)).where(ChatMessage.session_id == session_id))
        if turn is None:
            return {}
    rows = await session.scalars(
        select(ChatMessage).where(ChatMessage.session_id == session_id, ChatMessage.turn == turn)
    )
    return {row.role: _message(row) for row in rows}
