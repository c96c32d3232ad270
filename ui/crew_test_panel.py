"""The crew editor's *Test* panel: run the saved crew once with inputs and watch it work, live.

A test run is the crew as a one-off document (`executor.chat.crew_document`: input -> crew
-> output `reply`), started like any run (`ExecutionService.start_document`, origin
`crew_test`), so it is stored and shows up among the runs. While it goes on, a task bound
to the page's client follows its events (`ExecutionService.follow`): streamed tokens are
appended to the reply area as they come, each task, agent step and tool call is listed,
and the final answer (or the error) is shown at the end. The task stops with the run, or
when the page's client is deleted (the tab closed and did not come back within NiceGUI's
reconnect timeout); the run itself goes on and stays stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from nicegui import background_tasks, ui

from core.context import Role, TenantContext
from core.crews import CrewView
from core.executions import EventRecord
from executor.chat import REPLY_OUTPUT, crew_document
from executor.errors import FlowInvalid
from executor.watching import is_final
from ui.records import tag
from ui.run_view import status_badge
from ui.tenant_page import PageView, notify_errors

ORIGIN = "crew_test"
#: Characters of streamed text the reply area keeps (the final answer arrives whole at the end).
MAX_REPLY_CHARS = 20_000
#: Characters of a step's text shown in the step list.
STEP_TEXT = 300
STEP_ICONS: dict[str, tuple[str, str]] = {
    "crew_task_started": ("play_arrow", "text-info"),
    "crew_task_completed": ("check_circle", "text-positive"),
    "crew_task_failed": ("error", "text-negative"),
    "agent_step": ("psychology", "text-primary"),
    "tool_started": ("build", "text-primary"),
    "tool_finished": ("build_circle", "text-positive"),
    "tool_failed": ("build_circle", "text-negative"),
    "node_failed": ("error", "text-negative"),
}
ENDINGS: dict[str, str] = {
    "execution_failed": "The run failed",
    "execution_cancelled": "The run was cancelled",
    "execution_interrupted": "The server stopped while the crew ran; run it again",
}


def _short(text: Any, limit: int = STEP_TEXT) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def step_text(event: EventRecord) -> str:
    """One line saying what a task, agent step or tool event was."""
    data = event.data
    task, agent = data.get("task") or "?", data.get("agent") or "an agent"
    kind = event.type
    if kind == "crew_task_started":
        return f"Task {task} started ({agent})"
    if kind == "crew_task_completed":
        return f"Task {task} done ({agent}): {_short(data.get('output'))}"
    if kind == "crew_task_failed":
        return f"Task {task} failed ({agent}): {_short(data.get('error'))}"
    if kind == "agent_step":
        if data.get("tool_calls"):
            called = ", ".join(str(call.get("tool")) for call in data["tool_calls"])
            return f"{agent} calls {called}"
        if data.get("final"):
            return f"{agent} answers: {_short(data.get('output'))}"
        thought = _short(data.get("thought"))
        return f"{agent} uses {data.get('tool')}" + (f": {thought}" if thought else "")
    if kind == "tool_started":
        return f"{agent} calls tool {data.get('tool')} with {_short(data.get('arguments'), 120)}"
    if kind == "tool_finished":
        return f"Tool {data.get('tool')} answered: {_short(data.get('output'))}"
    if kind == "tool_failed":
        return f"Tool {data.get('tool')} failed: {_short(data.get('error'))}"
    return f"The crew failed: {_short(data.get('error'))}"


def missing_values(crew: CrewView, given: Mapping[str, str]) -> list[str]:
    """The crew's placeholders that have neither a value here nor a default in the crew."""
    return [name for name in crew.placeholders if not given.get(name) and name not in crew.inputs]


