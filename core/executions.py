"""Executions: the stored runs of flow versions, their node runs and their events.

Plain data in, plain data out: this module reads and writes rows and knows nothing of how
a flow runs. The engine writes events and node runs through `core.journal.Journal` (in
batches); this store creates and finishes executions and reads everything back.

Statuses of an execution: pending | running | waiting | completed | failed | cancelled |
interrupted. `mark_interrupted` is the start-up sweep: runs a dead process left `running`
or `pending` become `interrupted`, keeping their events and node runs for debugging and
retries; `waiting` runs are durable pauses and stay as they are.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role, TenantContext
from core.errors import InvalidInput, NotFound
from core.execution_usage import ExecutionUsage, execution_usage
from db.base import utcnow
from db.database import Database
from db.errors import TenantStorageMissing
from db.models.tenant import Execution, ExecutionEvent, NodeRun

log = logging.getLogger(__name__)

#: Statuses that mean the run is over.
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "interrupted"})
#: Statuses a run left behind by a dead process can have; the start-up sweep interrupts them.
LIVE_STATUSES = ("running", "pending")
#: Statuses of a node that waits, or whose answer is not yet taken up, in a paused run.
PAUSED_NODE_STATUSES = ("waiting", "answered", "released")
#: Statuses of a run that is not over.
OPEN_STATUSES = ("pending", "running", "waiting")
INTERRUPTED_ERROR = "the process running it stopped"
MAX_PAGE = 500
MAX_EVENTS = 5000
# Tenants swept at once on start-up: enough to be quick, few enough to leave the pool usable.
_SWEEP_CONCURRENCY = 4


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@functools.lru_cache(maxsize=4096)
def _id_text(value: uuid.UUID) -> str:
    """An execution id as text, remembered: every event of a run spells the same id."""
    return str(value)


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


class NodeRunSource(Protocol):
    """A node run still going: the journal takes its `snapshot` when it writes (the latest state wins)."""

    execution_id: uuid.UUID
    node_id: str

    def snapshot(self) -> NodeRunRecord: ...


@dataclass(slots=True)  # not frozen: made twice per node on the engine's hot path, and never changed
class EventRecord:
    """One event of an execution; `seq` is gap-free per execution, assigned by the engine."""

    execution_id: uuid.UUID
    seq: int
    ts: datetime
    type: str
    node_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ids as text, `ts` in ISO 8601."""
        return {
            "execution_id": _id_text(self.execution_id),
            "seq": self.seq,
            "ts": self.ts.isoformat(),
            "type": self.type,
            "node_id": self.node_id,
            "data": self.data,
        }


