"""Flows and their immutable versions, stored per tenant.

A flow is a name, a description and a list of versions; every save writes a new version
(latest + 1) and never changes an old one, so an execution can pin the version it ran.
Documents are plain dicts here: their schema is checked above, by the executor.

Version numbers are handed out by one atomic statement, `UPDATE flows SET latest_version
= latest_version + 1 ... RETURNING latest_version`, which is the first statement of the
saving transaction: PostgreSQL serialises concurrent saves on the flow's row lock, and on
SQLite it takes the database's write lock before anything was read (so no stale snapshot
can be upgraded). The unique constraint on (flow_id, version) stays as the last word.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound
from core.text import check_text
from db.base import utcnow
from db.database import Database
from db.models.tenant import Flow, FlowVersion

MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """A flow without its documents."""

    id: uuid.UUID
    name: str
    description: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One version of a flow, without its document."""

    id: uuid.UUID
    flow_id: uuid.UUID
    version: int
    message: str
    created_by: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One immutable version of a flow, with its document."""

    id: uuid.UUID
    flow_id: uuid.UUID
    version: int
    document: dict[str, Any]
    message: str
    created_by: uuid.UUID | None
    created_at: datetime


def _flow(row: Flow) -> FlowRecord:
    return FlowRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        latest_version=row.latest_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version(row: FlowVersion) -> VersionRecord:
    return VersionRecord(
        id=row.id,
        flow_id=row.flow_id,
        version=row.version,
        document=row.document,
        message=row.message,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _name(name: str) -> str:
    checked = check_text(name.strip(), "name")
    if not checked:
        raise InvalidInput("name is empty; give the flow a name", field="name")
    return checked


def _description(description: str) -> str:
    return check_text(description, "description", "text")


def _message(message: str) -> str:
    return check_text(message.strip(), "message", "line", max_length=MAX_MESSAGE_CHARS)


def _document(document: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InvalidInput("document must be a JSON object", field="document")
    return document


class FlowStore:
    """Create, list, rename and delete a tenant's flows; save and read their versions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- flows -----------------------------------------------------------------------------

    async def create(self, ctx: TenantContext, name: str, description: str, document: dict[str, Any]) -> FlowRecord:
        """Store a new flow with `document` as its version 1."""
        ctx.require(Role.EDITOR, "create flows")
        name, description, document = _name(name), _description(description), _document(document)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            flow = Flow(id=uuid.uuid4(), name=name, description=description, latest_version=1)
            session.add(flow)
            # The flow row must exist before its version references it (no ORM relationship orders them).
            await self._flush_named(session, name)
            session.add(FlowVersion(flow_id=flow.id, version=1, document=document, created_by=ctx.user_id))
            await self._commit_named(session, name)
            return _flow(flow)

    async def list(self, ctx: TenantContext) -> list[FlowRecord]:
        """Every flow of the tenant, by name."""
        ctx.require(Role.VIEWER, "see flows")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return [_flow(row) for row in await session.scalars(select(Flow).order_by(Flow.name))]

    async def get(self, ctx: TenantContext, flow_id: uuid.UUID) -> FlowRecord:
        ctx.require(Role.VIEWER, "see flows")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            return _flow(await self._load(session, flow_id))

    async def rename(
        self, ctx: TenantContext, flow_id: uuid.UUID, *, name: str | None = None, description: str | None = None
    ) -> FlowRecord:
        """Change a flow's name or description (its versions stay as they are)."""
        ctx.require(Role.EDITOR, "rename flows")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            flow = await self._load(session, flow_id)
            if name is not None:
                flow.name = _name(name)
            if description is not None:
                flow.description = _description(description)
            await self._commit_named(session, flow.name)
            await session.refresh(flow)
            return _flow(flow)

    async def delete(self, ctx: TenantContext, flow_id: uuid.UUID) -> None:
        """Delete a flow with its versions and executions."""
        ctx.require(Role.EDITOR, "delete flows")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            result = await session.execute(delete(Flow).where(Flow.id == flow_id))
            if getattr(result, "rowcount", 0) == 0:
                raise self._missing(flow_id)
            await session.commit()

    # -- versions --------------------------------------------------------------------------

    async def save_version(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        document: dict[str, Any],
        *,
        expected_version: int | None = None,
        message: str = "",
    ) -> VersionRecord:
        """Store `document` as the flow's next version.

        With `expected_version` (the version the editor started from), the save is refused
        with `Conflict` when somebody else saved a newer version meanwhile.
        """
        ctx.require(Role.EDITOR, "save flows")
        document, message = _document(document), _message(message)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            # The increment comes first: see the module docstring for why that makes it safe.
            claimed = await session.scalar(
                update(Flow)
                .where(Flow.id == flow_id)
                .values(latest_version=Flow.latest_version + 1, updated_at=utcnow())
                .returning(Flow.latest_version)
                .execution_options(synchronize_session=False)
            )
            if claimed is None:
                raise self._missing(flow_id)
            new = int(claimed)
            if expected_version is not None and expected_version != new - 1:
                await session.rollback()
                raise Conflict(
                    f"someone else saved version {new - 1} of this flow after version {expected_version}; "
                    "reload it and apply your changes again"
                )
            row = FlowVersion(flow_id=flow_id, version=new, document=document, message=message, created_by=ctx.user_id)
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                await session.rollback()
                raise Conflict(f"version {new} of this flow was saved at the same moment; save again") from exc
            return _version(row)

    async def versions(self, ctx: TenantContext, flow_id: uuid.UUID) -> builtins.list[VersionSummary]:
        """The flow's versions, newest first, without their documents."""
        ctx.require(Role.VIEWER, "see flows")
        query = (
            select(
                FlowVersion.id,
                FlowVersion.flow_id,
                FlowVersion.version,
                FlowVersion.message,
                FlowVersion.created_by,
                FlowVersion.created_at,
            )
            .where(FlowVersion.flow_id == flow_id)
            .order_by(FlowVersion.version.desc())
        )
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            rows = (await session.execute(query)).all()
        if not rows:  # every flow has a version 1, so no rows means no flow
            raise self._missing(flow_id)
        return [VersionSummary(*row) for row in rows]

    async def version(self, ctx: TenantContext, flow_id: uuid.UUID, version: int | None = None) -> VersionRecord:
        """One version with its document; `None` means the latest."""
        ctx.require(Role.VIEWER, "see flows")
        query = select(FlowVersion).where(FlowVersion.flow_id == flow_id)
        if version is None:
            query = query.order_by(FlowVersion.version.desc()).limit(1)
        else:
            query = query.where(FlowVersion.version == version)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await session.scalar(query)
            if row is not None:
                return _version(row)
            flow = await self._load(session, flow_id)
        raise NotFound(f"flow {flow.name!r} has no version {version}; its versions are 1 to {flow.latest_version}")

    async def version_index(self, ctx: TenantContext) -> dict[str, frozenset[int]]:
        """Every flow id (as text) with the version numbers it has, for checking references."""
        ctx.require(Role.VIEWER, "see flows")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            rows = (await session.execute(select(FlowVersion.flow_id, FlowVersion.version))).all()
        found: dict[str, set[int]] = {}
        for flow_id, number in rows:
            found.setdefault(str(flow_id), set()).add(number)
        return {flow_id: frozenset(numbers) for flow_id, numbers in found.items()}

    async def latest_documents(self, ctx: TenantContext) -> dict[str, dict[str, Any]]:
        """Every flow id (as text) with its latest document, for checking subflow recursion."""
        ctx.require(Role.VIEWER, "see flows")
        query = select(FlowVersion.flow_id, FlowVersion.document).join(
            Flow, (Flow.id == FlowVersion.flow_id) & (Flow.latest_version == FlowVersion.version)
        )
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            rows = (await session.execute(query)).all()
        return {str(flow_id): document for flow_id, document in rows}

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _missing(flow_id: uuid.UUID) -> NotFound:
        return NotFound(f"no flow with id {flow_id} in this workspace; it may have been deleted")

    async def _load(self, session: AsyncSession, flow_id: uuid.UUID) -> Flow:
        flow = await session.get(Flow, flow_id)
        if flow is None:
            raise self._missing(flow_id)
        return flow

    @staticmethod
    async def _flush_named(session: AsyncSession, name: str) -> None:
        try:
            await session.flush()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict(f"a flow named {name!r} exists already in this workspace; choose another name") from exc

    @staticmethod
    async def _commit_named(session: AsyncSession, name: str) -> None:
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict(f"a flow named {name!r} exists already in this workspace; choose another name") from exc
