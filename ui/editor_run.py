"""Runs on the canvas: start one from the editor, watch every node live, cancel, retry, run from a node.

A run always runs a saved version (executions pin what they ran): with unsaved changes in
the draft, *Run* saves them as a new version first and says so. Pinned outputs are used.
The run's events come over the event bus (`ExecutionService.follow`), are turned into node
and edge states (`ui.run_states`) and sent to the canvas as small patches over NiceGUI's
websocket; nothing polls. The run pane shows the status, Cancel / Retry, the outputs or the
error, the event log and the text a node is streaming.

    run = CanvasRun(page, session, canvas, flow)
    run.draw()                      # the pane, in the current container
    await run.ask()                 # the Run button: inputs form, then start and follow
    await run.show(execution_id)    # an earlier run's states (the editor's ?run= link)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from nicegui import background_tasks, ui
from pydantic import BaseModel

from core.context import Role, TenantContext
from core.errors import InvalidInput, Problem
from core.executions import TERMINAL_STATUSES, EventRecord, ExecutionRecord
from core.flow_store import FlowRecord
from executor.document import parse_document
from executor.errors import FlowInvalid
from executor.reuse import RunOptions
from ui.code_blocks import json_block
from ui.editor_session import EditorSession
from ui.elements.flow_canvas import FlowCanvas
from ui.human_answer import HumanAnswer, question_of
from ui.records import tag
from ui.run_inputs import input_values, inputs_form
from ui.run_states import RunStates
from ui.run_view import status_badge
from ui.tenant_page import REPORTED, PageView

#: Lines the pane's event log keeps (the run page and the API have every event).
LOG_LINES = 300
RETRYABLE = frozenset({"failed", "cancelled", "interrupted"})


def log_line(event: EventRecord) -> str:
    """One event as a line of the pane's log."""
    where = f" {event.node_id}" if event.node_id else ""
    detail = ""
    if event.type == "node_failed" or event.type == "node_retrying":
        detail = f": {event.data.get('error', '')}"
    elif event.type == "node_completed" and "duration_ms" in event.data:
        detail = f" in {event.data['duration_ms']} ms"
    elif event.type == "execution_failed":
        detail = f": {event.data.get('error', '')}"
    return f"{event.ts.strftime('%H:%M:%S')} {event.type}{where}{detail}"[:300]


