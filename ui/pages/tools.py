"""Tools page: a tenant's tools, an editor with a code editor, and a "Try it" panel.

`/tools` lists the tools; `/tools/new?kind=python|command` starts from a template that
runs as it is; `/tools/<id>` edits one. "Run" tries what the editor holds now (saved or
not) in the sandbox and shows the exit reason, the output, the stderr tail and timings.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from nicegui import ui
from pydantic import ValidationError
from starlette.responses import Response

from core.context import Role, TenantContext
from core.errors import CoreError, InvalidInput, NotFound
from core.tools import SandboxStatus, ToolKind, ToolRunReport, ToolSpec, ToolView, starter_spec
from ui.dialogs import confirm
from ui.layout import frame
from ui.session import current_context, page_context
from wiring.services import Services

Language = Literal["Python", "Shell"]  # CodeMirror's names for the two tool kinds
LANGUAGES: dict[str, Language] = {"python": "Python", "command": "Shell"}
KINDS: dict[str, str] = {"python": "Python function", "command": "Shell command"}
REASON_COLORS: dict[str, str] = {
    "ok": "positive",
    "timeout": "orange-8",
    "memory": "purple-7",
    "output_limit": "amber-9",
    "crashed": "negative",
    "refused": "blue-grey-7",
}
REASON_TEXT: dict[str, str] = {
    "ok": "The tool finished and returned a result.",
    "timeout": "The tool ran out of time (wall clock or CPU) and was stopped.",
    "memory": "The tool used more memory than its limit and was stopped.",
    "output_limit": "The tool printed or returned more than its output limit and was stopped.",
    "crashed": "The tool raised an exception or exited without a result.",
    "refused": "The tool could not be called with this input (no 'run' function, or wrong arguments).",
}
MiB = 1024 * 1024
KiB = 1024
# (limit name, label, unit size): the limits the editor shows, in friendly units.
LIMIT_FIELDS: list[tuple[str, str, int]] = [
    ("wall_seconds", "Wall time (s)", 1),
    ("cpu_seconds", "CPU time (s)", 1),
    ("memory_bytes", "Memory (MiB)", MiB),
    ("output_bytes", "Output (KiB)", KiB),
]


def testid(name: str) -> str:
    return f'data-testid="{name}"'


def sandbox_banner(status: SandboxStatus) -> None:
    """Warn when tools run without isolation, or cannot run at all."""
    if status.unsafe:
        with (
            ui.row()
            .classes("w-full items-center gap-2 p-3 rounded bg-orange-100 text-orange-900")
            .props(testid("unsafe-banner"))
        ):
            ui.icon("warning", color="orange-9")
            ui.label(
                "Unsafe sandbox: SANDBOX_BACKEND=unsafe-subprocess runs tool code WITHOUT isolation, as the "
                "server's own user. Use it only on a development machine, with tools you trust."
            )
    if not status.available:
        with (
            ui.row()
            .classes("w-full items-center gap-2 p-3 rounded bg-red-100 text-red-900")
            .props(testid("sandbox-unavailable"))
        ):
            ui.icon("block", color="negative")
            ui.label(f"Tool runs are refused: the {status.backend} sandbox is unavailable. {status.reason}")


def show_report(report: ToolRunReport) -> None:
    """The result card of one run: exit reason badge, output, error, stderr tail, timings."""
    with ui.row().classes("items-center gap-3"):
        ui.badge(report.reason, color=REASON_COLORS.get(report.reason, "grey")).classes("text-sm px-2 py-1").props(
            testid("result-reason")
        )
        ui.label(REASON_TEXT.get(report.reason, "")).classes("text-slate-600")
    timings = [f"wall {report.wall_seconds:.3f} s"]
    if report.tool_seconds is not None:
        timings.append(f"in tool {report.tool_seconds:.3f} s")
    if report.cpu_seconds is not None:
        timings.append(f"CPU {report.cpu_seconds:.3f} s")
    ui.label(" · ".join(timings) + f" · backend {report.backend}").classes("text-xs text-slate-500").props(
        testid("result-timings")
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
        ui.label(note).classes("text-xs text-slate-500")


def preformatted(text: str, name: str) -> None:
    # A label, not markdown or HTML: tool output is shown as text, whatever it contains.
    ui.label(text).classes(
        "w-full font-mono text-sm whitespace-pre-wrap break-all bg-slate-100 rounded p-2 max-h-72 overflow-auto"
    ).props(testid(name))


class ToolEditor:
    """The editor of one tool (new or saved) with its Try-it panel."""

    def __init__(self, services: Services, ctx: TenantContext, spec: ToolSpec, view: ToolView | None) -> None:
        self.services = services
        self.ctx = ctx
        self.view = view
        self.can_edit = ctx.role.rank >= Role.EDITOR.rank
        self.limits = view.effective_limits if view else services.tools.policy.effective(spec.limits).model_dump()
        self.build(spec)

    def build(self, spec: ToolSpec) -> None:
        maxima = self.services.tools.policy.maxima
        with ui.card().classes("w-full gap-3"):
            with ui.row().classes("w-full items-start gap-4"):
                self.name = ui.input("Name", value=spec.name).classes("w-64").props(testid("tool-name"))
                self.kind = ui.select(KINDS, value=spec.kind, label="Kind", on_change=self.kind_changed).classes("w-48")
                self.kind.props(testid("tool-kind"))
            self.description = (
                ui.textarea("Description (what the tool does, for people and agents)", value=spec.description)
                .classes("w-full")
                .props("autogrow " + testid("tool-description"))
            )
            ui.label("Code").classes("font-medium")
            self.code = (
                ui.codemirror(spec.code, language=LANGUAGES[spec.kind])
                .classes("w-full h-72 border rounded")
                .props(testid("tool-code"))
            )
            ui.label("Input JSON schema").classes("font-medium")
            self.schema = (
                ui.codemirror(json.dumps(spec.input_schema, indent=2), language="JSON")
                .classes("w-full h-48 border rounded")
                .props(testid("tool-schema"))
            )
            ui.label("Limits").classes("font-medium")
            self.limit_inputs: dict[str, ui.number] = {}
            with ui.row().classes("gap-4"):
                for name, label, unit in LIMIT_FIELDS:
                    ceiling = getattr(maxima, name) / unit
                    self.limit_inputs[name] = (
                        ui.number(f"{label}, max {ceiling:g}", value=self.limits[name] / unit, min=0)
                        .classes("w-44")
                        .props(testid(f"limit-{name}"))
                    )
            with ui.row().classes("gap-2"):
                save = ui.button("Save", icon="save", on_click=self.save).props(testid("save-tool"))
                delete = ui.button("Delete", icon="delete", color="negative", on_click=self.confirm_delete)
                delete.props("outline " + testid("delete-tool"))
                delete.set_visibility(self.view is not None)
                if not self.can_edit:
                    save.disable()
                    delete.disable()
            if not self.can_edit:
                ui.label(f"Your role '{self.ctx.role}' can read tools; editors change and try them.").classes(
                    "text-slate-500"
                )
        with ui.card().classes("w-full gap-3"):
            ui.label("Try it").classes("text-lg font-medium")
            ui.label("Runs what the editor holds now, saved or not, once in the sandbox.").classes("text-slate-600")
            example = self.services.tools.example_input(spec)
            self.tool_input = (
                ui.codemirror(json.dumps(example, indent=2), language="JSON")
                .classes("w-full h-32 border rounded")
                .props(testid("try-input"))
            )
            with ui.row().classes("items-center gap-3"):
                self.run_button = ui.button("Run", icon="play_arrow", on_click=self.run).props(testid("run-tool"))
                self.spinner = ui.spinner(size="md").props(testid("run-spinner"))
                self.spinner.set_visibility(False)
                if not self.can_edit:
                    self.run_button.disable()
            self.result = ui.column().classes("w-full gap-2").props(testid("run-result"))

    def kind_changed(self) -> None:
        kind: ToolKind = self.kind.value
        self.code.set_language(LANGUAGES[kind])
        untouched = {starter_spec("python").code, starter_spec("command").code, ""}
        if self.code.value in untouched:
            self.code.value = starter_spec(kind).code

    def spec(self) -> ToolSpec | None:
        """What the editor holds, or None (after telling the user) if the schema is not JSON."""
        try:
            schema: Any = json.loads(self.schema.value or "{}")
        except ValueError as exc:
            ui.notify(f"The input schema is not valid JSON: {exc}", type="negative", multi_line=True)
            return None
        limits: dict[str, int | float] = {}
        for name, _label, unit in LIMIT_FIELDS:
            value = self.limit_inputs[name].value
            if value is not None:
                scaled = value * unit
                limits[name] = int(scaled) if unit > 1 or name == "cpu_seconds" else scaled
        try:
            return ToolSpec(
                name=(self.name.value or "").strip(),
                description=self.description.value or "",
                kind=self.kind.value,
                input_schema=schema if isinstance(schema, dict) else {"type": schema},
                code=self.code.value or "",
                limits=limits,
            )
        except ValidationError as exc:  # e.g. a control character pasted into the code
            ui.notify(str(InvalidInput.from_validation(exc, "tool")), type="negative", multi_line=True)
            return None

    async def fresh_context(self) -> TenantContext | None:
        """The session as of this click (a logout or a role change applies at once)."""
        ctx = await current_context(self.services, Role.EDITOR)
        if ctx is not None:
            self.ctx = ctx
        return ctx

    async def save(self) -> None:
        spec = self.spec()
        if spec is None:
            return
        ctx = await self.fresh_context()
        if ctx is None:
            return
        try:
            if self.view is None:
                view = await self.services.tools.create(ctx, spec)
            else:
                view = await self.services.tools.update(ctx, self.view.id, spec)
        except CoreError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        ui.notify(f"Saved tool '{view.name}'", type="positive")
        if self.view is None:
            ui.navigate.to(f"/tools/{view.id}")
            return
        self.view = view
        for name, _label, unit in LIMIT_FIELDS:  # show what the operator's maxima left of the request
            self.limit_inputs[name].value = view.effective_limits[name] / unit

    async def confirm_delete(self) -> None:
        if self.view is None:
            return
        confirmed = await confirm(
            f"Delete the tool '{self.view.name}'?", detail="Agents and flows that use it will no longer find it."
        )
        ctx = await self.fresh_context() if confirmed else None
        if ctx is None:
            return
        try:
            await self.services.tools.delete(ctx, self.view.id)
        except CoreError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        ui.notify(f"Deleted tool '{self.view.name}'")
        ui.navigate.to("/tools")

    async def run(self) -> None:
        spec = self.spec()
        if spec is None:
            return
        ctx = await self.fresh_context()
        if ctx is None:
            return
        self.run_button.disable()
        self.spinner.set_visibility(True)
        self.result.clear()
        try:
            report = await self.services.tools.try_draft(ctx, spec, self.tool_input.value or "{}")
        except CoreError as exc:
            with self.result:
                ui.label(str(exc)).classes("text-negative whitespace-pre-wrap").props(testid("run-error"))
            return
        finally:
            self.spinner.set_visibility(False)
            self.run_button.enable()
        with self.result:
            show_report(report)


def tool_list(views: list[ToolView]) -> None:
    if not views:
        ui.label("No tools yet. Start from a template: it runs as it is.").classes("text-slate-600")
        return
    with ui.column().classes("w-full gap-1").props(testid("tool-list")):
        for view in views:
            with ui.row().classes("w-full items-baseline gap-3"):
                ui.link(view.name, f"/tools/{view.id}").classes("font-mono text-base")
                ui.badge(view.kind, color="slate-500")
                ui.label(view.description).classes("text-slate-600 truncate")


def register(services: Services) -> None:
    @ui.page("/tools")
    async def tools_page() -> Response | None:
        ctx = await page_context(services, Role.VIEWER)
        if not isinstance(ctx, TenantContext):
            return ctx
        with frame("Tools"):
            sandbox_banner(await services.tools.sandbox_status())
            if ctx.role.rank >= Role.EDITOR.rank:
                with ui.row().classes("gap-2"):
                    ui.button("New Python tool", icon="add", on_click=lambda: ui.navigate.to("/tools/new")).props(
                        testid("new-python-tool")
                    )
                    ui.button(
                        "New command tool", icon="terminal", on_click=lambda: ui.navigate.to("/tools/new?kind=command")
                    ).props("outline " + testid("new-command-tool"))
            tool_list(await services.tools.list(ctx))
        return None

    @ui.page("/tools/{tool_id}")
    async def tool_page(tool_id: str, kind: str = "python") -> Response | None:
        ctx = await page_context(services, Role.VIEWER)
        if not isinstance(ctx, TenantContext):
            return ctx
        view: ToolView | None = None
        with frame("New tool" if tool_id == "new" else "Tool"):
            sandbox_banner(await services.tools.sandbox_status())
            ui.link("← all tools", "/tools").classes("text-sm")
            if tool_id == "new":
                spec = starter_spec("command" if kind == "command" else "python")
            else:
                try:
                    view = await services.tools.get(ctx, uuid.UUID(tool_id))
                except (ValueError, NotFound):
                    ui.label("No such tool in this workspace; it may have been deleted.").props(testid("no-tool"))
                    return None
                # As stored: a tool saved before today's text rules still opens, and saving it tells what to fix.
                spec = ToolSpec.model_construct(
                    name=view.name,
                    description=view.description,
                    kind=view.kind,
                    input_schema=view.input_schema,
                    code=view.code,
                    limits=view.limits,
                )
            ToolEditor(services, ctx, spec, view)
        return None
