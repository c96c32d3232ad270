"""The flow editor: palette, canvas and properties around one flow's draft.

The canvas reports what the person did (`ui.elements.flow_canvas`); this turns it into draft
operations through `EditorSession`, and draws the answer: the canvas never changes the flow
by itself, so what it shows is what the server stored. A refused change (a connection the
types do not allow, a duplicate edge) is said in a notification and leaves the draft as it was.

Shortcuts (inside the canvas): Delete, Ctrl+Z / Ctrl+Shift+Z, Ctrl+C / Ctrl+V; Ctrl+S saves
from anywhere on the page.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import events, ui

from core.context import Role, TenantContext
from core.flow_store import FlowRecord
from executor.draft_ops import new_edge_id, new_node_id
from executor.drafts import StaleDraft
from ui.editor_inspect import draw_node_run
from ui.editor_palette import Palette
from ui.editor_properties import Pickers, Properties
from ui.editor_run import CanvasRun
from ui.editor_session import EditorSession
from ui.editor_versions import VersionsPanel
from ui.editor_view import FLOW_WIDE, problems_by_node, view_edges, view_nodes
from ui.elements.flow_canvas import FlowCanvas
from ui.records import tag
from ui.tenant_page import REPORTED, PageView

#: Where a node added without a drop position lands in an empty flow.
DEFAULT_DROP = {"x": 0.0, "y": 0.0}
#: The room a node takes on the canvas, for placing new nodes beside the others.
NODE_SPACING = {"x": 280.0, "y": 140.0}


def free_spot(document: dict[str, Any]) -> dict[str, float]:
    """A place for a new node: right of the rightmost node, level with it."""
    nodes = document.get("nodes") or []
    if not nodes:
        return dict(DEFAULT_DROP)
    rightmost = max(nodes, key=lambda n: float(n["position"]["x"]))
    return {"x": float(rightmost["position"]["x"]) + NODE_SPACING["x"], "y": float(rightmost["position"]["y"])}


class Editor:
    """One open editor page."""

    def __init__(self, page: PageView, flow: FlowRecord, session: EditorSession, pickers: Pickers) -> None:
        self.page = page
        self.flow = flow
        self.session = session
        self.pickers = pickers
        self.selected_nodes: list[str] = []
        self.selected_edges: list[str] = []
        self._moving = False
        self.canvas: FlowCanvas
        self.properties: Properties

    # -- drawing ---------------------------------------------------------------------------------

    def draw(self) -> None:
        editable = self.page.can_edit
        # Handlers of buttons in redrawn parts (a node's run section) draw here, not into their deleted slot.
        self.root = ui.context.slot.parent
        with ui.row().classes("w-full items-center gap-2 px-3 py-1 border-b no-wrap cc-editor-toolbar"):
            self.status = tag(ui.label().classes("text-sm"), "editor-status")
            self.problem_chip = tag(
                ui.button(on_click=self._next_problem).props("flat dense no-caps color=negative icon=error_outline"),
                "editor-problems",
            )
            with self.problem_chip:
                self.problem_list = ui.tooltip().classes("whitespace-pre-line")
            ui.space()
            if editable:
                self.undo_button = self._tool("undo", "Undo (Ctrl+Z)", self._undo)
                self.redo_button = self._tool("redo", "Redo (Ctrl+Shift+Z)", self._redo)
                self._tool("account_tree", "Arrange the nodes left to right", lambda: self.canvas.auto_layout())
            self._tool("fit_screen", "Fit the flow into view", lambda: self.canvas.fit_view())
            self.versions = VersionsPanel(self.page, self.session, self.flow, on_restored=self._restored)
            self._tool("history", "Versions", self.versions.open)
            if editable:
                self.discard_button = tag(
                    ui.button("Discard draft", on_click=self._discard).props("flat no-caps"), "editor-discard"
                )
                tag(ui.button("Save", icon="save", on_click=self._ask_save).props("outline no-caps"), "editor-save")
                tag(ui.button("Run", icon="play_arrow", on_click=self._run).props("no-caps"), "editor-run")
            tag(
                ui.button("Flow page", on_click=lambda: ui.navigate.to(f"/flows/{self.flow.id}")).props("flat no-caps"),
                "editor-flow-page",
            )
        with ui.row().classes("w-full grow gap-0 no-wrap overflow-hidden").style("min-height: 0"):
            with ui.scroll_area().classes("w-56 h-full border-r shrink-0"):
                Palette(self.page.services.registry, self._add_in_view, enabled=editable)
            with ui.element("div").classes("grow h-full").style("min-width: 0; position: relative"):
                self.canvas = tag(FlowCanvas(read_only=not editable), "flow-canvas")
            with ui.column().classes("w-96 h-full border-l shrink-0 gap-0 no-wrap"):
                with ui.tabs().classes("w-full").props("dense align=left") as tabs:
                    properties_tab = tag(ui.tab("properties", "Properties"), "tab-properties")
                    self.run_tab = tag(ui.tab("run", "Run"), "tab-run")
                with ui.tab_panels(tabs, value=properties_tab).classes("w-full grow").style("min-height: 0") as panels:
                    self.panels = panels
                    with ui.tab_panel(properties_tab).classes("p-0"), ui.scroll_area().classes("w-full h-full"):
                        self.properties = Properties(self.page, self.session, self.pickers)
                        self.properties.actions = self._delete_nodes
                    with ui.tab_panel(self.run_tab).classes("p-0"), ui.scroll_area().classes("w-full h-full"):
                        self.run = CanvasRun(self.page, self.session, self.canvas, self.flow)
                        self.run.draw()
        self.run.on_update = self.properties.redraw_run
        self.properties.inspect = lambda node_id: draw_node_run(
            self.page, self.session, self.run, node_id, pin=self._pin
        )
        self._wire()
        self.session.on_change(self._changed)
        self.canvas.set_flow(*self._view(), fit=True)
        self.properties.show(None)
        self._status()

    def _tool(self, icon: str, label: str, handler: Callable[[], Any]) -> ui.button:
        button = ui.button(icon=icon, on_click=handler).props(f'flat round dense aria-label="{label}"')
        button.tooltip(label)
        return tag(button, f"editor-{icon}")

    def _view(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        document = self.session.document
        registry = self.page.services.registry
        return view_nodes(document, registry, problems=self.session.problems), view_edges(document)

    def _status(self) -> None:
        session = self.session
        if session.changed:
            self.status.set_text(f"Draft: changes since version {session.base_version}, kept as you go")
        else:
            self.status.set_text(f"Version {session.base_version}: no unsaved changes")
        count = len(session.problems)
        self.problem_chip.set_text(f"{count} problem{'s' if count != 1 else ''}")
        self.problem_chip.set_visibility(count > 0)
        self.problem_list.set_text(
            "\n".join(line for lines in problems_by_node(session.problems).values() for line in lines)
        )
        if self.page.can_edit:
            self.undo_button.set_enabled(bool(session.undo_stack))
            self.redo_button.set_enabled(bool(session.redo_stack))
            self.discard_button.set_visibility(session.changed)

    # -- canvas events -----------------------------------------------------------------------------

    def _wire(self) -> None:
        on = self._on
        on("moved", self._moved)
        on("connect", self._connect)
        on("drop", lambda args: self._drop(str(args["type"]), args["position"]))
        on("selection", self._selection)
        on("node_click", lambda args: self._select([str(args["id"])]))
        on("delete", lambda args: self._remove(args.get("nodes") or [], args.get("edges") or []))
        on("copy", lambda args: self._copy(args.get("nodes") or self.selected_nodes))
        on("paste", lambda args: self._paste(args.get("position")))
        on("undo", lambda _: self._undo())
        on("redo", lambda _: self._redo())
        on("save", lambda _: self._save(""))

    def _on(self, name: str, handler: Callable[[dict[str, Any]], Awaitable[Any] | None]) -> None:
        async def run(event: events.GenericEventArguments) -> None:
            result = handler(event.args if isinstance(event.args, dict) else {})
            if result is not None:
                await result

        self.canvas.on(name, run)

    async def _edit(self, operations: list[dict[str, Any]]) -> bool:
        """Apply `operations` as one undoable step; a refusal is said and changes nothing."""
        ctx = await self.page.fresh(Role.EDITOR)
        if ctx is None:
            return False
        try:
            await self.session.apply(ctx, operations)
        except REPORTED as exc:
            ui.notify(str(exc), type="warning", multi_line=True, close_button=True)
            self.canvas.set_flow(*self._view())  # undo what the canvas drew (a drag, a connection line)
            return False
        return True

    async def _moved(self, args: dict[str, Any]) -> None:
        positions = args.get("positions") or {}
        if positions:
            self._moving = not args.get("layout")
            try:
                await self._edit([{"op": "move", "positions": positions}])
            finally:
                self._moving = False

    async def _connect(self, args: dict[str, Any]) -> None:
        edge = {
            "id": new_edge_id(self.session.document),
            "source": args["source"],
            "source_handle": args.get("source_handle") or "out",
            "target": args["target"],
            "target_handle": args.get("target_handle") or "in",
        }
        await self._edit([{"op": "add", "nodes": [], "edges": [edge]}])

    async def _add(self, type_name: str, position: dict[str, float] | None) -> None:
        node_id = new_node_id(self.session.document, type_name)
        node = {"id": node_id, "type": type_name, "position": position or DEFAULT_DROP, "data": {}}
        if await self._edit([{"op": "add", "nodes": [node], "edges": []}]):
            self.canvas.select([node_id])
            self._select([node_id])

    async def _drop(self, type_name: str, position: dict[str, float]) -> None:
        await self._add(type_name, position)

    async def _add_in_view(self, type_name: str) -> None:
        """Add a node from the palette by click or Enter: right of the flow, which is then fitted into view."""
        await self._add(type_name, free_spot(self.session.document))
        self.canvas.fit_view()

    def _selection(self, args: dict[str, Any]) -> None:
        self.selected_edges = [str(e) for e in args.get("edges") or []]
        self._select([str(n) for n in args.get("nodes") or []])

    def _select(self, nodes: list[str]) -> None:
        self.selected_nodes = nodes
        self.properties.show(nodes[0] if len(nodes) == 1 else None, nodes)
        if nodes:
            self.panels.set_value("properties")

    async def _remove(self, nodes: list[str], edges: list[str]) -> None:
        if nodes or edges:
            await self._edit([{"op": "remove", "nodes": list(nodes), "edges": list(edges)}])

    async def _delete_nodes(self, nodes: list[str]) -> None:
        await self._remove(nodes, [])

    def _copy(self, nodes: list[str]) -> None:
        count = self.session.copy(nodes)
        if count:
            ui.notify(f"Copied {count} node{'s' if count != 1 else ''}; Ctrl+V pastes them.", timeout=1500)

    async def _paste(self, position: dict[str, float] | None) -> None:
        operation = self.session.paste_operation(position)
        if operation is None:
            ui.notify("Nothing to paste: select nodes and press Ctrl+C first.", timeout=2000)
            return
        if await self._edit([operation]):
            pasted = [str(node["id"]) for node in operation["nodes"]]
            self.canvas.select(pasted)
            self._select(pasted)

    async def _undo(self) -> None:
        await self._history(self.session.undo, "Nothing to undo.")

    async def _redo(self) -> None:
        await self._history(self.session.redo, "Nothing to redo.")

    async def _history(self, step: Callable[[TenantContext], Awaitable[bool]], empty: str) -> None:
        ctx = await self.page.fresh(Role.EDITOR)
        if ctx is None:
            return
        try:
            if not await step(ctx):
                ui.notify(empty, timeout=1500)
        except REPORTED as exc:
            ui.notify(str(exc), type="warning", multi_line=True, close_button=True)

    def _changed(self, structural: bool) -> None:
        if not self._moving:
            self.canvas.set_flow(*self._view())
        if structural:
            self.properties.refresh()
            self.properties.redraw_run()  # a pin may have come or gone
        self._status()

    def _next_problem(self) -> None:
        by_node = problems_by_node(self.session.problems)
        node_ids = [key for key in by_node if key != FLOW_WIDE]
        if node_ids:
            self.canvas.select([node_ids[0]])
            self._select([node_ids[0]])
        else:
            self._select([])

    # -- running -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        await self.properties.flush()
        self.panels.set_value("run")
        await self.run.ask()
        self._status()

    async def _pin(self, node_id: str, output: Any) -> None:
        with self.root:
            await self._pinned(node_id, output)

    async def _pinned(self, node_id: str, output: Any) -> None:
        if await self._edit([{"op": "pin", "node": node_id, "output": output}]):
            ui.notify(
                "Pinned: runs use this output instead of running the node." if output is not None else "Unpinned."
            )
            self.properties.redraw_run()

    async def show_run(self, execution_id: uuid.UUID) -> None:
        """Show an earlier run's states on the canvas (the trace's and inbox's links to `?run=`)."""
        await self.run.show(execution_id)
        self.panels.set_value("run")

    # -- saving ----------------------------------------------------------------------------------

    def _ask_save(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label("Save a new version").classes("text-lg font-semibold")
            message = tag(
                ui.input("What changed (optional)").props("autofocus maxlength=500").classes("w-full"),
                "save-message",
            )

            async def save() -> None:
                dialog.close()  # a refusal is said (or asked about) on the page
                with self.root:
                    await self._save(str(message.value or ""))

            message.on("keydown.enter", save)
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                tag(ui.button("Save version", on_click=save), "save-confirm")
        dialog.on_value_change(lambda event: None if event.value else dialog.delete())
        dialog.open()

    async def _save(self, message: str, *, overwrite: bool = False) -> bool:
        if not self.page.can_edit:
            return False
        ctx = await self.page.fresh(Role.EDITOR)
        if ctx is None:
            return False
        await self.properties.flush()
        try:
            saved = await self.session.save(ctx, message, overwrite=overwrite)
        except StaleDraft as exc:
            self._ask_overwrite(str(exc), message)
            return False
        except REPORTED as exc:
            ui.notify(f"Not saved: {exc}. Your draft is kept.", type="negative", multi_line=True, close_button=True)
            return False
        problems = len(saved.problems)
        note = f" ({problems} problem{'s' if problems != 1 else ''} to fix before it can run)" if problems else ""
        ui.notify(f"Saved as version {saved.version.version}{note}.", type="positive")
        self._status()
        self.versions.refresh()
        return True

    def _ask_overwrite(self, why: str, message: str) -> None:
        """Someone saved a version after the one this draft started from: keep theirs, or save this after it."""
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
            tag(dialog, "stale-dialog")
            ui.label("Someone else saved this flow").classes("text-lg font-semibold")
            ui.label(why[0].upper() + why[1:] + ".").classes("text-sm")

            async def overwrite() -> None:
                dialog.close()  # and deleted: what follows draws into the page
                with self.root:
                    await self._save(message, overwrite=True)

            async def discard() -> None:
                dialog.close()
                with self.root:
                    await self._discard()

            with ui.row().classes("w-full justify-end"):
                ui.button("Keep editing", on_click=dialog.close).props("flat")
                tag(ui.button("Discard my draft", on_click=discard).props("flat"), "stale-discard")
                tag(ui.button("Save mine as the next version", on_click=overwrite), "stale-overwrite")
        dialog.on_value_change(lambda event: None if event.value else dialog.delete())
        dialog.open()

    async def _discard(self) -> None:
        ctx = await self.page.fresh(Role.EDITOR)
        if ctx is None:
            return
        try:
            await self.session.discard(ctx)
        except REPORTED as exc:
            ui.notify(str(exc), type="negative", multi_line=True, close_button=True)
            return
        ui.notify(f"Draft discarded: back to version {self.session.base_version}.")

    def _restored(self) -> None:
        self.canvas.set_flow(*self._view(), fit=True)
        self.properties.show(None)
        self._status()
