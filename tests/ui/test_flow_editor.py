"""The flow editor's page logic: canvas events become draft operations, the draft survives a reload,
Save makes a version, viewers only look. The canvas itself is driven by the browser tests; here its
events are triggered as the canvas element would send them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from nicegui.testing.user import User

from core.context import Role, TenantContext
from tests.executor.conftest import document, edge, node
from tests.ui.conftest import sign_in
from ui.elements.flow_canvas import FlowCanvas
from wiring.services import Services


def two_nodes() -> dict[str, Any]:
    return document(
        [node("in", "input"), node("out", "output", value="{{ inputs.topic }}")],
        [edge("in", "out")],
        [{"name": "topic", "type": "string"}],
    )


async def eventually(check: Callable[[], Any], seconds: float = 5.0) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"it did not happen within {seconds} s")


async def stored_value(services: Services, ctx: TenantContext, flow_id: uuid.UUID, node_id: str, expected: str) -> None:
    """Wait until the draft holds `expected` as node `node_id`'s `value` (the form stores half a second after typing)."""
    value = None
    for _ in range(50):
        draft = await services.drafts.open(ctx, flow_id)
        value = next(n for n in draft.document["nodes"] if n["id"] == node_id)["data"].get("value")
        if value == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the draft holds {value!r}, not {expected!r}")


def canvas(user: User) -> FlowCanvas:
    found = user.find(marker="flow-canvas").elements
    assert len(found) == 1
    element = next(iter(found))
    assert isinstance(element, FlowCanvas)
    return element


def drawn(user: User) -> tuple[set[str], set[str]]:
    flow = canvas(user).props["flow"]
    return {n["id"] for n in flow["nodes"]}, {e["id"] for e in flow["edges"]}


async def open_editor(
    user: User, services: Services, doc: dict[str, Any] | None = None
) -> tuple[TenantContext, uuid.UUID]:
    owner = await sign_in(user, services)
    saved = await services.flows.create(owner.ctx, "Echo", "", doc or two_nodes())
    flow_id = saved.version.flow_id
    await user.open(f"/flows/{flow_id}/edit")
    await user.should_see(marker="flow-canvas")
    return owner.ctx, flow_id


async def test_the_editor_draws_the_flow_and_says_it_is_saved(user: User, ui_services: Services) -> None:
    await open_editor(user, ui_services)
    assert drawn(user) == ({"in", "out"}, {"in.out-out"})
    await user.should_see("Version 1: no unsaved changes")
    await user.should_see(marker="palette-llm")
    await user.should_see(marker="palette-human")
    user.find(marker="palette-search").type("appro")
    await user.should_see(marker="palette-human")
    await user.should_not_see(marker="palette-llm")


async def test_a_dropped_node_joins_the_draft_with_its_problems_and_survives_a_reload(
    user: User, ui_services: Services
) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    user.find(marker="flow-canvas").trigger("drop", {"type": "llm", "position": {"x": 300, "y": 80}})
    await eventually(lambda: "llm_1" in drawn(user)[0])
    await user.should_see("Draft: changes since version 1, kept as you go")
    await user.should_see(marker="properties-type")  # the new node is selected and its form shown
    await user.should_see(marker="node-prompt")
    draft = await ui_services.drafts.open(ctx, flow_id)
    assert [n["id"] for n in draft.document["nodes"]] == ["in", "out", "llm_1"]
    assert draft.document["nodes"][2]["position"] == {"x": 300.0, "y": 80.0}
    assert any(p.node_id == "llm_1" and "prompt" in p.field for p in draft.problems or [])
    drawn_llm = next(n for n in canvas(user).props["flow"]["nodes"] if n["id"] == "llm_1")
    assert drawn_llm["data"]["problems"], "the node shows its problems"

    await user.open(f"/flows/{flow_id}/edit")  # a reload keeps the draft
    await eventually(lambda: "llm_1" in drawn(user)[0])
    await user.should_see("Draft: changes since version 1, kept as you go")


async def test_connections_the_types_refuse_are_said_and_not_drawn(user: User, ui_services: Services) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    the_canvas = user.find(marker="flow-canvas")
    the_canvas.trigger("connect", {"source": "out", "source_handle": "out", "target": "in", "target_handle": "in"})
    await user.should_see("output")  # the refusal names what is wrong
    assert drawn(user)[1] == {"in.out-out"}
    the_canvas.trigger("connect", {"source": "in", "source_handle": "out", "target": "out", "target_handle": "in"})
    await user.should_see("already")
    assert len((await ui_services.drafts.open(ctx, flow_id)).document["edges"]) == 1


