"""FlowStore: flows and their immutable versions per tenant, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC

import pytest

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.flow_store import FlowStore
from db.database import Database
from tests.fixtures.llm_stack import make_tenant


def document(label: str = "v") -> dict[str, object]:
    return {"schema": "crewcanvas.flow/v1", "nodes": [{"id": "n1", "type": "input", "data": {"label": label}}]}


@dataclasses.dataclass
class Tenants:
    editor: TenantContext
    viewer: TenantContext
    other: TenantContext


@pytest.fixture
async def tenants(db: Database) -> Tenants:
    admin, viewer = await make_tenant(db, "acme")
    other, _ = await make_tenant(db, "globex")
    return Tenants(dataclasses.replace(admin, role=Role.EDITOR), viewer, other)


@pytest.fixture
def store(db: Database) -> FlowStore:
    return FlowStore(db)


async def test_create_writes_version_one(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "Summarise", "turns text into bullets", document("one"))
    assert (flow.name, flow.description, flow.latest_version) == ("Summarise", "turns text into bullets", 1)
    assert flow.created_at.tzinfo is not None
    first = await store.version(tenants.editor, flow.id)
    assert (first.version, first.document, first.created_by) == (1, document("one"), tenants.editor.user_id)
    assert first.created_at.utcoffset() == UTC.utcoffset(None)


async def test_flows_are_listed_by_name(store: FlowStore, tenants: Tenants) -> None:
    for name in ("zeta", "alpha", "Mid"):
        await store.create(tenants.editor, name, "", document())
    assert [flow.name for flow in await store.list(tenants.viewer)] == ["Mid", "alpha", "zeta"]


async def test_duplicate_name_is_a_conflict(store: FlowStore, tenants: Tenants) -> None:
    await store.create(tenants.editor, "report", "", document())
    with pytest.raises(Conflict, match="'report' exists already"):
        await store.create(tenants.editor, "report", "", document())
    assert len(await store.list(tenants.editor)) == 1


async def test_names_follow_the_text_rules(store: FlowStore, tenants: Tenants) -> None:
    with pytest.raises(InvalidInput, match="name contains a control character"):
        await store.create(tenants.editor, "bad\x07name", "", document())
    with pytest.raises(InvalidInput, match="name is empty"):
        await store.create(tenants.editor, "   ", "", document())


async def test_versions_increase_by_one_and_list_newest_first(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "flow", "", document("1"))
    second = await store.save_version(tenants.editor, flow.id, document("2"))
    third = await store.save_version(tenants.editor, flow.id, document("3"), message="restored from v1")
    assert (second.version, third.version) == (2, 3)
    summaries = await store.versions(tenants.viewer, flow.id)
    assert [(s.version, s.message) for s in summaries] == [(3, "restored from v1"), (2, ""), (1, "")]
    assert (await store.version(tenants.viewer, flow.id)).document == document("3")
    assert (await store.version(tenants.viewer, flow.id, 2)).document == document("2")
    assert (await store.get(tenants.viewer, flow.id)).latest_version == 3


async def test_concurrent_saves_get_distinct_versions(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "busy", "", document())
    saved = await asyncio.gather(*(store.save_version(tenants.editor, flow.id, document(str(i))) for i in range(5)))
    assert sorted(version.version for version in saved) == [2, 3, 4, 5, 6]
    stored = {s.version for s in await store.versions(tenants.editor, flow.id)}
    assert stored == {1, 2, 3, 4, 5, 6}
    assert (await store.get(tenants.editor, flow.id)).latest_version == 6


async def test_save_from_an_outdated_version_is_a_conflict(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "shared", "", document())
    await store.save_version(tenants.editor, flow.id, document("theirs"), expected_version=1)
    with pytest.raises(Conflict, match="someone else saved version 2"):
        await store.save_version(tenants.editor, flow.id, document("mine"), expected_version=1)
    # The refused save left no trace: the next save is version 3, not 4.
    assert (await store.get(tenants.editor, flow.id)).latest_version == 2
    assert (await store.save_version(tenants.editor, flow.id, document("mine"), expected_version=2)).version == 3


async def test_viewer_can_read_but_not_write(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "readonly", "", document())
    assert (await store.get(tenants.viewer, flow.id)).name == "readonly"
    with pytest.raises(PermissionDenied, match="cannot save flows"):
        await store.save_version(tenants.viewer, flow.id, document())
    with pytest.raises(PermissionDenied):
        await store.create(tenants.viewer, "mine", "", document())
    with pytest.raises(PermissionDenied):
        await store.rename(tenants.viewer, flow.id, name="renamed")
    with pytest.raises(PermissionDenied):
        await store.delete(tenants.viewer, flow.id)


async def test_another_tenant_cannot_see_or_change_a_flow(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "private", "", document())
    with pytest.raises(NotFound):
        await store.get(tenants.other, flow.id)
    with pytest.raises(NotFound):
        await store.version(tenants.other, flow.id)
    with pytest.raises(NotFound):
        await store.versions(tenants.other, flow.id)
    with pytest.raises(NotFound):
        await store.save_version(tenants.other, flow.id, document())
    with pytest.raises(NotFound):
        await store.delete(tenants.other, flow.id)
    assert await store.list(tenants.other) == []
    assert await store.version_index(tenants.other) == {}


async def test_rename_changes_name_and_description_only(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "old", "before", document())
    await store.create(tenants.editor, "taken", "", document())
    renamed = await store.rename(tenants.editor, flow.id, name="new")
    assert (renamed.name, renamed.description, renamed.latest_version) == ("new", "before", 1)
    described = await store.rename(tenants.editor, flow.id, description="after")
    assert (described.name, described.description) == ("new", "after")
    with pytest.raises(Conflict, match="'taken' exists already"):
        await store.rename(tenants.editor, flow.id, name="taken")


async def test_delete_removes_the_flow_and_its_versions(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "doomed", "", document())
    await store.save_version(tenants.editor, flow.id, document("2"))
    await store.delete(tenants.editor, flow.id)
    with pytest.raises(NotFound):
        await store.get(tenants.editor, flow.id)
    assert await store.version_index(tenants.editor) == {}
    with pytest.raises(NotFound):
        await store.delete(tenants.editor, flow.id)


async def test_missing_version_names_the_range(store: FlowStore, tenants: Tenants) -> None:
    flow = await store.create(tenants.editor, "short", "", document())
    with pytest.raises(NotFound, match="'short' has no version 7; its versions are 1 to 1"):
        await store.version(tenants.editor, flow.id, 7)
    with pytest.raises(NotFound):
        await store.version(tenants.editor, uuid.uuid4())


async def test_version_index_and_latest_documents_cover_every_flow(store: FlowStore, tenants: Tenants) -> None:
    one = await store.create(tenants.editor, "one", "", document("1a"))
    await store.save_version(tenants.editor, one.id, document("1b"))
    two = await store.create(tenants.editor, "two", "", document("2a"))
    assert await store.version_index(tenants.viewer) == {str(one.id): frozenset({1, 2}), str(two.id): frozenset({1})}
    assert await store.latest_documents(tenants.viewer) == {str(one.id): document("1b"), str(two.id): document("2a")}
