"""Deadlines of waiting nodes, stored so that any app process can fire them, also after a restart.

A paused execution holds no task, so "answer within a day" cannot be a sleep: the pause
stores a timer (`execution_timers`, control plane, one indexed query across tenants),
every process polls for due ones, and whichever takes a timer first (the delete that
removes it) fires it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, select
from sqlalchemy.exc import IntegrityError

from db.base import utcnow
from db.database import Database
from db.models.control import ExecutionTimer


@dataclass(frozen=True, slots=True)
class Timer:
    """One node's deadline."""

    tenant_id: uuid.UUID
    tenant_slug: str
    execution_id: uuid.UUID
    node_id: str
    due_at: datetime


class TimerStore:
    """Set, take and drop the deadlines of waiting nodes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(self, timers: Iterable[Timer]) -> None:
        """Store deadlines; one that is stored already stays as it is."""
        for timer in timers:
            try:
                async with self._db.control_session() as session:
                    session.add(
                        ExecutionTimer(
                            id=uuid.uuid4(),
                            tenant_id=timer.tenant_id,
                            tenant_slug=timer.tenant_slug,
                            execution_id=timer.execution_id,
                            node_id=timer.node_id,
                            due_at=timer.due_at,
                        )
                    )
                    await session.commit()
            except IntegrityError:  # a pause stored again after a resume: the first deadline holds
                continue

    async def take_due(self, limit: int = 100) -> list[Timer]:
        """Due timers, each removed as it is taken: a timer goes to one process only."""
        async with self._db.control_session() as session:
            rows = list(
                await session.scalars(
                    select(ExecutionTimer)
                    .where(ExecutionTimer.due_at <= utcnow())
                    .order_by(ExecutionTimer.due_at)
                    .limit(limit)
                )
            )
        taken: list[Timer] = []
        for row in rows:
            async with self._db.control_session() as session:
                result = await session.execute(delete(ExecutionTimer).where(ExecutionTimer.id == row.id))
                await session.commit()
            if getattr(result, "rowcount", 0) == 1:
                taken.append(Timer(row.tenant_id, row.tenant_slug, row.execution_id, row.node_id, row.due_at))
        return taken

    async def drop(self, tenant_slug: str, execution_id: uuid.UUID, node_ids: Iterable[str] | None = None) -> None:
        """Forget the deadlines of an execution (of some of its nodes): they were answered, or the run ended."""
        where = and_(ExecutionTimer.tenant_slug == tenant_slug, ExecutionTimer.execution_id == execution_id)
        if node_ids is not None:
            where = and_(where, ExecutionTimer.node_id.in_(list(node_ids)))
        async with self._db.control_session() as session:
            await session.execute(delete(ExecutionTimer).where(where))
            await session.commit()
