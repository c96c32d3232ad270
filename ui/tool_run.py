"""Running tools from the tools page: the sandbox banners and the "Try it" panel with its run report.

"Run" tries what the editor holds now (saved or not) once in the sandbox and shows how the
run ended (a badge and a sentence per exit reason), the output, the error with its
traceback, the stderr tail and the timings. Tool output is always shown as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from core.context import Role, TenantContext
from core.errors import CoreError
from core.tools import SandboxStatus, ToolRunReport, ToolSpec
from ui.code_editor import code_editor
from ui.records import tag
from ui.tenant_page import PageView

REASON_COLORS: dict[str, str] = {
    "ok": "positive",
    "timeout": "deep-orange-10",
    "memory": "purple-8",
    "output_limit": "brown-7",
    "crashed": "negative",
    "refused": "blue-grey-8",
}
REASON_TEXT: dict[str, str] = {
    "ok": "The tool finished and returned a result.",
    "timeout": "The tool ran out of time (wall clock or CPU) and was stopped.",
    "memory": "The tool used more memory than its limit and was stopped.",
    "output_limit": "The tool printed or returned more than its output limit and was stopped.",
    "crashed": "The tool raised an exception or exited without a result.",
    "refused": "The tool could not be called with this input (no 'run' function, or wrong arguments).",
}


def sandbox_banner(status: SandboxStatus) -> None:
    """Warn when tools run without isolation, or cannot run at all."""
    if status.unsafe:
        with tag(
            ui.row().classes("w-full items-center gap-2 p-3 rounded bg-orange-100 text-orange-900"), "unsafe-banner"
        ):
            ui.icon("warning", color="orange-9")
            ui.label(
                "Unsafe sandbox: SANDBOX_BACKEND=unsafe-subprocess runs tool code WITHOUT isolation, as the "
                "server's own user. Use it only on a development machine, with tools you trust."
            )
    if not status.available:
        with tag(
            ui.row().classes("w-full items-center gap-2 p-3 rounded bg-red-100 text-red-900"), "sandbox-unavailable"
        ):
            ui.icon("block", color="negative")
            ui.label(f"Tool runs are refused: the {status.backend} sandbox is unavailable. {status.reason}")


def preformatted(text: str, testid: str) -> None:
    # A label, not markdown or HTML: tool output is shown as text, whatever it contains.
    label = ui.label(text).classes(
        "w-full font-mono text-sm whitespace-pre-wrap break-all bg-slate-100 text-slate-900 rounded p-2 max-h-72 "
        "overflow-auto"
    )
    tag(label, testid)


def show_report(report: ToolRunReport) -> None:
    """The result of one run: exit reason badge, output, error, stderr tail, timings."""
    with ui.row().classes("items-center gap-3"):
        badge = ui.badge(report.reason, color=REASON_COLORS.get(report.reason, "grey-8")).classes("text-sm px-2 py-1")
        tag(badge, "result-reason")
        ui.label(REASON_TEXT.get(report.reason, "")).classes("text-slate-600")
    timings = [f"wall {report.wall_seconds:.3f} s"]
    if report.tool_seconds is not None:
        timings.append(f"in tool {report.tool_seconds:.3f} s")
    if report.cpu_seconds is not None:
        timings.append(f"CPU {report.cpu_seconds:.3f} s")
    tag(
        ui.label(" · ".join(timings) + f" · backend {report.backend}").classes("text-xs text-slate-600"),
        "result-timings",
    )
    if report.ok:
        ui.label("Output").classes("font-medium")
        preformatted(json.dumps(report.output, indent=2, ensure_ascii=False), "result-output")
    if report.error:
        ui.label("Error" + (f" ({report.error_type})" if report.error_type else "")).classes("font-medium")
        preformatted(report.error, "result-error")
    if report.stderr_tail.strip():
        ui.label("stderr (tail)").classes("font-medium")
        preformatted(report.stderr_tail, "result-stderr")
    for note in report.notes:
        ui.label(note).classes("text-xs text-slate-600")


class TryPanel:
    """The "Try it" card: an input (JSON), Run, and the report of the last run."""

    def __init__(self, page: PageView, draft: Callable[[], ToolSpec | None], example: dict[str, Any]) -> None:
        self.page = page
        self.draft = draft
        with tag(ui.card().classes("w-full gap-3"), "try-panel"):
            ui.label("Try it").classes("text-lg font-medium").props("role=heading aria-level=2")
            ui.label("Runs what the editor holds now, saved or not, once in the sandbox.").classes("text-slate-600")
            ui.label("Input (a JSON object of arguments)").classes("font-medium")
            self.tool_input = code_editor(json.dumps(example, indent=2), language="JSON", label="Input")
            tag(self.tool_input.classes("w-full h-32 border rounded"), "try-input")
            with ui.row().classes("items-center gap-3"):
                self.run_button = ui.button("Run", icon="play_arrow", on_click=page.action(self.run, Role.EDITOR))
                tag(self.run_button, "run-tool")
                self.spinner = tag(ui.spinner(size="md"), "run-spinner")
                self.spinner.set_visibility(False)
            self.result = tag(ui.column().classes("w-full gap-2").props('aria-live="polite"'), "run-result")

    async def run(self, ctx: TenantContext) -> None:
        self.result.clear()
        spec = self.draft()  # the editor's problems show under its fields
        if spec is None:
            with self.result:
                tag(ui.label("Fix the problems marked in the editor above, then run again."), "run-error").classes(
                    "text-negative"
                )
            return
        self.run_button.disable()
        self.spinner.set_visibility(True)
        try:
            report = await self.page.services.tools.try_draft(ctx, spec, self.tool_input.value or "{}")
        except CoreError as exc:  # why nothing ran belongs in the result, where the report would be
            with self.result:
                tag(ui.label(str(exc)).classes("text-negative whitespace-pre-wrap"), "run-error")
            return
        finally:
            self.spinner.set_visibility(False)
            self.run_button.enable()
        with self.result:
            show_report(report)