@dataclass(slots=True)  # not frozen, for the same reason as `EventRecord`
class NodeRunRecord:
    """One node's run in an execution: its resolved inputs, output or error, attempts, timings, tokens."""

    execution_id: uuid.UUID
    node_id: str
    node_type: str
    status: str
    inputs: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    flags: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ids as text, moments in ISO 8601."""
        return {
            "execution_id": str(self.execution_id),
            "node_id": self.node_id,
            "node_type": self.node_type,
            "status": self.status,
            "inputs": self.inputs,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "flags": self.flags,
        }


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One run of a flow version; `get` fills `node_runs`, lists only a paused run's waiting ones (its questions)."""

    id: uuid.UUID
    flow_id: uuid.UUID | None
    flow_version_id: uuid.UUID | None
    version: int | None
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    started_by: uuid.UUID | None
    started_at: datetime | None
    finished_at: datetime | None
    parent_execution_id: uuid.UUID | None
    parent_node_id: str | None
    options: dict[str, Any]
    node_runs: list[NodeRunRecord] = field(default_factory=list)
    last_seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ids as text, moments in ISO 8601, node runs included."""
        return {
            "id": str(self.id),
            "flow_id": _str(self.flow_id),
            "flow_version_id": _str(self.flow_version_id),
            "version": self.version,
            "status": self.status,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "error": self.error,
            "started_by": _str(self.started_by),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "parent_execution_id": _str(self.parent_execution_id),
            "parent_node_id": self.parent_node_id,
            "options": self.options,
            "node_runs": [run.as_dict() for run in self.node_runs],
        }

    def runs_by_node(self) -> dict[str, NodeRunRecord]:
        """The node runs keyed by node id."""
        return {run.node_id: run for run in self.node_runs}


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    """A page of executions, newest first; pass `next_before` (and `next_before_id`) for the next one."""

    items: list[ExecutionRecord]
    next_before: datetime | None
    next_before_id: uuid.UUID | None = None


def execution_record(row: Execution, node_runs: list[NodeRunRecord] | None = None) -> ExecutionRecord:
    """The record of an `executions` row."""
    return ExecutionRecord(
        id=row.id,
        flow_id=row.flow_id,
        flow_version_id=row.flow_version_id,
        version=row.version,
        status=row.status,
        inputs=row.inputs,
        outputs=row.outputs,
        error=row.error,
        started_by=row.started_by,
        started_at=row.started_at,
        finished_at=row.finished_at,
        parent_execution_id=row.parent_execution_id,
        parent_node_id=row.parent_node_id,
        options=row.options,
        node_runs=node_runs or [],
        last_seq=row.last_seq or 0,
    )


def node_run_record(row: NodeRun) -> NodeRunRecord:
    """The record of a `node_runs` row."""
    return NodeRunRecord(
        execution_id=row.execution_id,
        node_id=row.node_id,
        node_type=row.node_type,
        status=row.status,
        inputs=row.inputs,
        output=row.output,
        error=row.error,
        attempts=row.attempts,
        started_at=row.started_at,
        finished_at=row.finished_at,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=row.cost_usd,
        flags=row.flags,
    )


def event_record(row: ExecutionEvent) -> EventRecord:
    """The record of an `execution_events` row."""
    return EventRecord(
        execution_id=row.execution_id,
        seq=row.seq,
        ts=row.ts,
        type=row.type,
        node_id=row.node_id,
        data=row.data,
    )


class ExecutionStore:
    """Create, finish, list and read executions with their node runs and events."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        ctx: TenantContext,
        *,
        flow_id: uuid.UUID | None,
        flow_version_id: uuid.UUID | None,
        version: int | None,
        inputs: dict[str, Any],
        options: dict[str, Any],
        parent_execution_id: uuid.UUID | None = None,
        parent_node_id: str | None = None,
        runner_id: uuid.UUID | None = None,
    ) -> ExecutionRecord:
        """Store a new execution, `running` from now, started by the caller."""
        ctx.require(Role.EDITOR, "run flows")
        now = utcnow()
        row = Execution(
            id=uuid.uuid4(),
            flow_id=flow_id,
            flow_version_id=flow_version_id,
            version=version,
            status="running",
            inputs=inputs,
            outputs={},
            options=options,
            started_by=ctx.user_id,
            started_at=now,
            created_at=now,
            updated_at=now,
            parent_execution_id=parent_execution_id,
            parent_node_id=parent_node_id,
            last_seq=0,
            runner_id=runner_id,
        )
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:  # the foreign keys: the flow or version is gone
                await session.rollback()
                raise NotFound(f"no flow with id {flow_id} (or not that version) in this workspace") from exc
        return execution_record(row)

    async def get(self, ctx: TenantContext, execution_id: uuid.UUID) -> ExecutionRecord:
        """One execution with every node run it has so far."""
        ctx.require(Role.VIEWER, "see executions")
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            row = await self._load(session, execution_id)
            runs = await session.scalars(
                select(NodeRun)
                .where(NodeRun.execution_id == execution_id)
                .order_by(NodeRun.started_at.asc().nulls_last(), NodeRun.node_id)
            )
            return execution_record(row, [node_run_record(run) for run in runs])

    async def list(
        self,
        ctx: TenantContext,
        *,
        flow_id: uuid.UUID | None = None,
        status: str | None = None,
        limit: int = 50,
        before: datetime | None = None,
        before_id: uuid.UUID | None = None,
        parent_execution_id: uuid.UUID | None = None,
    ) -> ExecutionPage:
        """Executions newest first (by start), optionally of one flow, in one status, or run by one run's subflows.

        A paused run comes with its waiting node runs (prompt, actions, deadline in their
        `flags["waiting"]`): `status="waiting"` is the inbox of what waits for someone.

        Paging is by key: pass the page's `next_before` (and `next_before_id`, which keeps
        runs that started in the same microsecond from being skipped) to get the next page.
        """
        ctx.require(Role.VIEWER, "see executions")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        query = select(Execution).where(Execution.started_at.is_not(None))
        if flow_id is not None:
            query = query.where(Execution.flow_id == flow_id)
        if status is not None:
            query = query.where(Execution.status == status)
        if parent_execution_id is not None:
            query = query.where(Execution.parent_execution_id == parent_execution_id)
        if before is not None:
            # SQLite compares stored moments as text, so the cursor must be in UTC like they are.
            moment = before.astimezone(UTC) if before.tzinfo else before.replace(tzinfo=UTC)
            if before_id is None:
                query = query.where(Execution.started_at < moment)
            else:
                query = query.where(
                    or_(
                        Execution.started_at < moment,
                        and_(Execution.started_at == moment, Execution.id < before_id),
                    )
                )
        query = query.order_by(Execution.started_at.desc(), Execution.id.desc()).limit(limit + 1)
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            rows = list(await session.scalars(query))
            asking = await self._waiting_nodes(session, [row.id for row in rows[:limit] if row.status == "waiting"])
        items = [execution_record(row, asking.get(row.id)) for row in rows[:limit]]
        if len(rows) <= limit:
            return ExecutionPage(items, None, None)
        last = items[-1]
        return ExecutionPage(items, last.started_at, last.id)

    @staticmethod
    async def _waiting_nodes(
        session: AsyncSession, execution_ids: builtins.list[uuid.UUID]
    ) -> dict[uuid.UUID, builtins.list[NodeRunRecord]]:
        """The waiting node runs of these runs (what a paused run asks for), by execution."""
        found: dict[uuid.UUID, builtins.list[NodeRunRecord]] = {}
        if execution_ids:
            query = select(NodeRun).where(NodeRun.execution_id.in_(execution_ids), NodeRun.status == "waiting")
            for run in await session.scalars(query.order_by(NodeRun.node_id)):
                found.setdefault(run.execution_id, []).append(node_run_record(run))
        return found

    async def usage(self, ctx: TenantContext, execution_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, ExecutionUsage]:
        """Tokens and cost of each of these executions, summed over its own node runs in one query."""
        return await execution_usage(self._db, ctx, execution_ids)

    async def events(
        self, ctx: TenantContext, execution_id: uuid.UUID, *, after_seq: int = 0, limit: int = 500
    ) -> builtins.list[EventRecord]:
        """The execution's stored events with `seq` above `after_seq`, in order."""
        ctx.require(Role.VIEWER, "see executions")
        limit = max(1, min(limit, MAX_EVENTS))
        query = (
            select(ExecutionEvent)
            .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > after_seq)
            .order_by(ExecutionEvent.seq)
            .limit(limit)
        )
        async with self._db.tenant_session(ctx.tenant_slug) as session:
            events = [event_record(row) for row in await session.scalars(query)]
            if not events:  # an empty page is fine for a run that exists, and NotFound otherwise
                await self._load(session, execution_id)
        return events

    async def finish(
        self,
        tenant_slug: str,
        execution_id: uuid.UUID,
        status: str,
        *,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Set the execution's final `status` (and outputs or error), finished now."""
        if status not in TERMINAL_STATUSES:
            raise InvalidInput(f"status {status!r} does not end a run; use one of {sorted(TERMINAL_STATUSES)}")
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error, "updated_at": utcnow()}
        if outputs is not None:
            values["outputs"] = outputs
        await self._update(tenant_slug, execution_id, values)

    async def set_status(self, tenant_slug: str, execution_id: uuid.UUID, status: str) -> None:
        """Move a run between statuses that do not end it (`running` <-> `waiting`)."""
        if status not in OPEN_STATUSES:
            raise InvalidInput(f"status {status!r} is not one of {list(OPEN_STATUSES)}; use finish() to end a run")
        values: dict[str, Any] = {"status": status, "finished_at": None, "error": None, "updated_at": utcnow()}
        await self._update(tenant_slug, execution_id, values)

    async def move(
        self, tenant_slug: str, execution_id: uuid.UUID, from_status: str, to_status: str, *, runner_id: uuid.UUID
    ) -> bool:
        """Move a run from `from_status` to an open `to_status` if it is still in `from_status`; whether it moved.

        The compare-and-set that lets exactly one process take a paused run (`waiting` ->
        `running`) and makes a pause (`running` -> `waiting`) lose to nothing."""
        if to_status not in OPEN_STATUSES:
            raise InvalidInput(f"status {to_status!r} is not one of {list(OPEN_STATUSES)}; use finish() to end a run")
        values = {"status": to_status, "runner_id": runner_id, "updated_at": utcnow()}
        async with self._db.tenant_session(tenant_slug) as session:
            result = await session.execute(
                update(Execution).where(Execution.id == execution_id, Execution.status == from_status).values(**values)
            )
            await session.commit()
        return getattr(result, "rowcount", 0) == 1

    async def answer_node(
        self, tenant_slug: str, execution_id: uuid.UUID, node_id: str, status: str, flags: dict[str, Any]
    ) -> str | None:
        """Give a `waiting` node run its answer: `status` and `flags` merged in, if it still waits.

        None when it did; otherwise the status the node run has (`"missing"` when there is none)."""
        async with self._db.tenant_session(tenant_slug) as session:
            row = await session.scalar(
                select(NodeRun).where(NodeRun.execution_id == execution_id, NodeRun.node_id == node_id)
            )
            if row is None:
                return "missing"
            if row.status != "waiting":
                return row.status
            result = await session.execute(
                update(NodeRun)
                .where(NodeRun.id == row.id, NodeRun.status == "waiting")
                .values(status=status, flags={**row.flags, **flags})
            )
            await session.commit()
            return None if getattr(result, "rowcount", 0) == 1 else "answered"

    async def answered_while_paused(self, tenant_slugs: Iterable[str]) -> dict[str, builtins.list[uuid.UUID]]:
        """Per tenant, paused runs with an answer stored on a waiting node that nobody took up yet.

        A tenant whose storage is missing or broken is skipped and logged."""
        found: dict[str, builtins.list[uuid.UUID]] = {}
        query = (
            select(Execution.id)
            .join(NodeRun, NodeRun.execution_id == Execution.id)
            .where(Execution.status == "waiting", NodeRun.status.in_(("answered", "released")))
            .distinct()
        )
        for slug in tenant_slugs:
            try:
                async with self._db.tenant_session(slug) as session:
                    ids = list(await session.scalars(query))
            except (TenantStorageMissing, SQLAlchemyError) as exc:
                log.error("could not look for answered runs of tenant %s: %s", slug, type(exc).__name__)
                continue
            if ids:
                found[slug] = ids
        return found

    async def mark_interrupted(self, tenant_slugs: Iterable[str], *, live_runners: Collection[uuid.UUID] = ()) -> int:
        """Sweep: every `running`/`pending` run in these tenants whose runner is not live becomes `interrupted`.

        `live_runners` are the app instances still heartbeating (`core.instances`); with none
        given, every running run counts as dead (one process, at its own start). Their
        `running`/`pending` node runs become `interrupted` too; events and node runs are kept,
        and each run gets a final `execution_interrupted` event. Returns how many runs were
        interrupted. A tenant whose storage is missing or broken is skipped and logged.
        """
        slots = asyncio.Semaphore(_SWEEP_CONCURRENCY)

        async def one(slug: str) -> int:
            async with slots:
                try:
                    return await self._interrupt_tenant(slug, live_runners)
                except (TenantStorageMissing, SQLAlchemyError) as exc:  # one tenant must not stop the sweep
                    log.error("could not interrupt the dead runs of tenant %s: %s", slug, type(exc).__name__)
                    return 0

        counts = await asyncio.gather(*(one(slug) for slug in dict.fromkeys(tenant_slugs)))
        return sum(counts)

    # -- helpers ---------------------------------------------------------------------------

    async def _interrupt_tenant(self, slug: str, live_runners: Collection[uuid.UUID]) -> int:
        now = utcnow()
        async with self._db.tenant_session(slug) as session:
            query = select(Execution.id).where(Execution.status.in_(LIVE_STATUSES))
            if live_runners:
                # Runs of live processes go on; a run without a runner predates runners or lost its process.
                query = query.where(or_(Execution.runner_id.is_(None), Execution.runner_id.not_in(list(live_runners))))
            ids = list(await session.scalars(query))
            if not ids:
                return 0
            await session.execute(
                update(Execution)
                .where(Execution.id.in_(ids))
                .values(status="interrupted", finished_at=now, error=INTERRUPTED_ERROR, updated_at=now)
            )
            await session.execute(
                update(NodeRun)
                .where(NodeRun.execution_id.in_(ids), NodeRun.status.in_((*LIVE_STATUSES, *PAUSED_NODE_STATUSES)))
                .values(status="interrupted", finished_at=now)
            )
            # The events table, not `last_seq`, says which seq is next: it is the durable truth.
            last = dict(
                (
                    await session.execute(
                        select(ExecutionEvent.execution_id, func.max(ExecutionEvent.seq))
                        .where(ExecutionEvent.execution_id.in_(ids))
                        .group_by(ExecutionEvent.execution_id)
                    )
                )
                .tuples()
                .all()
            )
            events = [
                {
                    "id": uuid.uuid4(),
                    "execution_id": execution_id,
                    "seq": (last.get(execution_id) or 0) + 1,
                    "ts": now,
                    "type": "execution_interrupted",
                    "node_id": None,
                    "data": {"error": INTERRUPTED_ERROR},
                }
                for execution_id in ids
            ]
            await session.execute(insert(ExecutionEvent), events)
            for event in events:
                await session.execute(
                    update(Execution).where(Execution.id == event["execution_id"]).values(last_seq=event["seq"])
                )
            await session.commit()
        log.warning("marked %d run(s) of tenant %s interrupted: their process had stopped", len(ids), slug)
        return len(ids)

    async def _update(self, tenant_slug: str, execution_id: uuid.UUID, values: dict[str, Any]) -> None:
        async with self._db.tenant_session(tenant_slug) as session:
            result = await session.execute(update(Execution).where(Execution.id == execution_id).values(**values))
            if getattr(result, "rowcount", 0) == 0:
                raise self._missing(execution_id)
            await session.commit()

    @staticmethod
    def _missing(execution_id: uuid.UUID) -> NotFound:
        return NotFound(f"no execution with id {execution_id} in this workspace; it may have been deleted")

    async def _load(self, session: AsyncSession, execution_id: uuid.UUID) -> Execution:
        row = await session.get(Execution, execution_id)
        if row is None:
            raise self._missing(execution_id)
        return row