async def test_typing_in_a_node_form_is_stored_and_undo_and_redo_follow(user: User, ui_services: Services) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    user.find(marker="flow-canvas").trigger("node_click", {"id": "out"})
    await user.should_see(marker="node-value")
    user.find(marker="node-value").clear().type("Topic: {{ inputs.topic }}")

    await stored_value(ui_services, ctx, flow_id, "out", "Topic: {{ inputs.topic }}")

    user.find(marker="flow-canvas").trigger("undo")
    await stored_value(ui_services, ctx, flow_id, "out", "{{ inputs.topic }}")
    await eventually(lambda: user.find(marker="node-value").elements.pop().value == "{{ inputs.topic }}")
    user.find(marker="flow-canvas").trigger("redo")
    await stored_value(ui_services, ctx, flow_id, "out", "Topic: {{ inputs.topic }}")


async def test_references_are_completed_as_they_are_typed(user: User, ui_services: Services) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    user.find(marker="flow-canvas").trigger("node_click", {"id": "out"})
    await user.should_see(marker="node-value")
    field = user.find(marker="node-value")

    def offered() -> set[str] | None:
        """The references the open list offers; None while it is closed."""
        menu = user.find(marker="node-value-completion").elements.pop()
        if not menu.value:
            return None
        prefix = "node-value-complete-"
        return {m.removeprefix(prefix) for item in menu.descendants() for m in item._markers if m.startswith(prefix)}

    field.clear().type("Topic: {{ in")
    await eventually(lambda: offered() == {"inputs.topic"})  # only what was begun
    user.find(marker="node-value-complete-inputs.topic").click()
    await eventually(lambda: field.elements.pop().value == "Topic: {{ inputs.topic }}")
    assert offered() is None

    await stored_value(ui_services, ctx, flow_id, "out", "Topic: {{ inputs.topic }}")

    # Both kinds offered after a bare "{{"; a name nothing starts with closes the list.
    user.find(marker="node-value").type(", from {{")
    await eventually(lambda: offered() == {"inputs.topic", "nodes.in.output"})
    user.find(marker="node-value").type(" zz")
    await eventually(lambda: offered() is None)


async def test_moves_deletes_and_paste_are_operations_on_the_draft(user: User, ui_services: Services) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    the_canvas = user.find(marker="flow-canvas")
    the_canvas.trigger("moved", {"positions": {"out": {"x": 500, "y": 40}}, "layout": False})
    the_canvas.trigger("copy", {"nodes": ["out"]})
    the_canvas.trigger("paste", {"position": {"x": 500, "y": 300}})
    await eventually(lambda: "output_1" in drawn(user)[0])
    the_canvas.trigger("delete", {"nodes": ["in"], "edges": []})
    await eventually(lambda: drawn(user) == ({"out", "output_1"}, set()))
    draft = await ui_services.drafts.open(ctx, flow_id)
    assert {n["id"]: n["position"] for n in draft.document["nodes"]} == {
        "out": {"x": 500.0, "y": 40.0},
        "output_1": {"x": 500.0, "y": 300.0},
    }
    the_canvas.trigger("undo")  # the delete comes back with its edge
    await eventually(lambda: drawn(user) == ({"in", "out", "output_1"}, {"in.out-out"}))


async def test_save_makes_a_version_with_a_message_and_the_draft_is_gone(user: User, ui_services: Services) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    user.find(marker="flow-canvas").trigger("drop", {"type": "output", "position": {"x": 0, "y": 200}})
    await eventually(lambda: "output_1" in drawn(user)[0])
    user.find(marker="editor-save").click()
    user.find(marker="save-message").type("a second output")
    user.find(marker="save-confirm").click()
    await user.should_see("Saved as version 2")
    await user.should_see("Version 2: no unsaved changes")
    versions = await ui_services.flows.versions(ctx, flow_id)
    assert max((v.version, v.message) for v in versions) == (2, "a second output")
    draft = await ui_services.drafts.open(ctx, flow_id)
    assert draft.revision == 0
    assert not draft.changed
    user.find(marker="flow-canvas").trigger("save")  # Ctrl+S with nothing changed says so
    await user.should_see("no changes")


