"""The selected node's part of the run on the canvas: what went in and came out, and what to do next.

Shown above the node's form: its status in the run, the inputs it was given (templates
resolved), its output or error, the text it streamed; *Run from here* (this node and what
follows, reusing the run's earlier outputs), *Pin this output* (later runs use it instead of
running the node, until unpinned; a pin is a change of the draft, so it is undoable) and,
for a node waiting for a person, the question with its answers (also in the run pane).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from core.context import Role
from core.executions import NodeRunRecord
from ui.code_blocks import json_block
from ui.editor_run import CanvasRun
from ui.editor_session import EditorSession
from ui.human_answer import HumanAnswer, question_of
from ui.records import tag
from ui.run_view import duration, status_badge
from ui.tenant_page import PageView

Pin = Callable[[str, Any], Awaitable[None]]


def draw_node_run(page: PageView, session: EditorSession, run: CanvasRun, node_id: str, *, pin: Pin) -> None:
    """The section for `node_id` (nothing for a node the shown run did not reach and that holds no pin)."""
    record: NodeRunRecord | None = run.node_run(node_id)
    node = session.node(node_id)
    pinned = node.get("pinned_output") if node is not None else None
    if record is None and pinned is None:
        if run.record is not None:
            ui.label("This node has not run in the run shown.").classes("text-sm text-slate-600")
        return
    with tag(ui.column().classes("w-full gap-2 p-2 rounded-md border"), "node-run"):
        if record is not None:
            _record(page, run, record, node_id, pin)
        if pinned is not None:
            ui.label("Pinned output (used instead of running this node)").classes("font-semibold text-sm")
            tag(json_block(pinned, label="pinned output").classes("w-full text-xs"), "node-run-pinned")
            if page.can_edit:
                tag(
                    ui.button("Unpin", icon="push_pin", on_click=lambda: pin(node_id, None)).props(
                        "flat dense no-caps"
                    ),
                    "node-run-unpin",
                )


def _record(page: PageView, run: CanvasRun, record: NodeRunRecord, node_id: str, pin: Pin) -> None:
    with ui.row().classes("w-full items-center gap-2"):
        ui.label("Last run").classes("font-semibold")
        status_badge(record.status, test="node-run-status")
        took = duration(record.started_at, record.finished_at)
        ui.label(f"{took} · attempts {record.attempts}").classes("text-xs text-slate-600")
        tokens = record.prompt_tokens + record.completion_tokens
        if tokens:
            ui.label(f"{tokens} tokens").classes("text-xs text-slate-600")
    if run.record is not None and question_of(record) is not None:
        HumanAnswer(page, run.record.id, record, on_answered=run.answered)
    if record.error:
        tag(ui.label(record.error).props("role=alert"), "node-run-error").classes(
            "w-full p-2 rounded bg-red-100 text-red-900 text-sm whitespace-pre-wrap"
        )
    streamed = run.tokens(node_id)
    if streamed and record.status in {"running", "retrying"}:
        tag(ui.label(streamed[-1500:]).classes("w-full text-sm whitespace-pre-wrap"), "node-run-stream")
    with ui.expansion("Inputs", icon="input").classes("w-full").props("dense"):
        tag(json_block(record.inputs, label="inputs").classes("w-full text-xs"), "node-run-inputs")
    if record.status == "completed":
        ui.label("Output").classes("text-sm font-medium")
        tag(json_block(record.output, label="output").classes("w-full text-xs"), "node-run-output")
    if not page.can_edit:
        return
    with ui.row().classes("gap-1"):
        tag(
            ui.button(
                "Run from here", icon="play_arrow", on_click=page.action(lambda _: run.run_from(node_id), Role.EDITOR)
            ).props("flat dense no-caps"),
            "node-run-from",
        )
        if record.status == "completed":
            tag(
                ui.button("Pin this output", icon="push_pin", on_click=lambda: pin(node_id, record.output)).props(
                    "flat dense no-caps"
                ),
                "node-run-pin",
            )
