"""The flow editor's versions: who saved which version when, the changes between two on the canvas, restore.

*Show changes* draws the newer of two versions on a canvas of its own, nodes and edges
marked added or changed, and the removed ones drawn faded where they were, so a change is
seen where it happened rather than read from a list. *Restore* puts a version into the draft
(not saved yet): the person looks at it on the canvas and saves it as the next version.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nicegui import ui

from core.context import Role
from core.flow_store import FlowRecord, VersionSummary
from ui.editor_session import EditorSession
from ui.editor_view import view_edges, view_nodes
from ui.elements.flow_canvas import FlowCanvas
from ui.records import tag
from ui.tenant_page import REPORTED, PageView


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def diff_view(
    old: dict[str, Any], new: dict[str, Any], changes: dict[str, Any], page: PageView
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The canvas view of `new` with `changes` marked, plus what `old` had and `new` lost, faded."""
    nodes_changed = {node_id: "changed" for node_id in changes["nodes"]["changed"]}
    nodes_changed |= {node_id: "added" for node_id in changes["nodes"]["added"]}
    edges_changed = {edge_id: "added" for edge_id in changes["edges"]["added"] + changes["edges"]["changed"]}
    registry = page.services.registry
    nodes = view_nodes(new, registry, highlight=nodes_changed)
    edges = view_edges(new, highlight=edges_changed)
    removed_nodes = set(changes["nodes"]["removed"])
    removed_edges = set(changes["edges"]["removed"])
    gone = {"nodes": [n for n in old.get("nodes", []) if n["id"] in removed_nodes]}
    gone["edges"] = [e for e in old.get("edges", []) if e["id"] in removed_edges]
    nodes += view_nodes(gone, registry, highlight=dict.fromkeys(removed_nodes, "removed"))
    edges += view_edges(gone, highlight=dict.fromkeys(removed_edges, "removed"))
    return nodes, edges


class VersionsPanel:
    """A dialog listing the versions, opened from the editor's toolbar."""

    def __init__(
        self, page: PageView, session: EditorSession, flow: FlowRecord, *, on_restored: Callable[[], None]
    ) -> None:
        self.page = page
        self.session = session
        self.flow = flow
        self.on_restored = on_restored
        self.names: dict[Any, str] | None = None
        with ui.dialog().props("position=right full-height") as self.dialog, ui.card().classes("w-[28rem] h-full"):
            tag(self.dialog, "versions-dialog")
            with ui.row().classes("w-full items-center"):
                ui.label("Versions").classes("text-lg font-semibold")
                ui.space()
                ui.button(icon="close", on_click=self.dialog.close).props('flat round dense aria-label="Close"')
            ui.label("Every save is a new version; runs keep the version they ran.").classes("text-sm text-slate-600")
            self.body = ui.column().classes("w-full gap-1")

    async def open(self) -> None:
        await self.refresh_now()
        self.dialog.open()

    def refresh(self) -> None:
        if self.dialog.value:
            ui.timer(0, self.refresh_now, once=True)

    async def refresh_now(self) -> None:
        ctx = self.page.ctx
        versions = await self.page.services.flows.versions(ctx, self.flow.id)
        if self.names is None:
            members = await self.page.services.identity.members.list_members(ctx)
            self.names = {m.user_id: m.display_name or m.email for m in members}
        self.body.clear()
        with self.body, tag(ui.list().props("separator").classes("w-full"), "versions-list"):
            latest = max((v.version for v in versions), default=0)
            for summary in sorted(versions, key=lambda v: -v.version):
                self._row(summary, latest=latest)

    def _row(self, summary: VersionSummary, *, latest: int) -> None:
        names = self.names or {}
        with ui.item().classes("w-full"), ui.item_section():
            title = f"Version {summary.version}" + (" (latest)" if summary.version == latest else "")
            ui.item_label(title).classes("font-medium")
            who = names.get(summary.created_by, "someone no longer in the workspace") if summary.created_by else "—"
            ui.item_label(f"{when(summary.created_at)} · {who}").props("caption")
            if summary.message:
                ui.item_label(summary.message).classes("text-sm")
            with ui.row().classes("gap-1"):
                if summary.version > 1:
                    tag(
                        ui.button("Show changes", on_click=lambda _, v=summary.version: self._changes(v - 1, v)).props(
                            "flat dense no-caps size=sm"
                        ),
                        f"version-changes-{summary.version}",
                    )
                if self.page.can_edit and summary.version != latest:
                    tag(
                        ui.button("Restore", on_click=lambda _, v=summary.version: self._restore(v)).props(
                            "flat dense no-caps size=sm"
                        ),
                        f"version-restore-{summary.version}",
                    )

    async def _changes(self, old: int, new: int) -> None:
        services, ctx = self.page.services, self.page.ctx
        try:
            changes = await services.flows.diff(ctx, self.flow.id, old, new)
            before = await services.flows.version(ctx, self.flow.id, old)
            after = await services.flows.version(ctx, self.flow.id, new)
        except REPORTED as exc:
            ui.notify(str(exc), type="negative")
            return
        nodes, edges = diff_view(before.document, after.document, changes, self.page)
        with ui.dialog().props("maximized") as dialog, ui.card().classes("w-full h-full p-0 gap-0"):
            tag(dialog, "diff-dialog")
            with ui.row().classes("w-full items-center px-3 py-2 border-b"):
                ui.label(f"Changes from version {old} to version {new}").classes("text-lg font-semibold")
                counts = ", ".join(f"{len(changes['nodes'][kind])} {kind}" for kind in ("added", "changed", "removed"))
                tag(ui.label(f"Nodes: {counts}").classes("text-sm text-slate-600"), "diff-summary")
                ui.space()
                ui.button("Close", on_click=dialog.close).props("flat")
            with ui.element("div").classes("w-full grow").style("min-height: 0; position: relative"):
                canvas = FlowCanvas(read_only=True)
        canvas.set_flow(nodes, edges, fit=True)
        dialog.open()

    async def _restore(self, version: int) -> None:
        ctx = await self.page.fresh(Role.EDITOR)
        if ctx is None:
            return
        try:
            await self.session.restore(ctx, version)
        except REPORTED as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        self.dialog.close()
        self.on_restored()
        ui.notify(f"Version {version} is in the draft now: save it to make it the latest version.")
