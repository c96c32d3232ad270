"""The journal's group commits on SQLite and PostgreSQL, the batch loop itself, and batched usage records.

The bus is an honest fake: an async function appending to a list, as `MemoryEventBus`
would deliver to one subscriber.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select

from core.context import Role, TenantContext
from core.executions import EventRecord, ExecutionRecord, ExecutionStore, NodeRunRecord
from core.journal import BatchWriter, DropItems, Journal
from core.usage import DatabaseUsageStore, UsageEntry
from db.database import Database
from db.models.tenant import Execution, ExecutionEvent, NodeRun, UsageRecord
from tests.fixtures.llm_stack import make_tenant


@dataclasses.dataclass
class Setup:
    db: Database
    journal: Journal
    published: list[tuple[str, dict[str, Any]]]
    store: ExecutionStore
    ctx: TenantContext

    async def run(self) -> ExecutionRecord:
        return await self.store.create(
            self.ctx, flow_id=None, flow_version_id=None, version=None, inputs={}, options={}
        )


@pytest.fixture
async def setup(db: Database) -> AsyncIterator[Setup]:
    admin, _ = await make_tenant(db, "acme")
    published: list[tuple[str, dict[str, Any]]] = []

    async def publish(channel: str, message: dict[str, Any]) -> None:
        published.append((channel, message))

    journal = Journal(db, publish)
    await journal.start()
    try:
        yield Setup(db, journal, published, ExecutionStore(db), dataclasses.replace(admin, role=Role.EDITOR))
    finally:
        await journal.aclose()


def make_event(execution_id: uuid.UUID, seq: int, kind: str = "token", **data: Any) -> EventRecord:
    return EventRecord(execution_id, seq, datetime.now(UTC), kind, "n1", data)


@contextmanager
def counting_commits(db: Database, engine: Any) -> Iterator[list[int]]:
    """Count the transactions committed on the tenant's engine while the block runs."""
    commits: list[int] = []
    target = db.engine.sync_engine if db.is_postgres else engine.sync_engine

    def on_commit(_connection: Any) -> None:
        commits.append(1)

    event.listen(target, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(target, "commit", on_commit)


async def stored_events(db: Database, slug: str = "acme") -> list[tuple[uuid.UUID, int, dict[str, Any]]]:
    query = select(ExecutionEvent.execution_id, ExecutionEvent.seq, ExecutionEvent.data).order_by(
        ExecutionEvent.execution_id, ExecutionEvent.seq
    )
    async with db.tenant_session(slug) as session:
        return list((await session.execute(query)).tuples().all())


async def test_thousand_events_of_ten_executions_are_stored_gap_free_and_published_in_order(setup: Setup) -> None:
    executions = [(await setup.run()).id for _ in range(10)]
    for seq in range(1, 101):
        for execution_id in executions:  # interleaved, as concurrent runs would append
            setup.journal.append("acme", make_event(execution_id, seq, n=seq))
    await setup.journal.flush()

    stored = await stored_events(setup.db)
    assert len(stored) == 1000
    for execution_id in executions:
        assert [seq for eid, seq, _ in stored if eid == execution_id] == list(range(1, 101))
        channel = f"executions:{execution_id}"
        assert [m["seq"] for c, m in setup.published if c == channel] == list(range(1, 101))
    assert len(setup.published) == 1000
    first = setup.published[0][1]
    assert set(first) == {"execution_id", "seq", "ts", "type", "node_id", "data"}
    async with setup.db.tenant_session("acme") as session:
        assert set(await session.scalars(select(Execution.last_seq))) == {100}


async def test_events_appended_at_once_go_in_one_transaction(setup: Setup) -> None:
    execution = await setup.run()
    engine = await setup.db.tenant_engine("acme")
    with counting_commits(setup.db, engine) as commits:
        for seq in range(1, 501):
            setup.journal.append("acme", make_event(execution.id, seq))
        await setup.journal.flush()
    assert len(commits) == 1


async def test_a_batch_is_capped(db: Database) -> None:
    admin, _ = await make_tenant(db, "acme")
    execution = await ExecutionStore(db).create(
        admin, flow_id=None, flow_version_id=None, version=None, inputs={}, options={}
    )

    async def publish(channel: str, message: dict[str, Any]) -> None:
        pass

    journal = Journal(db, publish, max_batch=300)
    engine = await db.tenant_engine("acme")
    with counting_commits(db, engine) as commits:
        for seq in range(1, 1001):
            journal.append("acme", make_event(execution.id, seq))
        await journal.aclose()
    assert len(commits) == 4
    assert len(await stored_events(db)) == 1000


async def test_events_are_published_only_once_stored(db: Database) -> None:
    admin, _ = await make_tenant(db, "acme")
    execution = await ExecutionStore(db).create(
        admin, flow_id=None, flow_version_id=None, version=None, inputs={}, options={}
    )
    seen_stored: list[bool] = []

    async def publish(channel: str, message: dict[str, Any]) -> None:
        seqs = {seq for _, seq, _ in await stored_events(db)}
        seen_stored.append(message["seq"] in seqs)

    journal = Journal(db, publish)
    for seq in (1, 2, 3):
        journal.append("acme", make_event(execution.id, seq))
    await journal.flush()
    assert seen_stored == [True, True, True]
    await journal.aclose()


async def test_node_run_puts_before_a_write_collapse_into_the_last(setup: Setup) -> None:
    execution = await setup.run()
    engine = await setup.db.tenant_engine("acme")
    with counting_commits(setup.db, engine) as commits:
        for status, attempts in (("pending", 0), ("running", 1), ("completed", 1)):
            setup.journal.put_node_run("acme", NodeRunRecord(execution.id, "a", "llm", status, attempts=attempts))
        await setup.journal.flush()
    assert len(commits) == 1
    assert [(r.status, r.attempts) for r in (await setup.store.get(setup.ctx, execution.id)).node_runs] == [
        ("completed", 1)
    ]

    # A later put updates the same row (an upsert), it never adds one.
    setup.journal.put_node_run(
        "acme", NodeRunRecord(execution.id, "a", "llm", "completed", output={"text": "v2"}, flags={"pinned": True})
    )
    await setup.journal.flush()
    async with setup.db.tenant_session("acme") as session:
        rows = list(await session.scalars(select(NodeRun)))
    assert [(row.node_id, row.output, row.flags) for row in rows] == [("a", {"text": "v2"}, {"pinned": True})]


async def test_flush_returns_at_once_when_nothing_is_queued(setup: Setup) -> None:
    async with asyncio.timeout(1):
        await setup.journal.flush()
    assert setup.journal.pending == 0


async def test_append_never_waits_and_flush_waits_for_the_commit(setup: Setup) -> None:
    execution = await setup.run()
    setup.journal.append("acme", make_event(execution.id, 1))
    assert setup.journal.pending == 1  # queued, nothing written yet
    await setup.journal.flush()
    assert setup.journal.pending == 0
    assert [seq for _, seq, _ in await stored_events(setup.db)] == [1]
    assert [m["seq"] for _, m in setup.published] == [1]


async def test_aclose_writes_what_is_left(db: Database) -> None:
    admin, _ = await make_tenant(db, "acme")
    execution = await ExecutionStore(db).create(
        admin, flow_id=None, flow_version_id=None, version=None, inputs={}, options={}
    )
    published: list[int] = []

    async def publish(channel: str, message: dict[str, Any]) -> None:
        published.append(message["seq"])

    journal = Journal(db, publish)
    for seq in range(1, 51):
        journal.append("acme", make_event(execution.id, seq))
    journal.put_node_run("acme", NodeRunRecord(execution.id, "a", "llm", "completed"))
    await journal.aclose()
    assert published == list(range(1, 51))
    assert len(await stored_events(db)) == 50
    assert [run.status for run in (await ExecutionStore(db).get(admin, execution.id)).node_runs] == ["completed"]


async def test_rows_of_a_deleted_execution_are_dropped_and_the_rest_kept(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    alive = await setup.run()
    ghost = uuid.uuid4()  # no such execution: its rows break the foreign key
    for seq in (1, 2):
        setup.journal.append("acme", make_event(alive.id, seq))
        setup.journal.append("acme", make_event(ghost, seq))
    setup.journal.put_node_run("acme", NodeRunRecord(ghost, "a", "llm", "running"))
    with caplog.at_level(logging.ERROR, logger="core.journal"):
        await setup.journal.flush()
    assert [(eid, seq) for eid, seq, _ in await stored_events(setup.db)] == [(alive.id, 1), (alive.id, 2)]
    assert [c for c, _ in setup.published] == [f"executions:{alive.id}"] * 2
    assert setup.journal.lost == 3
    assert f"gave up 3 item(s) of execution {ghost}" in caplog.text


async def test_appends_from_a_worker_thread_reach_the_loop(setup: Setup) -> None:
    execution = await setup.run()
    await asyncio.to_thread(setup.journal.append, "acme", make_event(execution.id, 1))
    await setup.journal.flush()
    assert [seq for _, seq, _ in await stored_events(setup.db)] == [1]


# -- the batch loop, with scripted write functions ------------------------------------------------


async def test_failed_writes_are_retried_in_order_while_other_tenants_go_ahead() -> None:
    written: list[tuple[str, list[str]]] = []
    failures = {"a": 2}
    slept: list[float] = []

    async def write(key: str, items: list[str]) -> None:
        if failures.get(key):
            failures[key] -= 1
            raise OSError("connection reset by peer")
        written.append((key, items))

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)
        writer.put("a", f"late{len(slept)}")  # arrives while the failed items wait

    writer: BatchWriter[str] = BatchWriter(write, name="test", sleep=record_sleep)
    for item in ("a1", "a2"):
        writer.put("a", item)
    writer.put("b", "b1")
    await writer.flush()
    assert written == [("b", ["b1"]), ("a", ["a1", "a2", "late1", "late2"])]
    assert slept == [0.05, 0.1]
    assert writer.lost == 0


async def test_writes_that_keep_failing_are_given_up_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def write(key: str, items: list[int]) -> None:
        raise OSError("database is down")

    async def no_sleep(seconds: float) -> None:
        pass

    writer: BatchWriter[int] = BatchWriter(write, name="test", give_up_after=0.0, sleep=no_sleep)
    for item in range(3):
        writer.put("acme", item)
    with caplog.at_level(logging.ERROR, logger="core.journal"):
        await writer.flush()
    assert writer.lost == 3
    assert "gave up 3 item(s) of tenant acme" in caplog.text


async def test_items_a_write_refuses_are_dropped_without_retry() -> None:
    calls: list[list[int]] = []

    async def write(key: str, items: list[int]) -> None:
        calls.append(items)
        raise DropItems("these can never be stored")

    writer: BatchWriter[int] = BatchWriter(write, name="test")
    writer.put("acme", 1)
    await writer.flush()
    assert (calls, writer.lost) == ([[1]], 1)


async def test_close_gives_up_after_a_bounded_time(caplog: pytest.LogCaptureFixture) -> None:
    async def write(key: str, items: list[int]) -> None:
        raise OSError("database is down")

    async def short_sleep(seconds: float) -> None:
        await asyncio.sleep(0.01)

    writer: BatchWriter[int] = BatchWriter(write, name="test", sleep=short_sleep)
    for item in range(5):
        writer.put("acme", item)
    with caplog.at_level(logging.ERROR, logger="core.journal"):
        assert await writer.aclose(wait_seconds=0.2) == 5
    assert "5 item(s) unwritten; they are lost" in caplog.text
    assert writer.pending == 0


async def test_put_outside_a_loop_needs_start() -> None:
    async def write(key: str, items: list[int]) -> None:
        pass

    writer: BatchWriter[int] = BatchWriter(write, name="test")
    with pytest.raises(RuntimeError, match="call start"):
        await asyncio.to_thread(writer.put, "acme", 1)


# -- usage records go through the same loop --------------------------------------------------------


def usage(tenant: str, n: int) -> UsageEntry:
    return UsageEntry(tenant=tenant, provider_id=None, provider_kind="openai", provider_name="p", model=f"m{n}")


async def test_usage_records_are_written_in_one_batch_and_readers_see_them(db: Database) -> None:
    await make_tenant(db, "acme")
    store = DatabaseUsageStore(db)
    await store.start()
    engine = await db.tenant_engine("acme")
    with counting_commits(db, engine) as commits:
        await asyncio.gather(*(store.record(usage("acme", n)) for n in range(50)))
        assert len(await store.recent("acme", limit=100)) == 50
    assert len(commits) == 1
    assert (await store.daily_totals("acme", datetime.now(UTC).date())).requests == 50
    await store.close()


async def test_usage_store_close_writes_what_is_queued(db: Database) -> None:
    await make_tenant(db, "acme")
    store = DatabaseUsageStore(db)
    await store.start()
    for n in range(3):
        await store.record(usage("acme", n))
    await store.close()
    assert sorted(entry.model for entry in await DatabaseUsageStore(db).recent("acme")) == ["m0", "m1", "m2"]


async def test_usage_store_never_started_writes_each_record_at_once(db: Database) -> None:
    await make_tenant(db, "acme")
    store = DatabaseUsageStore(db)
    await store.record(usage("acme", 1))
    async with db.tenant_session("acme") as session:
        assert await session.scalar(select(func.count()).select_from(UsageRecord)) == 1
