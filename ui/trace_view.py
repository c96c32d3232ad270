"""One run's trace on screen: its summary, a timeline of bars, and the details of the row picked.

`TraceView(page, record, trace, ...)` draws a `ui.trace_model.Trace`: one row per node and
nested rows for its attempts and its crew's tasks, steps and tool calls, each with a bar
placed by percentage `left`/`width` on a shared time axis (plain divs: no chart library, no
JavaScript), coloured by status and labelled in words with its numbers for screen readers.
Rows are list items that take a click or Enter; the panel beside the timeline then shows
that row's inputs, output, error and attempts. The view is drawn once: a run still going
says so and shows what was stored when the page was opened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nicegui import ui

from core.executions import ExecutionRecord
from ui.code_blocks import json_block
from ui.records import tag
from ui.run_view import STATUS_COLORS, pretty, status_badge, when
from ui.tenant_page import PageView
from ui.trace_model import Trace
from ui.trace_rows import NODE, TraceRow, cost_text, numbers_text, row_label, seconds_text

TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
_LABEL_WIDTH = "w-60"
SELECTED = "bg-indigo-500/20"  # no text colour of its own: keeps the row's contrast in light and dark
_TRACK_STYLE = (
    "background-color: rgba(100, 116, 139, 0.12);"
    "background-image: repeating-linear-gradient(to right, transparent 0 calc(25% - 1px),"
    " rgba(100, 116, 139, 0.3) calc(25% - 1px) 25%);"
)
# Text fields of nested rows, in the order the panel shows them.
_FIELDS = {
    "task": "Task",
    "agent": "Agent",
    "tool": "Tool",
    "attempt": "Attempt",
    "thought": "Thought",
    "arguments": "Arguments",
    "tool_calls": "Tool calls",
    "output": "Output",
    "error": "Error",
    "retried_after_s": "Retried after (s)",
}


def _test_key(row: TraceRow) -> str:
    """A row's key as a test id (`node:ask/task:1` -> `ask-task-1`)."""
    return row.key.removeprefix("node:").replace("/", "-").replace(":", "-")


