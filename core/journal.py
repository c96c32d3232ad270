"""The journal: execution events and node runs written in group commits, then published.

The engine calls `Journal.append` and `Journal.put_node_run` from its hot path; both only
enqueue and return. One writer task takes everything queued (up to `max_batch` items) and
writes it tenant by tenant, one transaction per tenant: events with one bulk insert, node
runs upserted on (execution_id, node_id), and `executions.last_seq` raised to the highest
seq written. Only after the commit are the events published, in seq order per execution,
on `executions:<execution_id>`. There is no artificial delay: while one batch is being
written the next one accumulates (natural group commit), so a busy journal writes big
batches and an idle one writes each item at once.

Crash semantics: what is enqueued lives in memory until its transaction commits. If the
process dies, the batch being written and what accumulated behind it (a write's worth of
time) are lost. Commits do not wait for the disk (SQLite WAL with synchronous=NORMAL,
PostgreSQL's synchronous_commit off for these transactions): only a crash of the machine
or the database server can undo the last fraction of a second of them. Subscribers never
saw an event that is not stored, because publishing follows the commit. A restart marks the run
`interrupted` (`ExecutionStore.mark_interrupted`), which appends its final event after the
last seq that reached the database.

Failures: a transaction that fails is logged and retried with backoff, its items kept in
order ahead of newer ones; other tenants' items are written meanwhile. Retries are safe
because events insert with ON CONFLICT DO NOTHING on (execution_id, seq) and node runs are
upserts. A tenant's items are given up (and logged, with the count) when its storage is
gone, when its writes keep failing for `give_up_after` seconds, or when a row breaks a
constraint (then only that execution's rows are dropped). `aclose` waits a bounded time
and logs how many items it could not write.

`BatchWriter` is the loop itself, keyed by tenant; `core.usage` writes usage records
through it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.executions import EventRecord, NodeRunRecord, NodeRunSource
from db.database import Database
from db.errors import TenantStorageMissing
from db.models.tenant import Execution, ExecutionEvent, NodeRun

log = logging.getLogger(__name__)

T = TypeVar("T")
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
WriteBatch = Callable[[str, list[T]], Awaitable[None]]

DEFAULT_MAX_BATCH = 2000
DEFAULT_CLOSE_TIMEOUT = 10.0
DEFAULT_GIVE_UP_AFTER = 120.0
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 5.0


class DropItems(Exception):
    """Raised by a batch function: these items can never be written; drop them, do not retry."""


@dataclass(slots=True)
class _Queued(Generic[T]):
    ticket: int
    key: str
    item: T


class BatchWriter(Generic[T]):
    """Group-commit loop: items queued per key (tenant) are written in batches by one task.

    `write(key, items)` writes one key's share of a batch in one transaction; it raises
    to have the items retried (with backoff, ahead of newer items) or `DropItems` to give
    them up. The task exists only while there is work; nothing runs when idle.
    `put` must be called on the event loop's thread, or after `start()` from any thread.
    """

    def __init__(
        self,
        write: WriteBatch[T],
        *,
        name: str,
        max_batch: int = DEFAULT_MAX_BATCH,
        give_up_after: float = DEFAULT_GIVE_UP_AFTER,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._write = write
        self._name = name
        self._max_batch = max(1, max_batch)
        self._give_up_after = give_up_after
        self._sleep = sleep
        self._queue: deque[_Queued[T]] = deque()
        self._in_flight: list[_Queued[T]] = []
        self._next_ticket = 1
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._failing_since: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lost = 0

    @property
    def pending(self) -> int:
        """Items queued or being written."""
        return len(self._queue) + len(self._in_flight)

    def start(self) -> None:
        """Bind to the running loop, so that `put` works from other threads too."""
        self._loop = asyncio.get_running_loop()

    def put(self, key: str, item: T) -> None:
        """Queue `item` under `key`; never waits."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or (self._loop is not running and self._loop.is_closed()):
            if running is None:
                raise RuntimeError(f"the {self._name} writer was not started; call start() on the event loop first")
            self._loop = running
        if running is self._loop:
            self._enqueue(key, item)
        else:  # a worker thread (CrewAI runs crews in threads): hand the item to the loop
            self._loop.call_soon_threadsafe(self._enqueue, key, item)

    def _enqueue(self, key: str, item: T) -> None:
        self._queue.append(_Queued(self._next_ticket, key, item))
        self._next_ticket += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._name}-writer")

    async def flush(self) -> None:
        """Return once everything queued before this call is written (or given up)."""
        target = self._next_ticket - 1
        if self._done_through() >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        await waiter

    async def aclose(self, wait_seconds: float = DEFAULT_CLOSE_TIMEOUT) -> int:
        """Write what is left, waiting at most `wait_seconds`; returns how many items were lost."""
        try:
            async with asyncio.timeout(wait_seconds):
                await self.flush()
        except TimeoutError:
            left = self.pending
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._queue.clear()
            self._in_flight = []
            self.lost += left
            log.error(
                "%s writer closed after %.0f s with %d item(s) unwritten; they are lost", self._name, wait_seconds, left
            )
            self._wake_waiters()
            return left
        finally:
            self._loop = None
        return 0

    def _done_through(self) -> int:
        """The highest ticket such that it and every ticket before it are written or given up."""
        oldest = self._in_flight[0] if self._in_flight else (self._queue[0] if self._queue else None)
        return oldest.ticket - 1 if oldest is not None else self._next_ticket - 1

    def _wake_waiters(self) -> None:
        done = self._done_through()
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, waiter in self._waiters:
            if waiter.done():
                continue
            if target <= done or not self.pending:
                waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still

    async def _run(self) -> None:
        delay = _BACKOFF_FIRST
        try:
            while self._queue:
                take = min(self._max_batch, len(self._queue))
                self._in_flight = [self._queue.popleft() for _ in range(take)]
                groups: dict[str, list[_Queued[T]]] = {}
                for queued in self._in_flight:
                    groups.setdefault(queued.key, []).append(queued)
                retry: list[_Queued[T]] = []
                for key, members in groups.items():
                    if not await self._write_group(key, members):
                        retry.extend(members)
                # Items to retry go back in front, in ticket order, ahead of everything newer.
                self._queue.extendleft(reversed(retry))
                self._in_flight = []
                self._wake_waiters()
                if retry:
                    await self._sleep(delay)
                    delay = min(delay * 2, _BACKOFF_MAX)
                else:
                    delay = _BACKOFF_FIRST
        finally:
            # Cancelled mid-write: those items are not known to be written; keep them, in order,
            # so a later task retries them (retries are idempotent) or `aclose` counts them lost.
            self._queue.extendleft(reversed(self._in_flight))
            self._in_flight = []

    async def _write_group(self, key: str, members: list[_Queued[T]]) -> bool:
        """Write one key's items; True when they are done with (written or dropped)."""
        try:
            await self._write(key, [queued.item for queued in members])
        except DropItems as exc:
            self._drop(key, len(members), str(exc))
        except TenantStorageMissing as exc:
            self._drop(key, len(members), f"its storage is gone ({exc})")
        except Exception as exc:  # any database failure: retried until give_up_after
            first = self._failing_since.setdefault(key, time.monotonic())
            if time.monotonic() - first < self._give_up_after:
                log.warning(
                    "%s writer: writing %d item(s) of tenant %s failed, will retry: %s: %s",
                    self._name,
                    len(members),
                    key,
                    type(exc).__name__,
                    exc,
                )
                return False
            self._drop(key, len(members), f"writes kept failing for {self._give_up_after:.0f} s ({exc})")
        self._failing_since.pop(key, None)
        return True

    def _drop(self, key: str, count: int, why: str) -> None:
        self.lost += count
        self._failing_since.pop(key, None)
        log.error("%s writer: gave up %d item(s) of tenant %s: %s", self._name, count, key, why)


