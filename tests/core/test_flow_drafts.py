"""DraftStore: one draft per flow, written only on the revision it was made on, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from alembic import command
from sqlalchemy import func, select

from core.context import Role, TenantContext
from core.errors import Conflict, NotFound, PermissionDenied
from core.flow_drafts import DraftStore
from core.flow_store import FlowStore
from db.database import Database
from db.migrate import _config, head_revision, tenant_revision
from db.models.tenant import FlowDraft
from tests.fixtures.llm_stack import make_tenant


def document(label: str = "v") -> dict[str, object]:
    return {"schema": "crewcanvas.flow/v1", "nodes": [{"id": "n1", "type": "input", "data": {"label": label}}]}


@dataclasses.dataclass
class World:
    flows: FlowStore
    drafts: DraftStore
    editor: TenantContext
    viewer: TenantContext
    other: TenantContext
    flow_id: uuid.UUID


@pytest.fixture
async def world(db: Database) -> World:
    admin, viewer = await make_tenant(db, "acme")
    other, _ = await make_tenant(db, "globex")
    editor = dataclasses.replace(admin, role=Role.EDITOR)
    flows = FlowStore(db)
    flow = await flows.create(editor, "drafted", "", document("v1"))
    return World(flows, DraftStore(db), editor, viewer, other, flow.id)


async def test_a_flow_has_no_draft_until_one_is_stored(world: World) -> None:
    assert await world.drafts.get(world.viewer, world.flow_id) is None


async def test_the_first_put_stores_revision_one_and_each_put_adds_one(world: World) -> None:
    first = await world.drafts.put(world.editor, world.flow_id, document("a"), base_version=1, expected_revision=0)
    assert (first.revision, first.base_version, first.document) == (1, 1, document("a"))
    assert first.updated_by == world.editor.user_id
    assert first.updated_at.tzinfo is not None
    second = await world.drafts.put(world.editor, world.flow_id, document("b"), base_version=1, expected_revision=1)
    assert second.revision == 2
    stored = await world.drafts.get(world.viewer, world.flow_id)
    assert stored is not None
    assert (stored.revision, stored.document, stored.base_version) == (2, document("b"), 1)
    assert stored.updated_at == second.updated_at


async def test_a_put_on_a_stale_revision_is_a_conflict_and_changes_nothing(world: World) -> None:
    await world.drafts.put(world.editor, world.flow_id, document("a"), base_version=1, expected_revision=0)
    await world.drafts.put(world.editor, world.flow_id, document("b"), base_version=1, expected_revision=1)
    with pytest.raises(Conflict, match="changed elsewhere: it is at revision 2 now, not 1; reload it"):
        await world.drafts.put(world.editor, world.flow_id, document("c"), base_version=1, expected_revision=1)
    with pytest.raises(Conflict, match=r"someone stored one meanwhile \(revision 2\)"):
        await world.drafts.put(world.editor, world.flow_id, document("c"), base_version=1, expected_revision=0)
    stored = await world.drafts.get(world.editor, world.flow_id)
    assert stored is not None
    assert (stored.revision, stored.document) == (2, document("b"))


async def test_a_put_on_a_draft_that_is_gone_is_a_conflict(world: World) -> None:
    with pytest.raises(Conflict, match="it was saved or discarded since"):
        await world.drafts.put(world.editor, world.flow_id, document(), base_version=1, expected_revision=3)


async def test_of_concurrent_puts_on_one_revision_exactly_one_wins(world: World) -> None:
    async def put(label: str, expected: int) -> str:
        try:
            await world.drafts.put(
                world.editor, world.flow_id, document(label), base_version=1, expected_revision=expected
            )
        except Conflict:
            return "conflict"
        return "stored"

    firsts = await asyncio.gather(*(put(f"first{i}", 0) for i in range(4)))
    assert sorted(firsts) == ["conflict"] * 3 + ["stored"]
    seconds = await asyncio.gather(*(put(f"second{i}", 1) for i in range(4)))
    assert sorted(seconds) == ["conflict"] * 3 + ["stored"]
    stored = await world.drafts.get(world.editor, world.flow_id)
    assert stored is not None
    assert stored.revision == 2


async def test_delete_removes_the_draft_and_only_the_named_revision_when_given(world: World) -> None:
    await world.drafts.put(world.editor, world.flow_id, document("a"), base_version=1, expected_revision=0)
    await world.drafts.put(world.editor, world.flow_id, document("b"), base_version=1, expected_revision=1)
    assert await world.drafts.delete(world.editor, world.flow_id, revision=1) is False
    assert await world.drafts.get(world.editor, world.flow_id) is not None
    assert await world.drafts.delete(world.editor, world.flow_id, revision=2) is True
    assert await world.drafts.get(world.editor, world.flow_id) is None
    assert await world.drafts.delete(world.editor, world.flow_id) is False  # nothing left: no error


async def test_viewers_read_drafts_but_cannot_write_them(world: World) -> None:
    await world.drafts.put(world.editor, world.flow_id, document(), base_version=1, expected_revision=0)
    assert await world.drafts.get(world.viewer, world.flow_id) is not None
    with pytest.raises(PermissionDenied, match="cannot edit flows"):
        await world.drafts.put(world.viewer, world.flow_id, document("x"), base_version=1, expected_revision=1)
    with pytest.raises(PermissionDenied):
        await world.drafts.delete(world.viewer, world.flow_id)


async def test_a_missing_flow_or_another_tenants_flow_is_not_found(world: World) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match="no flow with id"):
        await world.drafts.get(world.editor, missing)
    with pytest.raises(NotFound):
        await world.drafts.put(world.editor, missing, document(), base_version=1, expected_revision=0)
    with pytest.raises(NotFound):
        await world.drafts.put(world.editor, missing, document(), base_version=1, expected_revision=1)
    with pytest.raises(NotFound):
        await world.drafts.delete(world.editor, missing)
    other_editor = dataclasses.replace(world.other, role=Role.EDITOR)
    with pytest.raises(NotFound):
        await world.drafts.get(other_editor, world.flow_id)
    with pytest.raises(NotFound):
        await world.drafts.put(other_editor, world.flow_id, document(), base_version=1, expected_revision=0)


async def test_deleting_the_flow_deletes_its_draft(world: World, db: Database) -> None:
    await world.drafts.put(world.editor, world.flow_id, document(), base_version=1, expected_revision=0)
    await world.flows.delete(world.editor, world.flow_id)
    async with db.tenant_session("acme") as session:
        assert await session.scalar(select(func.count()).select_from(FlowDraft)) == 0


async def test_the_drafts_migration_goes_down_and_up_again(world: World, db: Database) -> None:
    await world.drafts.put(world.editor, world.flow_id, document(), base_version=1, expected_revision=0)
    engine = await db.tenant_engine("acme")
    schema = "tenant_acme" if db.is_postgres else None
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config("tenant", sync, schema), "t0005"))
    assert await tenant_revision(db, "acme") == "t0005"
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config("tenant", sync, schema), "head"))
    assert await tenant_revision(db, "acme") == head_revision("tenant")
    assert await world.drafts.get(world.editor, world.flow_id) is None
    assert (await world.flows.get(world.editor, world.flow_id)).latest_version == 1