class CrewTestPanel:
    """Inputs for the crew's placeholders, Run / Cancel, the steps, the streamed reply and the answer."""

    def __init__(self, page: PageView, crew: CrewView) -> None:
        self.page = page
        self.crew = crew
        self.fields: dict[str, ui.input] = {}
        self.execution_id: uuid.UUID | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._task: str | None = None
        ui.context.client.on_delete(self._stop_watching)
        with tag(ui.card().classes("w-full gap-3"), "crew-test") as self.root:
            ui.label("Test").classes("text-lg font-semibold").props("role=heading aria-level=2")
            ui.label(
                "Runs the saved crew once with these values and shows its work as it happens. "
                "Save your changes first: the test runs what is saved."
            ).classes("text-sm text-slate-600")
            self.inputs = ui.column().classes("w-full gap-2 p-0")
            with ui.row().classes("items-center gap-2"):
                if page.can_edit:
                    self.run_button = ui.button("Run", icon="play_arrow", on_click=page.action(self._run, Role.EDITOR))
                    tag(self.run_button, "crew-test-run")
                    self.cancel_button = ui.button(
                        "Cancel", icon="stop", color="negative", on_click=page.action(self._cancel, Role.EDITOR)
                    ).props("outline")
                    tag(self.cancel_button, "crew-test-cancel")
                    self.cancel_button.set_visibility(False)
                else:
                    ui.label("Running a crew needs the editor role; ask an owner or admin.").classes("text-slate-600")
                self.status = ui.row().classes("items-center gap-2 p-0")
                self.run_link = tag(ui.link("Open the run", "/runs"), "crew-test-run-link")
                self.run_link.set_visibility(False)
            self.error = ui.label().classes("whitespace-pre-line bg-negative text-white rounded-md px-3 py-2")
            tag(self.error, "crew-test-error").props("role=alert")
            self.error.set_visibility(False)
            with ui.column().classes("w-full gap-1 p-0") as self.output:
                ui.label("Steps").classes("font-medium")
                self.steps = tag(ui.column().classes("w-full gap-1 p-0 text-sm"), "crew-test-steps")
                ui.label("Reply, as it is written").classes("font-medium")
                self.reply = ui.label().classes("w-full whitespace-pre-wrap font-mono text-sm min-h-6")
                tag(self.reply, "crew-test-reply").props('aria-live="polite"')
                self.answer_box = ui.column().classes("w-full gap-1 p-0")
                with self.answer_box:
                    ui.label("Final answer").classes("font-medium")
                    self.answer = ui.label().classes("w-full whitespace-pre-wrap rounded-md border p-3")
                    tag(self.answer, "crew-test-answer")
                self.answer_box.set_visibility(False)
            self.output.set_visibility(False)
        self.show_inputs(crew)

    # -- inputs ---------------------------------------------------------------------------

    def show_inputs(self, crew: CrewView) -> None:
        """One input per placeholder of the saved crew, filled with the crew's default (after each save)."""
        self.crew = crew
        typed = {name: field.value for name, field in self.fields.items()}
        self.inputs.clear()
        self.fields = {}
        with self.inputs:
            if not crew.placeholders:
                ui.label("This crew has no {placeholders}: it runs as it is.").classes("text-sm text-slate-600")
            for name in crew.placeholders:
                default = crew.inputs.get(name, "")
                field = ui.input(name, value=typed.get(name) or default).classes("w-full")
                tag(field, f"crew-test-input-{name}")
                if default:
                    field.props["hint"] = f"Default: {_short(default, 80)}"
                if not self.page.can_edit:
                    field.props("readonly")
                self.fields[name] = field

    # -- running --------------------------------------------------------------------------

    async def _run(self, ctx: TenantContext) -> None:
        self._reset()
        self.run_button.disable()  # one run at a time, also while this one is being started
        try:
            await self._start(ctx)
        finally:
            self.run_button.enable()

    async def _start(self, ctx: TenantContext) -> None:
        crew = await self.page.services.crews.get_crew(ctx, self.crew.id)  # the saved crew, as it is now
        self.show_inputs(crew)
        given = {name: (field.value or "").strip() for name, field in self.fields.items()}
        missing = missing_values(crew, given)
        for name in missing:
            self.fields[name].error = f"give a value for {{{name}}}: the crew has no default for it"
        if missing:
            self._show_error("Give a value for " + ", ".join(missing) + ", or save a default in the crew's inputs.")
            return
        if crew.problems:
            listed = "\n".join(
                f"• {problem.kind} {problem.name}, {problem.field}: {problem.message}" for problem in crew.problems
            )
            self._show_error(f"The saved crew cannot run yet; fix these and save:\n{listed}")
            return
        values = {name: value for name, value in given.items() if value}
        document = crew_document(crew.id, None, values)
        try:
            record = await self.page.services.executions.start_document(
                ctx, document, {"messages": [], "message": "", "values": values}, origin=ORIGIN
            )
        except FlowInvalid as exc:  # the crew changed in a way its own checks do not cover
            self._show_error(str(exc))
            return
        self.execution_id = record.id
        self.run_link.props["href"] = f"/runs/{record.id}"  # every node's input and output, kept after the page
        self.run_link.set_visibility(True)
        self._running(True, "running")
        self._watcher = background_tasks.create(self._watch(ctx, record.id), name=f"crew test {record.id}")

    async def _cancel(self, ctx: TenantContext) -> None:
        if self.execution_id is not None:
            await self.page.services.executions.cancel(ctx, self.execution_id)

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch(self, ctx: TenantContext, execution_id: uuid.UUID) -> None:
        # Cancelled (the page's client is gone): nothing is left to draw on.
        with self.root:
            ended = await notify_errors(self._follow)(ctx, execution_id)
        if not ended and self.execution_id == execution_id:
            self._running(False, None)  # the stream broke off; the run itself may still be going

    async def _follow(self, ctx: TenantContext, execution_id: uuid.UUID) -> bool:
        async for item in self.page.services.executions.follow(ctx, execution_id):
            if isinstance(item, EventRecord):
                self.take(item)
                if is_final(item.type):
                    return True
        return False

    # -- events ---------------------------------------------------------------------------

    def take(self, event: EventRecord) -> None:
        """Show one event of the run."""
        kind, data = event.type, event.data
        if kind == "token":
            self._append(str(data.get("text") or ""), data.get("task"))
        elif kind in STEP_ICONS:
            self._step(event)
            if kind == "node_failed" and not data.get("cancelled"):
                self._show_error(f"The crew failed: {data.get('error')}")
        elif kind == "execution_completed":
            outputs = data.get("outputs") or {}
            answer = outputs.get(REPLY_OUTPUT, "") if isinstance(outputs, dict) else ""
            self.answer.set_text(str(answer) if answer else "(the crew answered with nothing)")
            self.answer_box.set_visibility(True)
            self._running(False, "completed")
        elif kind in ENDINGS:
            status = kind.removeprefix("execution_")
            detail = data.get("error")
            if kind != "execution_cancelled":
                self._show_error(f"{ENDINGS[kind]}: {detail}" if detail else ENDINGS[kind])
            self._running(False, status)

    def _append(self, text: str, task: Any) -> None:
        if not text:
            return
        current = self.reply.text
        if task and task != self._task:
            # Each task's text under its name, so a second task's reply does not run into the first's.
            self._task = str(task)
            current += ("\n\n" if current else "") + f"[{task}]\n"
        self.reply.set_text((current + text)[-MAX_REPLY_CHARS:])

    def _step(self, event: EventRecord) -> None:
        icon, color = STEP_ICONS[event.type]
        with self.steps, tag(ui.row().classes("items-start gap-2 no-wrap"), "crew-test-step") as row:
            row.props["data-kind"] = event.type
            ui.icon(icon).classes(color).props("aria-hidden=true")
            ui.label(step_text(event)).classes("break-words")
        if event.type == "crew_task_started" and event.data.get("task"):
            self._task = None  # the next token names the task again

    # -- state ----------------------------------------------------------------------------

    def _reset(self) -> None:
        for field in self.fields.values():
            field.error = None
        self.error.set_visibility(False)
        self.steps.clear()
        self.reply.set_text("")
        self.answer.set_text("")
        self.answer_box.set_visibility(False)
        self.run_link.set_visibility(False)
        self._task = None

    def _show_error(self, message: str) -> None:
        self.error.set_text(message)
        self.error.set_visibility(True)

    def _running(self, running: bool, status: str | None) -> None:
        if running:
            self.output.set_visibility(True)
        if self.page.can_edit:
            self.run_button.set_visibility(not running)
            self.cancel_button.set_visibility(running)
        self.status.clear()
        if status is not None:
            with self.status:
                status_badge(status, test="crew-test-status")