# -- the journal -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NodeRunPut:
    run: NodeRunRecord | NodeRunSource

    def record(self) -> NodeRunRecord:
        return self.run if isinstance(self.run, NodeRunRecord) else self.run.snapshot()


_Item = EventRecord | _NodeRunPut


def _node_run_row(run: NodeRunRecord) -> dict[str, Any]:
    return {
        "execution_id": run.execution_id,
        "node_id": run.node_id,
        "node_type": run.node_type,
        "status": run.status,
        "inputs": run.inputs,
        "output": run.output,
        "error": run.error,
        "attempts": run.attempts,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "cost_usd": run.cost_usd,
        "flags": run.flags,
    }


_NODE_RUN_UPDATED = (
    "node_type",
    "status",
    "inputs",
    "output",
    "error",
    "attempts",
    "started_at",
    "finished_at",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "flags",
)


class Journal:
    """Durable, ordered execution events and node runs, written in group commits, then published."""

    def __init__(
        self,
        db: Database,
        publish: Publish,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        give_up_after: float = DEFAULT_GIVE_UP_AFTER,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._db = db
        self._publish = publish
        self._close_timeout = close_timeout
        self._writer: BatchWriter[_Item] = BatchWriter(
            self._write, name="journal", max_batch=max_batch, give_up_after=give_up_after
        )

    @property
    def pending(self) -> int:
        """Events and node-run puts not yet committed."""
        return self._writer.pending

    @property
    def lost(self) -> int:
        """Items given up since this journal was made (each one was logged)."""
        return self._writer.lost

    async def start(self) -> None:
        """Bind to the running loop (appends from worker threads are handed to it)."""
        self._writer.start()

    def append(self, tenant_slug: str, event: EventRecord) -> None:
        """Queue an event; the caller assigns `seq`, gap-free per execution. Never waits."""
        self._writer.put(tenant_slug, event)

    def put_node_run(self, tenant_slug: str, run: NodeRunRecord | NodeRunSource) -> None:
        """Queue a node run; puts of one node run before a write collapse into the last.

        A `NodeRunSource` is read when its batch is written, so the row holds its latest state
        and the caller's hot path builds no record at all."""
        self._writer.put(tenant_slug, _NodeRunPut(run))

    async def flush(self) -> None:
        """Return once everything queued before the call is committed and its events published."""
        await self._writer.flush()

    async def aclose(self) -> None:
        """Write and publish what is left (for a bounded time), then stop."""
        await self._writer.aclose(self._close_timeout)

    async def _write(self, tenant_slug: str, items: list[_Item]) -> None:
        events: dict[uuid.UUID, list[EventRecord]] = {}
        latest: dict[tuple[uuid.UUID, str], _NodeRunPut] = {}
        for item in items:
            if isinstance(item, EventRecord):
                events.setdefault(item.execution_id, []).append(item)
            else:  # later puts of the same node run replace earlier ones: only the last state matters
                latest[(item.run.execution_id, item.run.node_id)] = item
        runs = {key: put.record() for key, put in latest.items()}
        for batch in events.values():
            batch.sort(key=lambda event: event.seq)
        try:
            async with self._db.tenant_session(tenant_slug) as session:
                await self._store(session, events, list(runs.values()))
                await session.commit()
        except IntegrityError:
            # A row breaks a constraint (its execution was deleted, say): write execution by
            # execution so only the broken one is dropped, not the whole tenant's batch.
            events = await self._store_one_by_one(tenant_slug, events, runs)
        for execution_id, batch in events.items():
            channel = f"executions:{execution_id}"
            for event in batch:
                try:
                    await self._publish(channel, event.as_dict())
                except Exception as exc:  # the bus is not durable: the stored event is the truth
                    log.warning("could not publish event %d of execution %s: %s", event.seq, execution_id, exc)

    async def _store_one_by_one(
        self,
        tenant_slug: str,
        events: dict[uuid.UUID, list[EventRecord]],
        runs: dict[tuple[uuid.UUID, str], NodeRunRecord],
    ) -> dict[uuid.UUID, list[EventRecord]]:
        stored: dict[uuid.UUID, list[EventRecord]] = {}
        for execution_id in dict.fromkeys([*events, *(key[0] for key in runs)]):
            own_events = {execution_id: events[execution_id]} if execution_id in events else {}
            own_runs = [run for key, run in runs.items() if key[0] == execution_id]
            try:
                async with self._db.tenant_session(tenant_slug) as session:
                    await self._store(session, own_events, own_runs)
                    await session.commit()
            except IntegrityError as exc:
                count = len(own_events.get(execution_id, [])) + len(own_runs)
                self._writer.lost += count
                log.error(
                    "journal: gave up %d item(s) of execution %s in tenant %s: %s",
                    count,
                    execution_id,
                    tenant_slug,
                    type(exc).__name__,
                )
            else:
                stored.update(own_events)
        return stored

    async def _store(
        self, session: AsyncSession, events: dict[uuid.UUID, list[EventRecord]], runs: list[NodeRunRecord]
    ) -> None:
        if self._db.is_postgres:
            # The journal's commits need not wait for the server's WAL flush: an app crash loses
            # nothing committed, a database server crash at most its last fraction of a second.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        rows = [
            {
                "id": uuid.uuid4(),
                "execution_id": event.execution_id,
                "seq": event.seq,
                "ts": event.ts,
                "type": event.type,
                "node_id": event.node_id,
                "data": event.data,
            }
            for batch in events.values()
            for event in batch
        ]
        if rows:
            # DO NOTHING on a repeated (execution_id, seq): a retry after an ambiguous commit is harmless.
            insert_events = self._insert(ExecutionEvent).on_conflict_do_nothing(index_elements=["execution_id", "seq"])
            await session.execute(insert_events, rows)
        if runs:
            insert_runs = self._insert(NodeRun)
            upsert = insert_runs.on_conflict_do_update(
                index_elements=["execution_id", "node_id"],
                set_={name: insert_runs.excluded[name] for name in _NODE_RUN_UPDATED},
            )
            await session.execute(upsert, [{"id": uuid.uuid4(), **_node_run_row(run)} for run in runs])
        for execution_id, batch in events.items():
            highest = batch[-1].seq
            await session.execute(
                update(Execution)
                .where(Execution.id == execution_id, Execution.last_seq < highest)
                .values(last_seq=highest)
            )

    def _insert(self, model: type[ExecutionEvent] | type[NodeRun]) -> Any:
        """The dialect's INSERT on the model's table (Core, not ORM bulk): both have ON CONFLICT, spelled alike."""
        factory = postgresql.insert if self._db.is_postgres else sqlite.insert
        return factory(cast(Table, model.__table__))