class TraceView:
    """A run's trace page body."""

    def __init__(
        self,
        page: PageView,
        record: ExecutionRecord,
        trace: Trace,
        *,
        flow_name: str | None,
        started_by: str,
        events_cut: bool = False,
        subflow_runs: Mapping[str, Sequence[ExecutionRecord]] | None = None,
    ) -> None:
        self.page = page
        self.record = record
        self.trace = trace
        self.subflow_runs = subflow_runs or {}
        self.items: dict[str, ui.item] = {}
        self.selected: str | None = None
        self._summary(flow_name, started_by)
        if trace.running:
            waiting = " and waits for someone" if record.status == "waiting" else ""
            tag(
                ui.label(
                    f"This run is still going{waiting}: the trace shows what had happened when this page was opened. "
                    "Reload for more, or follow it live on the run page."
                ).props("role=status"),
                "trace-running",
            ).classes("w-full p-3 rounded bg-sky-100 text-sky-950")
        if events_cut:
            ui.label("This run has very many events: the trace is built from the first ones only.").classes(
                "text-sm text-slate-600"
            )
        with ui.element("div").classes("w-full flex flex-col lg:flex-row gap-4 items-start"):
            with ui.column().classes("w-full lg:flex-1 min-w-0 gap-1"):
                self._timeline()
            self.panel = tag(ui.card().classes("w-full lg:w-80 shrink-0 gap-2 lg:sticky"), "trace-details")
            self.panel.style("top: 4rem; max-height: calc(100vh - 5rem); overflow-y: auto")
            self.panel.props('role=region aria-label="Details of the selected row" aria-live=polite')
        failed = next((row for row in trace.node_rows() if row.status == "failed"), None)
        if failed is not None:
            self.select(failed)  # the first thing anyone wants to see of a failed run
        else:
            self._hint()

    # -- summary ---------------------------------------------------------------------------------

    def _summary(self, flow_name: str | None, started_by: str) -> None:
        record, trace = self.record, self.trace
        with tag(ui.column().classes("w-full gap-2"), "trace-summary"):
            with ui.row().classes("w-full items-center gap-3"):
                status_badge(record.status, test="trace-status")
                version = f"v{record.version}" if record.version is not None else "an unsaved document"
                if record.flow_id is not None and flow_name is not None:
                    tag(ui.link(f"{flow_name} · {version}", f"/flows/{record.flow_id}"), "trace-flow")
                else:
                    ui.label(f"a deleted flow · {version}" if record.flow_id else version).classes("text-slate-600")
                tag(ui.label(f"started by {started_by}"), "trace-who").classes("text-slate-600")
                ui.label(f"at {when(record.started_at)}").classes("text-slate-600")
            took = seconds_text(trace.duration_s) + (" so far" if trace.running else "")
            tokens = f"{trace.tokens} tokens ({trace.prompt_tokens} in, {trace.completion_tokens} out)"
            with ui.row().classes("w-full gap-6"):
                for label, value, test in (
                    ("Duration", took, "trace-duration"),
                    ("Tokens", tokens, "trace-tokens"),
                    ("Cost", cost_text(trace.cost_usd), "trace-cost"),
                ):
                    with ui.column().classes("gap-0"):
                        ui.label(label).classes("text-xs uppercase tracking-wide text-slate-600")
                        tag(ui.label(value), test).classes("font-semibold")
            with ui.row().classes("gap-4 items-center"):
                if record.flow_id is not None:
                    canvas = f"/flows/{record.flow_id}/edit?run={record.id}"
                    tag(ui.link("Open on the canvas", canvas), "trace-canvas")
                tag(ui.link("Back to the run", f"/runs/{record.id}"), "trace-run")
                if record.parent_execution_id is not None:
                    parent = f"/runs/{record.parent_execution_id}/trace"
                    tag(ui.link(f"Part of a run: its node {record.parent_node_id}", parent), "trace-parent")
            if record.error:
                tag(ui.label(record.error), "trace-error").classes(
                    "w-full p-3 rounded bg-red-100 text-red-900 whitespace-pre-wrap"
                )

    # -- timeline --------------------------------------------------------------------------------

    def _timeline(self) -> None:
        trace = self.trace
        ui.label("Timeline").classes("text-lg font-semibold")
        if not trace.rows:
            tag(ui.label("No node has run yet."), "trace-empty").classes("text-slate-600")
            return
        ui.label("Each bar is one step, placed by when it started and ended. Pick a row to see its details.").classes(
            "text-sm text-slate-600"
        )
        with ui.row().classes("w-full gap-2 no-wrap items-end px-2").props("aria-hidden=true"):
            ui.label("Step").classes(f"{_LABEL_WIDTH} shrink-0 text-xs text-slate-600")
            with ui.element("div").classes("relative flex-1 h-4 text-xs text-slate-600"):
                for tick in TICKS:
                    shift = "0" if tick == 0 else "-100%" if tick == 1 else "-50%"
                    ui.label(seconds_text(trace.span_s * tick)).classes("absolute top-0 whitespace-nowrap").style(
                        f"left: {tick * 100:.0f}%; transform: translateX({shift})"
                    )
        with tag(ui.list().props("bordered dense separator").classes("w-full rounded-md"), "trace-rows"):
            for row in trace.rows:
                self._row(row)

    def _row(self, row: TraceRow) -> None:
        item = tag(ui.item(on_click=lambda r=row: self.select(r)).props("clickable"), f"trace-row-{_test_key(row)}")
        item.classes("px-2")
        self.items[row.key] = item
        with item, ui.row().classes("w-full gap-2 no-wrap items-center"):
            with ui.column().classes(f"{_LABEL_WIDTH} shrink-0 gap-0 min-w-0").style(f"padding-left: {row.depth}rem"):
                with ui.row().classes("w-full gap-2 no-wrap items-baseline min-w-0"):
                    title = ui.label(row.title).classes("truncate" + (" font-semibold" if row.kind == NODE else ""))
                    title.props["title"] = row.title  # the whole name when it is cut short
                    if row.subtitle:
                        ui.label(row.subtitle).classes("text-xs text-slate-600 truncate")
                facts = f"{row.status} · {numbers_text(row)}"
                numbers = tag(ui.label(facts), f"trace-numbers-{_test_key(row)}")
                numbers.classes("text-xs text-slate-600 truncate")
                numbers.props["title"] = facts
            with ui.element("div").classes("relative flex-1 h-6 rounded").style(_TRACK_STYLE):
                if row.start_s is None:
                    why = "reused from an earlier run" if row.details.get("reused_from") else row.status
                    ui.label(why).classes("absolute inset-0 px-2 text-xs text-slate-600 leading-6")
                    return
                bar = ui.element("div").classes(f"absolute top-1 bottom-1 rounded bg-{self._colour(row)}")
                bar.style(f"left: {self.trace.left_pct(row):.3f}%; width: {self.trace.width_pct(row):.3f}%")
                if row.open:
                    bar.classes("opacity-60").style("border-right: 3px dashed currentColor")
                bar.props["role"] = "img"
                bar.props["aria-label"] = row_label(row)
                tag(bar, f"trace-bar-{_test_key(row)}")

    @staticmethod
    def _colour(row: TraceRow) -> str:
        return STATUS_COLORS.get(row.status, "grey-8")

    # -- details ---------------------------------------------------------------------------------

    def _hint(self) -> None:
        self.panel.clear()
        with self.panel:
            ui.label("Details").classes("font-semibold")
            ui.label("Pick a row of the timeline to see its inputs, output, error and attempts.").classes(
                "text-sm text-slate-600"
            )

    def select(self, row: TraceRow) -> None:
        """Show `row`'s details in the panel and mark its row as the selected one."""
        if self.selected in self.items:
            previous = self.items[self.selected]
            previous.classes(remove=SELECTED)
            previous.props.pop("aria-current", None)
        self.selected = row.key
        self.items[row.key].classes(SELECTED).props["aria-current"] = "true"
        self.panel.clear()
        with self.panel:
            with ui.row().classes("w-full items-center gap-2"):
                tag(ui.label(row.title), "trace-details-title").classes("font-semibold break-all")
                status_badge(row.status, test="trace-details-status")
            if row.subtitle:
                ui.label(row.subtitle).classes("text-sm text-slate-600")
            tag(ui.label(row_label(row)), "trace-details-summary").classes("text-sm")
            if row.kind == NODE:
                self._node_details(row)
            else:
                self._fields(row.details)

    def _node_details(self, row: TraceRow) -> None:
        details = row.details
        if details.get("reused_from"):
            rerun = f"/runs/{details['reused_from']}/trace"
            with ui.row().classes("gap-1 text-sm"):
                ui.label("Its output was reused from")
                ui.link("an earlier run", rerun)
        ui.label(f"Attempts: {details.get('attempts', 0)}").classes("text-sm")
        self._subflow_runs(row)
        if details.get("error"):
            tag(ui.label(str(details["error"])), "trace-details-error").classes(
                "w-full p-2 rounded bg-red-100 text-red-900 whitespace-pre-wrap text-sm"
            )
        for name, label in (("inputs", "Inputs"), ("output", "Output"), ("flags", "Flags")):
            if name == "flags" and not details.get(name):
                continue
            ui.label(label).classes("font-semibold text-sm")
            tag(json_block(details.get(name), label=label.lower()), f"trace-details-{name}").classes("w-full text-xs")

    def _subflow_runs(self, row: TraceRow) -> None:
        """The runs a subflow node started, each a link to its own trace."""
        runs = self.subflow_runs.get(row.node_id, ())
        if not runs:
            return
        ui.label("Subflow runs" if len(runs) > 1 else "Subflow run").classes("font-semibold text-sm")
        with tag(ui.column().classes("gap-1"), "trace-subflow-runs"):
            for number, child in enumerate(runs, start=1):
                text = f"{'Run' if len(runs) == 1 else f'Run {number}'}: {child.status}, at {when(child.started_at)}"
                tag(ui.link(text, f"/runs/{child.id}/trace"), f"trace-subflow-run-{number}").classes("text-sm")

    def _fields(self, details: dict[str, Any]) -> None:
        for name, label in _FIELDS.items():
            value = details.get(name)
            if value is None or value == "":
                continue
            ui.label(label).classes("font-semibold text-sm")
            text = value if isinstance(value, str) else pretty(value)
            box = "p-2 rounded bg-red-100 text-red-900" if name == "error" else ""
            tag(ui.label(text), f"trace-details-{name}").classes(
                f"w-full text-sm whitespace-pre-wrap break-words max-h-64 overflow-y-auto {box}"
            )
