"""DraftService: the editor's server-side draft of a flow, changed by operations, on each database."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.flow_drafts import DraftStore
from db.models.tenant import FlowDraft
from executor.drafts import DraftService
from tests.executor.conftest import World, document, edge, node


def simple_flow(world: World) -> dict[str, Any]:
    """in -> write -> done, without problems."""
    return document(
        [
            node("in", "input"),
            node("write", "llm", provider_id=world.provider_id, prompt="About {{ inputs.topic }}"),
            node("done", "output", value="{{ nodes.write.output }}"),
        ],
        [edge("in", "write"), edge("write", "done")],
        [{"name": "topic"}],
    )


async def new_flow(world: World) -> uuid.UUID:
    return (await world.flow(simple_flow(world))).version.flow_id


def add_summary(world: World) -> dict[str, Any]:
    summary = node("llm_1", "llm", provider_id=world.provider_id, prompt="Shorter: {{ nodes.write.output }}")
    return {"op": "add", "nodes": [summary], "edges": [edge("write", "llm_1")]}


def drafts(world: World) -> DraftService:
    return world.services.drafts


async def test_a_flow_without_a_draft_opens_as_its_latest_version(world: World) -> None:
    flow_id = await new_flow(world)
    draft = await drafts(world).open(world.viewer, flow_id)
    latest = await world.services.flows.version(world.viewer, flow_id)
    assert (draft.revision, draft.base_version, draft.changed, draft.problems) == (0, 1, False, [])
    assert draft.document == latest.document
    assert draft.updated_by == world.editor.user_id


async def test_applying_operations_stores_the_draft_and_bumps_its_revision(world: World) -> None:
    flow_id = await new_flow(world)
    first = await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    assert (first.draft.revision, first.draft.base_version, first.draft.changed) == (1, 1, True)
    assert first.draft.problems == []
    assert [n["id"] for n in first.draft.document["nodes"]] == ["in", "write", "done", "llm_1"]
    assert first.draft.updated_by == world.editor.user_id
    moved = await drafts(world).apply(
        world.editor, flow_id, [{"op": "move", "positions": {"llm_1": {"x": 50, "y": 60}}}], revision=1
    )
    assert moved.draft.revision == 2
    # Undo both: the inverses of each batch, latest first; the draft is the version again.
    undone = await drafts(world).apply(world.editor, flow_id, [*moved.inverse, *first.inverse], revision=2)
    assert (undone.draft.revision, undone.draft.changed) == (3, False)
    assert undone.draft.document == (await world.services.flows.version(world.editor, flow_id)).document


async def test_a_series_of_drags_reads_the_base_version_once(world: World) -> None:
    """Versions never change: whether the draft differs from its base is worked out without reading it again."""
    flow_id = await new_flow(world)
    service = DraftService(world.services.flows, world.services.drafts.store)  # a process that read nothing yet
    applied = await service.apply(world.editor, flow_id, [add_summary(world)], revision=0)
    reads: list[int | None] = []
    original = world.services.flows.version

    async def counting(ctx: TenantContext, flow: uuid.UUID, version: int | None = None) -> Any:
        reads.append(version)
        return await original(ctx, flow, version)

    world.services.flows.version = counting  # type: ignore[method-assign]
    try:
        for step in range(5):
            move = {"op": "move", "positions": {"llm_1": {"x": 10 * step, "y": 0}}}
            applied = await service.apply(world.editor, flow_id, [move], revision=applied.draft.revision)
            assert applied.draft.changed
        undone = await service.apply(
            world.editor, flow_id, [{"op": "remove", "nodes": ["llm_1"]}], revision=applied.draft.revision
        )
    finally:
        del world.services.flows.version
    assert reads == []
    assert not undone.draft.changed  # back to the version: told from the kept copy


async def test_problems_are_worked_out_after_content_changes_but_not_after_moves(world: World) -> None:
    flow_id = await new_flow(world)
    broken = {"op": "update", "node": "write", "data": {"prompt": "{{ nodes.ghost.output }}"}}
    applied = await drafts(world).apply(world.editor, flow_id, [broken], revision=0)
    assert applied.draft.problems is not None
    assert [(p.node_id, p.field) for p in applied.draft.problems] == [("write", "prompt")]
    moved = await drafts(world).apply(
        world.editor,
        flow_id,
        [{"op": "move", "positions": {"write": {"x": 1, "y": 1}}}, {"op": "viewport", "viewport": {"zoom": 2}}],
        revision=1,
    )
    assert moved.draft.problems is None
    assert [p.node_id for p in (await drafts(world).open(world.viewer, flow_id)).problems or []] == ["write"]


async def test_a_stale_revision_is_a_conflict_and_stores_nothing(world: World) -> None:
    flow_id = await new_flow(world)
    await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    remove = {"op": "remove", "nodes": ["llm_1"]}
    with pytest.raises(Conflict, match="changed elsewhere: someone stored one meanwhile"):
        await drafts(world).apply(world.editor, flow_id, [remove], revision=0)
    await drafts(world).apply(world.editor, flow_id, [{"op": "pin", "node": "write", "output": "x"}], revision=1)
    with pytest.raises(Conflict, match="it is at revision 2 now, not 1; reload it"):
        await drafts(world).apply(world.editor, flow_id, [remove], revision=1)
    draft = await drafts(world).open(world.editor, flow_id)
    assert draft.revision == 2
    assert "llm_1" in [n["id"] for n in draft.document["nodes"]]


async def test_the_draft_is_there_after_a_reload(world: World) -> None:
    flow_id = await new_flow(world)
    applied = await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    reloaded = DraftService(world.services.flows, DraftStore(world.services.db))
    again = await reloaded.open(world.viewer, flow_id)
    assert (again.document, again.revision, again.base_version, again.changed) == (
        applied.draft.document,
        1,
        1,
        True,
    )


async def test_malformed_or_senseless_operations_are_refused_and_store_nothing(world: World) -> None:
    flow_id = await new_flow(world)
    with pytest.raises(InvalidInput, match=r"^operation 1 is not valid: positions\.write: ") as info:
        await drafts(world).apply(world.editor, flow_id, [{"op": "move", "positions": {"write": "left"}}], revision=0)
    assert [p.field for p in info.value.problems] == ["operations.0.positions.write"]
    loop = {"op": "add", "edges": [edge("done", "write")]}
    with pytest.raises(InvalidInput, match="node 'done' has no outputs"):
        await drafts(world).apply(world.editor, flow_id, [loop], revision=0)
    batch = [add_summary(world), {"op": "add", "edges": [edge("llm_1", "write")]}]
    with pytest.raises(InvalidInput, match=r"operation 2 \(add\): .*would make a loop: 'write' already feeds 'llm_1'"):
        await drafts(world).apply(world.editor, flow_id, batch, revision=0)
    with pytest.raises(InvalidInput, match="operations must be a list"):
        await drafts(world).apply(world.editor, flow_id, {"op": "move"}, revision=0)  # type: ignore[arg-type]  # what a careless caller sends
    assert (await drafts(world).open(world.editor, flow_id)).revision == 0


async def test_a_batch_that_changes_nothing_stores_nothing(world: World) -> None:
    flow_id = await new_flow(world)
    applied = await drafts(world).apply(world.editor, flow_id, [], revision=0)
    assert (applied.draft.revision, applied.draft.changed, applied.inverse) == (0, False, [])
    assert (await drafts(world).open(world.editor, flow_id)).revision == 0


async def test_the_answer_travels_as_json(world: World) -> None:
    flow_id = await new_flow(world)
    applied = await drafts(world).apply(world.editor, flow_id, [{"op": "remove", "nodes": ["write"]}], revision=0)
    sent = json.loads(json.dumps(applied.as_dict()))
    assert sent["draft"]["revision"] == 1
    assert sent["inverse"][0]["op"] == "add"
    undone = await drafts(world).apply(world.editor, flow_id, sent["inverse"], revision=1)
    assert undone.draft.changed is False


async def test_save_makes_the_next_version_with_its_message_and_clears_the_draft(world: World) -> None:
    flow_id = await new_flow(world)
    applied = await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    saved = await drafts(world).save(world.editor, flow_id, message="adds a summary")
    assert (saved.version.version, saved.version.message, saved.problems) == (2, "adds a summary", [])
    assert saved.version.document == applied.draft.document
    draft = await drafts(world).open(world.viewer, flow_id)
    assert (draft.revision, draft.base_version, draft.changed) == (0, 2, False)
    assert draft.document == applied.draft.document


async def test_saving_without_changes_is_a_conflict(world: World) -> None:
    flow_id = await new_flow(world)
    with pytest.raises(Conflict, match="no changes since version 1"):
        await drafts(world).save(world.editor, flow_id)
    applied = await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    await drafts(world).apply(world.editor, flow_id, applied.inverse, revision=1)
    with pytest.raises(Conflict, match="no changes since version 1"):
        await drafts(world).save(world.editor, flow_id)


async def test_a_version_saved_meanwhile_makes_save_a_conflict_that_keeps_the_draft(world: World) -> None:
    flow_id = await new_flow(world)
    applied = await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    theirs = simple_flow(world)
    theirs["nodes"][1]["data"]["prompt"] = "Theirs: {{ inputs.topic }}"
    await world.services.flows.save(world.editor, flow_id, theirs, expected_version=1)
    with pytest.raises(Conflict, match=r"someone saved version 2 of this flow after version 1.*your draft is kept"):
        await drafts(world).save(world.editor, flow_id, message="mine")
    kept = await drafts(world).open(world.editor, flow_id)
    assert (kept.revision, kept.base_version, kept.document) == (1, 1, applied.draft.document)
    saved = await drafts(world).save(world.editor, flow_id, message="mine anyway", overwrite=True)
    assert saved.version.version == 3
    assert (await drafts(world).open(world.editor, flow_id)).revision == 0


async def test_discard_drops_the_draft_for_the_latest_version(world: World) -> None:
    flow_id = await new_flow(world)
    await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    discarded = await drafts(world).discard(world.editor, flow_id)
    latest = await world.services.flows.version(world.editor, flow_id)
    assert (discarded.revision, discarded.changed, discarded.document) == (0, False, latest.document)
    assert (await drafts(world).open(world.editor, flow_id)).revision == 0


async def test_restore_puts_an_earlier_version_into_the_draft_to_be_saved(world: World) -> None:
    flow_id = await new_flow(world)
    first = await world.services.flows.version(world.editor, flow_id, 1)
    await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    await drafts(world).save(world.editor, flow_id)
    restored = await drafts(world).restore(world.editor, flow_id, 1)
    assert (restored.revision, restored.base_version, restored.changed, restored.problems) == (1, 2, True, [])
    assert restored.document == first.document
    assert (await world.services.flows.get(world.editor, flow_id)).latest_version == 2  # nothing saved yet
    saved = await drafts(world).save(world.editor, flow_id, message="back to the first")
    assert (saved.version.version, saved.version.document) == (3, first.document)
    with pytest.raises(NotFound, match="has no version 9"):
        await drafts(world).restore(world.editor, flow_id, 9)


async def test_viewers_open_drafts_but_cannot_change_save_discard_or_restore_them(world: World) -> None:
    flow_id = await new_flow(world)
    assert (await drafts(world).open(world.viewer, flow_id)).revision == 0
    with pytest.raises(PermissionDenied, match="cannot edit flows"):
        await drafts(world).apply(world.viewer, flow_id, [add_summary(world)], revision=0)
    await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    with pytest.raises(PermissionDenied, match="cannot save flows"):
        await drafts(world).save(world.viewer, flow_id)
    with pytest.raises(PermissionDenied):
        await drafts(world).discard(world.viewer, flow_id)
    with pytest.raises(PermissionDenied):
        await drafts(world).restore(world.viewer, flow_id, 1)
    assert (await drafts(world).open(world.viewer, flow_id)).revision == 1


async def test_another_tenants_flow_is_not_found(world: World) -> None:
    flow_id = await new_flow(world)
    info = await world.services.tenants.create("globex")
    outsider = TenantContext(info.id, "globex", uuid.uuid4(), Role.EDITOR)
    with pytest.raises(NotFound):
        await drafts(world).open(outsider, flow_id)
    with pytest.raises(NotFound):
        await drafts(world).apply(outsider, flow_id, [add_summary(world)], revision=0)
    with pytest.raises(NotFound):
        await drafts(world).save(outsider, flow_id)
    with pytest.raises(NotFound):
        await drafts(world).discard(outsider, flow_id)
    assert (await drafts(world).open(world.editor, flow_id)).revision == 0


async def test_deleting_a_flow_deletes_its_draft(world: World) -> None:
    flow_id = await new_flow(world)
    await drafts(world).apply(world.editor, flow_id, [add_summary(world)], revision=0)
    await world.services.flows.delete(world.editor, flow_id)
    async with world.services.db.tenant_session(world.editor.tenant_slug) as session:
        assert await session.scalar(select(func.count()).select_from(FlowDraft)) == 0
    with pytest.raises(NotFound):
        await drafts(world).open(world.editor, flow_id)


async def test_an_admin_may_do_what_an_editor_may(world: World) -> None:
    flow_id = await new_flow(world)
    admin = dataclasses.replace(world.editor, role=Role.ADMIN)
    await drafts(world).apply(admin, flow_id, [add_summary(world)], revision=0)
    assert (await drafts(world).save(admin, flow_id)).version.version == 2