class CanvasRun:
    """The run the editor shows on its canvas."""

    def __init__(self, page: PageView, session: EditorSession, canvas: FlowCanvas, flow: FlowRecord) -> None:
        self.page = page
        self.services = page.services
        self.session = session
        self.canvas = canvas
        self.flow = flow
        self.record: ExecutionRecord | None = None
        self.states = RunStates(session.document)
        self.inputs: dict[str, Any] = {}
        self._watch: asyncio.Task[None] | None = None
        self.seq = 0  # the last event of the shown run seen here
        self.on_update: Callable[[], None] | None = None  # the editor redraws the selected node's run section

    # -- the pane ----------------------------------------------------------------------------------

    def draw(self) -> None:
        with tag(ui.column().classes("w-full gap-2 p-3"), "run-pane") as self.pane:
            self.summary = ui.column().classes("w-full gap-2")
            ui.label("Event log").classes("font-semibold pt-2")
            self.log = tag(ui.column().classes("w-full gap-0 font-mono text-xs"), "run-pane-log")
        self._draw_summary()

    def _draw_summary(self) -> None:
        self.summary.clear()
        with self.summary:
            record = self.record
            if record is None:
                ui.label("No run on the canvas yet.").classes("font-semibold")
                hint = "Run (above) saves your changes as a version and runs it here, node by node."
                ui.label(hint if self.page.can_edit else "Runs an editor starts show here.").classes(
                    "text-sm text-slate-600"
                )
                return
            with ui.row().classes("w-full items-center gap-2"):
                status_badge(record.status, test="run-pane-status")
                ui.label(f"version {record.version}").classes("text-sm text-slate-600")
                ui.space()
                tag(ui.link("Run page", f"/runs/{record.id}"), "run-pane-page").classes("text-sm")
                tag(ui.link("Trace", f"/runs/{record.id}/trace"), "run-pane-trace").classes("text-sm")
            if self.page.can_edit:
                with ui.row().classes("gap-2"):
                    if record.status not in TERMINAL_STATUSES:
                        tag(
                            ui.button("Cancel", color="negative", on_click=self.page.action(self.cancel, Role.EDITOR)),
                            "run-pane-cancel",
                        ).props("dense")
                    if record.status in RETRYABLE:
                        tag(
                            ui.button("Retry failed", on_click=self.page.action(self.retry, Role.EDITOR)),
                            "run-pane-retry",
                        ).props("dense")
            if record.error:
                tag(ui.label(record.error).props("role=alert"), "run-pane-error").classes(
                    "w-full p-2 rounded bg-red-100 text-red-900 text-sm whitespace-pre-wrap"
                )
            for run in record.node_runs if record.status == "waiting" else []:
                if question_of(run) is not None:
                    HumanAnswer(self.page, record.id, run, on_answered=self.answered)
            if record.status == "completed":
                ui.label("Outputs").classes("font-semibold")
                tag(json_block(record.outputs, label="outputs").classes("w-full text-xs"), "run-pane-outputs")

    def answered(self, record: ExecutionRecord) -> None:
        """A person answered a waiting node here: the run goes on, followed again from where it paused."""
        self._take_record(record)
        if record.status not in TERMINAL_STATUSES and (self._watch is None or self._watch.done()):
            self._start_following(self.page.ctx, record.id)

    def _log(self, event: EventRecord) -> None:
        if event.type == "token" or self.log.is_deleted:
            return
        with self.log:
            ui.label(log_line(event)).classes("whitespace-pre-wrap")
        extra = len(self.log.default_slot.children) - LOG_LINES
        for child in list(self.log.default_slot.children)[: max(extra, 0)]:
            self.log.remove(child)

    # -- starting ------------------------------------------------------------------------------------

    async def ask(self) -> None:
        """The Run button: ask the flow's inputs (if it has any), then save what changed and run."""
        specs = parse_document(self.session.document).inputs
        if not specs:
            await self._run_now({}, RunOptions(use_pins=True))
            return
        with ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
            tag(dialog, "run-dialog")
            ui.label("Run the flow").classes("text-lg font-semibold")
            if self.session.changed:
                ui.label(f"Your changes are saved as version {self.session.base_version + 1} first.").classes(
                    "text-sm text-slate-600"
                )

            async def submit(values: BaseModel) -> None:
                try:
                    started = await self._run_now(input_values(values), RunOptions(use_pins=True))
                except InvalidInput as exc:  # the service names inputs `inputs.<name>`; the form's fields are names
                    raise InvalidInput(
                        str(exc), problems=[Problem(p.field.removeprefix("inputs."), p.message) for p in exc.problems]
                    ) from exc
                if started:
                    dialog.close()

            inputs_form(specs, on_submit=submit, value=self.inputs or None, testid="run")
            ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.on_value_change(lambda event: None if event.value else dialog.delete())
        dialog.open()

    async def run_from(self, node_id: str) -> None:
        """Run `node_id` and what follows it again, reusing the shown run's upstream outputs."""
        if self.record is None:
            ui.notify("Run the flow once first: running from a node reuses that run's earlier outputs.")
            return
        options = RunOptions(from_node=node_id, reuse_execution=self.record.id, use_pins=True)
        with self.pane:  # the button that asked is redrawn (deleted) as the new run starts
            await self._run_now(dict(self.record.inputs), options)

    async def _run_now(self, inputs: dict[str, Any], options: RunOptions) -> bool:
        ctx = await self.page.fresh(Role.EDITOR)
        if ctx is None:
            return False
        if self.session.changed:
            try:
                saved = await self.session.save(ctx, "saved to run")
            except REPORTED as exc:
                ui.notify(f"Not run: saving failed: {exc}", type="negative", multi_line=True, close_button=True)
                return False
            ui.notify(f"Saved as version {saved.version.version} to run it.")
        try:
            record = await self.services.executions.start_run(
                ctx, self.flow.id, inputs, version=self.session.base_version, options=options
            )
        except FlowInvalid as exc:
            lines = "; ".join(f"{p.node_id or 'flow'}: {p.message}" for p in exc.problems[:5])
            ui.notify(f"The flow cannot run yet: {lines}", type="warning", multi_line=True, close_button=True)
            return False
        self.inputs = inputs
        await self._show(ctx, record, fresh=True)
        return True

    async def cancel(self, ctx: TenantContext) -> None:
        if self.record is not None:
            self._take_record(await self.services.executions.cancel(ctx, self.record.id))

    async def retry(self, ctx: TenantContext) -> None:
        if self.record is not None:
            record = await self.services.executions.retry(ctx, self.record.id, latest=True)
            await self._show(ctx, record, fresh=True)

    # -- showing and following -------------------------------------------------------------------------

    async def show(self, execution_id: uuid.UUID) -> None:
        """Show a stored run (following it if it goes on); another flow's run is said, not shown."""
        record = await self.services.executions.get(self.page.ctx, execution_id)
        if record.flow_id != self.flow.id:
            ui.notify("That run belongs to another flow.", type="warning")
            return
        await self._show(self.page.ctx, record, fresh=False)

    async def _show(self, ctx: TenantContext, record: ExecutionRecord, *, fresh: bool) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self.states = RunStates(self.session.document)
        self.seq = 0 if fresh else record.last_seq
        self.log.clear()
        patches = self.states.pending() if fresh else self.states.from_record(record)
        self._patch(patches, self.states.edge_states)
        self._take_record(record)
        if record.status in TERMINAL_STATUSES and not fresh:
            return
        self._start_following(ctx, record.id)

    def _start_following(self, ctx: TenantContext, execution_id: uuid.UUID) -> None:
        self._watch = background_tasks.create(self._follow(ctx, execution_id), name=f"canvas run {execution_id}")
        self.pane.client.on_delete(self._watch.cancel)

    async def _follow(self, ctx: TenantContext, execution_id: uuid.UUID) -> None:
        with self.pane:
            try:
                async for item in self.services.executions.follow(ctx, execution_id, after_seq=self.seq):
                    if not isinstance(item, EventRecord):
                        continue  # a heartbeat
                    self.seq = item.seq
                    patches, edges = self.states.take(item)
                    self._patch(patches, edges)
                    self._log(item)
                    if item.type.startswith("execution_") or item.type in {"node_waiting", "node_failed"}:
                        self._take_record(await self.services.executions.get(ctx, execution_id))
            except REPORTED as exc:
                ui.notify(str(exc), type="negative")
            if self.record is not None and self.record.id == execution_id:
                self._take_record(await self.services.executions.get(ctx, execution_id))

    def _take_record(self, record: ExecutionRecord) -> None:
        self.record = record
        if not self.summary.is_deleted:
            self._draw_summary()
        if self.on_update is not None:
            self.on_update()

    def _patch(self, patches: dict[str, dict[str, Any]], edges: dict[str, str]) -> None:
        if self.canvas.is_deleted:
            return
        if patches:
            self.canvas.patch_nodes({node_id: self._with_detail(node_id, patch) for node_id, patch in patches.items()})
        if edges:
            self.canvas.set_edge_states(edges)  # type: ignore[arg-type]

    def _with_detail(self, node_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A patch whose empty detail line falls back to the node's type, as the canvas draws it unrun."""
        if patch.get("detail") == "" and (node := self.session.node(node_id)) is not None:
            try:
                patch = {**patch, "detail": self.services.registry.get(str(node["type"])).meta.label}
            except Exception:  # an unknown type: no label to fall back to
                return patch
        return patch

    # -- one node's part of the run ------------------------------------------------------------------

    def node_run(self, node_id: str) -> Any:
        """The shown run's record of `node_id`, if it ran."""
        if self.record is None:
            return None
        return self.record.runs_by_node().get(node_id)

    def tokens(self, node_id: str) -> str:
        return self.states.tokens.get(node_id, "")