async def test_a_save_after_someone_elses_keeps_the_draft_and_can_go_after_theirs(
    user: User, ui_services: Services
) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    user.find(marker="flow-canvas").trigger("drop", {"type": "output", "position": {"x": 0, "y": 200}})
    await eventually(lambda: "output_1" in drawn(user)[0])
    await ui_services.flows.save(ctx, flow_id, two_nodes(), message="saved elsewhere")  # version 2 meanwhile
    user.find(marker="flow-canvas").trigger("save")
    await user.should_see(marker="stale-dialog")
    await user.should_see("Someone saved version 2", retries=10)
    draft = await ui_services.drafts.open(ctx, flow_id)
    assert draft.changed  # kept
    assert "output_1" in [n["id"] for n in draft.document["nodes"]]
    user.find(marker="stale-overwrite").click()  # theirs stays in the history; mine comes after it
    await user.should_see("Saved as version 3", retries=30)
    versions = await ui_services.flows.versions(ctx, flow_id)
    assert sorted(v.version for v in versions) == [1, 2, 3]
    latest = await ui_services.flows.version(ctx, flow_id)
    assert "output_1" in [n["id"] for n in latest.document["nodes"]]


async def test_a_viewer_sees_the_flow_read_only(user: User, ui_services: Services) -> None:
    owner_user = await sign_in(user, ui_services)
    saved = await ui_services.flows.create(owner_user.ctx, "Echo", "", two_nodes())
    flow_id = saved.version.flow_id
    await sign_in(user, ui_services, workspace=owner_user.ctx, role=Role.VIEWER)
    await user.open(f"/flows/{flow_id}/edit")
    await user.should_see(marker="flow-canvas")
    assert canvas(user).read_only
    await user.should_not_see(marker="editor-save")
    await user.should_not_see(marker="editor-undo")
    user.find(marker="flow-canvas").trigger("drop", {"type": "llm", "position": {"x": 0, "y": 0}})
    await asyncio.sleep(0.3)
    draft = await ui_services.drafts.open(owner_user.ctx, flow_id)
    assert draft.revision == 0
    assert [n["id"] for n in draft.document["nodes"]] == ["in", "out"]
    user.find(marker="flow-canvas").trigger("node_click", {"id": "out"})
    await user.should_see(marker="node-value")
    assert "readonly" in user.find(marker="node-value").elements.pop().props


async def test_another_workspaces_flow_is_not_found(user: User, ui_services: Services) -> None:
    stranger = await sign_in(user, ui_services)
    theirs = await ui_services.flows.create(stranger.ctx, "Theirs", "", two_nodes())
    await sign_in(user, ui_services)
    response = await user.http_client.get(f"/flows/{theirs.version.flow_id}/edit")
    assert response.status_code == 404
    response = await user.http_client.get("/flows/not-a-uuid/edit")
    assert response.status_code == 404


async def test_restoring_a_version_puts_it_in_the_draft(user: User, ui_services: Services) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    await ui_services.flows.save(ctx, flow_id, document([node("in", "input")], []), message="only input")
    await user.open(f"/flows/{flow_id}/edit")
    await eventually(lambda: drawn(user)[0] == {"in"})
    user.find(marker="editor-history").click()
    await user.should_see(marker="versions-list")
    await user.should_see("only input")
    user.find(marker="version-restore-1").click()
    await eventually(lambda: drawn(user)[0] == {"in", "out"})
    await user.should_see("Draft: changes since version 2, kept as you go")
    # The draft is not a version until it is saved.
    assert sorted(v.version for v in await ui_services.flows.versions(ctx, flow_id)) == [1, 2]


async def test_opening_a_node_or_the_flow_panel_changes_nothing(user: User, ui_services: Services) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    for node_id in ("out", "in"):
        user.find(marker="flow-canvas").trigger("node_click", {"id": node_id})
        await user.should_see(marker="properties-type")
    user.find(marker="flow-canvas").trigger("selection", {"nodes": [], "edges": []})
    await user.should_see(marker="flow-inputs")
    await asyncio.sleep(1.0)  # past the time typed values take to be stored
    draft = await ui_services.drafts.open(ctx, flow_id)
    assert draft.revision == 0
    await user.should_see("Version 1: no unsaved changes")


async def test_what_was_typed_into_a_node_is_stored_after_switching_to_another_at_once(
    user: User, ui_services: Services
) -> None:
    ctx, flow_id = await open_editor(user, ui_services)
    user.find(marker="flow-canvas").trigger("node_click", {"id": "out"})
    await user.should_see(marker="node-label")
    user.find(marker="node-label").type("Shout")
    user.find(marker="flow-canvas").trigger("node_click", {"id": "in"})  # well within the wait before storing
    await user.should_see(marker="properties-type", content="Input")
    user.find(marker="node-label").type("Start")
    labels: dict[str, Any] = {}
    for _ in range(30):
        draft = await ui_services.drafts.open(ctx, flow_id)
        labels = {n["id"]: n["data"].get("label") for n in draft.document["nodes"]}
        if labels == {"in": "Start", "out": "Shout"}:
            break
        await asyncio.sleep(0.1)
    assert labels == {"in": "Start", "out": "Shout"}
