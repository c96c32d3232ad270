"""ExecutionStore: runs of flow versions, their node runs and events, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from core.context import Role, TenantContext
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.executions import EventRecord, ExecutionRecord, ExecutionStore, NodeRunRecord
from core.flow_store import FlowRecord, FlowStore
from core.journal import Journal
from db.database import Database
from db.models.tenant import Execution
from tests.fixtures.llm_stack import make_tenant

DOCUMENT = {"schema": "crewcanvas.flow/v1", "nodes": [], "edges": []}


@dataclasses.dataclass
class World:
    db: Database
    store: ExecutionStore
    journal: Journal
    published: list[tuple[str, dict[str, Any]]]
    editor: TenantContext
    viewer: TenantContext
    other: TenantContext
    flow: FlowRecord

    async def run(self, ctx: TenantContext | None = None, **fields: Any) -> ExecutionRecord:
        ctx = ctx or self.editor
        values: dict[str, Any] = {"inputs": {"topic": "owls"}, "options": {"timeout_s": 30}}
        if "flow_id" not in fields:
            version = await FlowStore(self.db).version(ctx, self.flow.id)
            values |= {"flow_id": self.flow.id, "flow_version_id": version.id, "version": version.version}
        return await self.store.create(ctx, **(values | fields))

    def event(self, execution: ExecutionRecord, seq: int, kind: str = "node_output", **data: Any) -> EventRecord:
        return EventRecord(execution.id, seq, datetime.now(UTC), kind, "n1", data)


@pytest.fixture
async def world(db: Database) -> World:
    admin, viewer = await make_tenant(db, "acme")
    other, _ = await make_tenant(db, "globex")
    editor = dataclasses.replace(admin, role=Role.EDITOR)
    flow = await FlowStore(db).create(editor, "flow", "", DOCUMENT)
    published: list[tuple[str, dict[str, Any]]] = []

    async def publish(channel: str, message: dict[str, Any]) -> None:
        published.append((channel, message))

    journal = Journal(db, publish)
    await journal.start()
    return World(db, ExecutionStore(db), journal, published, editor, viewer, other, flow)


def node_run(execution: ExecutionRecord, node_id: str, status: str, **fields: Any) -> NodeRunRecord:
    return NodeRunRecord(execution.id, node_id, "llm", status, **fields)


async def test_create_starts_a_running_execution(world: World) -> None:
    execution = await world.run()
    assert execution.status == "running"
    assert execution.started_by == world.editor.user_id
    assert execution.started_at is not None
    assert execution.finished_at is None
    assert (execution.flow_id, execution.version, execution.inputs) == (world.flow.id, 1, {"topic": "owls"})
    assert execution.options == {"timeout_s": 30}
    stored = await world.store.get(world.viewer, execution.id)
    assert stored == execution


async def test_viewer_cannot_start_execution(world: World) -> None:
    with pytest.raises(PermissionDenied, match="cannot run flows"):
        await world.run(world.viewer)


async def test_starting_a_missing_flow_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.run(flow_id=uuid.uuid4(), flow_version_id=None, version=1)


async def test_subflow_runs_point_at_their_parent(world: World) -> None:
    parent = await world.run()
    child = await world.run(parent_execution_id=parent.id, parent_node_id="sub")
    stored = await world.store.get(world.editor, child.id)
    assert (stored.parent_execution_id, stored.parent_node_id) == (parent.id, "sub")


async def test_get_returns_the_node_runs(world: World) -> None:
    execution = await world.run()
    started = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    world.journal.put_node_run("acme", node_run(execution, "b", "running", started_at=started + timedelta(seconds=1)))
    world.journal.put_node_run(
        "acme",
        node_run(
            execution,
            "a",
            "completed",
            inputs={"prompt": "hi"},
            output={"text": "hello"},
            attempts=2,
            started_at=started,
            finished_at=started + timedelta(seconds=3),
            prompt_tokens=5,
            completion_tokens=7,
            cost_usd=0.001,
            flags={"pinned": True},
        ),
    )
    await world.journal.flush()
    stored = await world.store.get(world.viewer, execution.id)
    assert [run.node_id for run in stored.node_runs] == ["a", "b"]
    first = stored.node_runs[0]
    assert (first.inputs, first.output, first.attempts, first.flags) == (
        {"prompt": "hi"},
        {"text": "hello"},
        2,
        {"pinned": True},
    )
    assert (first.started_at, first.prompt_tokens, first.completion_tokens) == (started, 5, 7)
    assert stored.as_dict()["node_runs"][0]["started_at"] == started.isoformat()


async def test_another_tenant_cannot_see_an_execution(world: World) -> None:
    execution = await world.run()
    with pytest.raises(NotFound):
        await world.store.get(world.other, execution.id)
    with pytest.raises(NotFound):
        await world.store.events(world.other, execution.id)
    assert (await world.store.list(world.other)).items == []


async def test_events_are_read_in_seq_order_after_a_seq(world: World) -> None:
    execution = await world.run()
    for seq in (3, 1, 2, 4):
        world.journal.append("acme", world.event(execution, seq, n=seq))
    await world.journal.flush()
    assert [e.seq for e in await world.store.events(world.viewer, execution.id)] == [1, 2, 3, 4]
    assert [e.seq for e in await world.store.events(world.viewer, execution.id, after_seq=2)] == [3, 4]
    assert [e.seq for e in await world.store.events(world.viewer, execution.id, after_seq=1, limit=2)] == [2, 3]
    assert await world.store.events(world.viewer, execution.id, after_seq=4) == []
    as_dict = (await world.store.events(world.viewer, execution.id))[0].as_dict()
    assert as_dict["execution_id"] == str(execution.id)
    assert datetime.fromisoformat(as_dict["ts"]).tzinfo is not None


async def test_finish_sets_status_outputs_and_time(world: World) -> None:
    done = await world.run()
    broken = await world.run()
    await world.store.finish("acme", done.id, "completed", outputs={"answer": 42})
    await world.store.finish("acme", broken.id, "failed", error="node 'a' failed: timeout")
    stored = await world.store.get(world.editor, done.id)
    assert (stored.status, stored.outputs, stored.error) == ("completed", {"answer": 42}, None)
    assert stored.finished_at is not None
    assert stored.started_at is not None
    assert stored.finished_at >= stored.started_at
    failed = await world.store.get(world.editor, broken.id)
    assert (failed.status, failed.outputs, failed.error) == ("failed", {}, "node 'a' failed: timeout")
    with pytest.raises(NotFound):
        await world.store.finish("acme", uuid.uuid4(), "completed")
    with pytest.raises(InvalidInput, match="does not end a run"):
        await world.store.finish("acme", done.id, "waiting")
    with pytest.raises(InvalidInput, match="use finish"):
        await world.store.set_status("acme", done.id, "failed")


async def test_list_pages_newest_first_without_gaps(world: World) -> None:
    made = [await world.run() for _ in range(7)]
    seen: list[uuid.UUID] = []
    page = await world.store.list(world.viewer, limit=3)
    sizes = []
    while True:
        sizes.append(len(page.items))
        seen.extend(item.id for item in page.items)
        if page.next_before is None:
            break
        page = await world.store.list(world.viewer, limit=3, before=page.next_before, before_id=page.next_before_id)
    assert sizes == [3, 3, 1]
    assert seen == [execution.id for execution in reversed(made)]


async def test_paging_keeps_runs_started_in_the_same_microsecond(world: World) -> None:
    made = {(await world.run()).id for _ in range(5)}
    same = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    async with world.db.tenant_session("acme") as session:
        await session.execute(update(Execution).values(started_at=same))
        await session.commit()
    seen: list[uuid.UUID] = []
    page = await world.store.list(world.viewer, limit=2)
    while True:
        seen.extend(item.id for item in page.items)
        if page.next_before is None:
            break
        assert page.next_before == same
        page = await world.store.list(world.viewer, limit=2, before=page.next_before, before_id=page.next_before_id)
    assert len(seen) == 5
    assert set(seen) == made


async def test_list_filters_by_flow_and_status(world: World) -> None:
    other_flow = await FlowStore(world.db).create(world.editor, "other", "", DOCUMENT)
    first = await world.run()
    await world.run(flow_id=other_flow.id, flow_version_id=None, version=1)
    await world.store.finish("acme", first.id, "completed")
    assert [e.id for e in (await world.store.list(world.viewer, flow_id=world.flow.id)).items] == [first.id]
    assert [e.flow_id for e in (await world.store.list(world.viewer, status="running")).items] == [other_flow.id]
    # A cursor in another time zone means the same moment.
    later = datetime.now(UTC).astimezone(datetime.now().astimezone().tzinfo) + timedelta(minutes=1)
    assert len((await world.store.list(world.viewer, before=later)).items) == 2
    with pytest.raises(InvalidInput, match="limit"):
        await world.store.list(world.viewer, limit=0)


async def test_deleting_a_flow_deletes_its_executions(world: World) -> None:
    execution = await world.run()
    world.journal.append("acme", world.event(execution, 1))
    await world.journal.flush()
    await FlowStore(world.db).delete(world.editor, world.flow.id)
    with pytest.raises(NotFound):
        await world.store.get(world.editor, execution.id)


async def test_mark_interrupted_keeps_events_and_node_runs(world: World) -> None:
    running = await world.run()
    waiting = await world.run()
    done = await world.run()
    elsewhere = await world.run(world.other, flow_id=None, flow_version_id=None, version=None)
    await world.store.set_status("acme", waiting.id, "waiting")
    await world.store.finish("acme", done.id, "completed")
    for seq in (1, 2, 3):
        world.journal.append("acme", world.event(running, seq))
    world.journal.put_node_run("acme", node_run(running, "a", "completed", output="ok"))
    world.journal.put_node_run("acme", node_run(running, "b", "running"))
    world.journal.put_node_run("acme", node_run(running, "c", "pending"))
    world.journal.put_node_run("acme", node_run(waiting, "h", "waiting"))
    await world.journal.flush()

    assert await world.store.mark_interrupted(["acme"]) == 1

    stored = await world.store.get(world.editor, running.id)
    assert (stored.status, stored.error) == ("interrupted", "the process running it stopped")
    assert stored.finished_at is not None
    assert {run.node_id: run.status for run in stored.node_runs} == {
        "a": "completed",
        "b": "interrupted",
        "c": "interrupted",
    }
    assert stored.node_runs[0].output == "ok"
    events = await world.store.events(world.editor, running.id)
    assert [(e.seq, e.type) for e in events] == [
        (1, "node_output"),
        (2, "node_output"),
        (3, "node_output"),
        (4, "execution_interrupted"),
    ]
    assert (await world.store.get(world.editor, waiting.id)).status == "waiting"
    assert (await world.store.get(world.editor, done.id)).status == "completed"
    assert (await world.store.get(world.other, elsewhere.id)).status == "running"  # its tenant was not listed
    assert await world.store.mark_interrupted(["acme", "globex", "gone_tenant"]) == 1
    assert [e.seq for e in await world.store.events(world.other, elsewhere.id)] == [1]
