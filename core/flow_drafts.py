"""Flow drafts: the editor's unsaved state of each flow, stored on every change.

One draft per flow, a plain document dict here (what it means is the executor's business,
`executor.drafts`). Each stored change carries the revision it was made on, and is written
only if that is still the stored revision (optimistic concurrency): `INSERT` for the first
one (the primary key refuses a second), `UPDATE ... WHERE revision = expected` after that.
A change made on a stale revision is a `Conflict`, never a silent overwrite.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound
from db.base import utcnow
from db.database import Database
from db.models.tenant import Flow, FlowDraft


@dataclass(frozen=True, slots=True)
class DraftRecord:
    """A stored draft: its document, the version it started from and its revision."""

    flow_id: uuid.UUID
    document: dict[str, Any]
    base_version: int
    revision: int
    updated_by: uuid.UUID | None
    updated_at: datetime


def _record(row: FlowDraft) -> DraftRecord:
    return DraftRecord(
        flow_id=row.flow_id,
        document=row.document,
        base_version=row.base_version,
        revision=row.revision,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


class DraftStore:
    """Read, write (revision-checked) and delete the draft of a tenant's flow."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, ctx: TenantContext, flow_id: uuid.UUID) -> DraftRecord | None:
        """The flow's stored draft, or None when it has none; `NotFound` when there is no such flow."""
        ctx.require(Role.VIEWER, "see flows")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await session.get(FlowDraft, flow_id)
            if row is not None:
                return _record(row)
            await self._require_flow(session, flow_id)
            return None

    async def put(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        document: dict[str, Any],
        *,
        base_version: int,
        expected_revision: int,
    ) -> DraftRecord:
        """Store `document` as the flow's draft, made on `expected_revision` (0: no draft stored yet).

        Returns the stored draft with its new revision; `Conflict` when the stored revision
        is another one (the draft was changed, saved or discarded elsewhere).
        """
        ctx.require(Role.EDITOR, "edit flows")
        if not isinstance(document, dict):
            raise InvalidInput("document must be a JSON object", field="document")
        if expected_revision < 0:
            raise InvalidInput("revision must be 0 (no draft yet) or more", field="revision")
        if base_version < 1:
            raise InvalidInput("base_version must be 1 or more", field="base_version")
        now = utcnow()
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            if expected_revision == 0:
                row = FlowDraft(
                    flow_id=flow_id,
                    document=document,
                    base_version=base_version,
                    revision=1,
                    updated_by=ctx.user_id,
                    updated_at=now,
                )
                session.add(row)
                try:
                    await session.commit()
                except IntegrityError as exc:  # a draft exists already, or the flow does not
                    await session.rollback()
                    raise await self._refused(session, flow_id, expected_revision) from exc
                return _record(row)
            stored = await session.scalar(
                update(FlowDraft)
                .where(FlowDraft.flow_id == flow_id, FlowDraft.revision == expected_revision)
                .values(
                    document=document,
                    base_version=base_version,
                    revision=FlowDraft.revision + 1,
                    updated_by=ctx.user_id,
                    updated_at=now,
                )
                .returning(FlowDraft.revision)
                .execution_options(synchronize_session=False)
            )
            if stored is None:
                await session.rollback()
                raise await self._refused(session, flow_id, expected_revision)
            await session.commit()
            return DraftRecord(flow_id, document, base_version, int(stored), ctx.user_id, now)

    async def delete(self, ctx: TenantContext, flow_id: uuid.UUID, *, revision: int | None = None) -> bool:
        """Delete the flow's draft (only if it is still at `revision`, when given); whether one was deleted."""
        ctx.require(Role.EDITOR, "edit flows")
        statement = delete(FlowDraft).where(FlowDraft.flow_id == flow_id)
        if revision is not None:
            statement = statement.where(FlowDraft.revision == revision)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            result = await session.execute(statement)
            deleted = bool(getattr(result, "rowcount", 0))
            if not deleted:
                await self._require_flow(session, flow_id)
            await session.commit()
            return deleted

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    async def _require_flow(session: AsyncSession, flow_id: uuid.UUID) -> None:
        if await session.scalar(select(Flow.id).where(Flow.id == flow_id)) is None:
            raise NotFound(f"no flow with id {flow_id} in this workspace; it may have been deleted")

    async def _refused(self, session: AsyncSession, flow_id: uuid.UUID, expected: int) -> Exception:
        """Why a write on revision `expected` was refused: no such flow, or the draft is at another revision."""
        await self._require_flow(session, flow_id)
        current = await session.scalar(select(FlowDraft.revision).where(FlowDraft.flow_id == flow_id))
        return stale_draft(expected, current or 0)


def stale_draft(expected: int, current: int) -> Conflict:
    """The conflict of a change made on revision `expected` of a draft that is at `current` (0: none stored)."""
    if current == 0:
        state = "it was saved or discarded since"
    elif expected == 0:
        state = f"someone stored one meanwhile (revision {current})"
    else:
        state = f"it is at revision {current} now, not {expected}"
    return Conflict(f"the draft of this flow was changed elsewhere: {state}; reload it and apply your change again")
