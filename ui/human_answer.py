"""A waiting human node's question and its answers: one widget for the run page, the inbox and the editor.

    HumanAnswer(page, execution_id, node_run, on_answered=redraw)

It shows what the node asks (its prompt), the value under review and, to editors, the
answers the node takes (`waiting["actions"]`): Approve; Edit, which opens the value in a
text box and approves with what the box then holds; Reject, with an optional reason.
Viewers see the question and a line saying that an editor answers it.

Each answer resolves the session again (`PageView.action`), so a sign-out or a lowered role
stops it. When someone answered first (a `Conflict`), that is one notification and the
owner still gets `on_answered` with the run as it is now, so a stale question goes away.
The widget is one column with no width of its own: it fits a narrow side panel (`w-96`).

Test ids, with `<a>` = `answer-<node_id>`: `<a>` on the widget, `<a>-value`, `<a>-viewer`, `<a>-approve`,
`<a>-edit`, `<a>-edit-value`, `<a>-edit-error`, `<a>-edit-confirm`, `<a>-reject`,
`<a>-reject-reason`, `<a>-reject-confirm`. Node ids repeat across runs: where several runs
are shown, scope lookups to an element around each.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from core.context import Role, TenantContext
from core.errors import Conflict
from core.executions import ExecutionRecord, NodeRunRecord
from ui.code_blocks import code_block
from ui.records import tag
from ui.tenant_page import PageView

#: Called with the run as it stands after an answer (or after finding it answered by someone else).
Answered = Callable[[ExecutionRecord], Awaitable[None] | None]

VALUE_BOX = "w-full max-h-64 overflow-auto whitespace-pre-wrap break-words font-mono text-sm border rounded p-2"


def question_of(run: NodeRunRecord) -> dict[str, Any] | None:
    """What a node run asks a person (its `flags["waiting"]`), or None when it waits for no person."""
    if run.status != "waiting":
        return None
    waiting = run.flags.get("waiting")
    if isinstance(waiting, dict) and waiting.get("reason") == "human":
        return waiting
    return None


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def editable_text(proposal: Any) -> str:
    """The value under review as the edit box starts with it: text as it is, anything else as JSON."""
    return proposal if isinstance(proposal, str) else as_json(proposal)


def replacement(proposal: Any, text: str) -> Any:
    """What the edit box holds as the node's new output: text for a text value, else parsed JSON
    (a ValueError saying what is wrong when it does not parse)."""
    if isinstance(proposal, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"The value is JSON, so its replacement must be too: {exc.msg} at line {exc.lineno}, "
            f'column {exc.colno}. Put text in double quotes ("like this").'
        ) from None


def deadline_text(waiting: Mapping[str, Any]) -> str | None:
    """'Without an answer by …, it will reject.' for a node with a deadline."""
    due = waiting.get("due_at")
    if not due:
        return None
    try:
        moment = datetime.fromisoformat(str(due)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        moment = str(due)
    return f"Without an answer by {moment}, it will {waiting.get('on_timeout') or 'reject'}."


class HumanAnswer:
    """A human node's question; to editors, with the buttons that answer it."""

    def __init__(self, page: PageView, execution_id: uuid.UUID, run: NodeRunRecord, *, on_answered: Answered) -> None:
        self.page = page
        self.execution_id = execution_id
        self.node_id = run.node_id
        self.question = question_of(run)
        self.testid = f"answer-{run.node_id}"
        self._on_answered = on_answered
        self._sending = False
        self._buttons: list[ui.button] = []
        self._toggles: dict[str, ui.button] = {}
        self._panels: dict[str, ui.column] = {}
        with tag(ui.column().classes("w-full min-w-0 gap-2"), self.testid) as self.root:
            if self.question is None:
                ui.label(f"Node {run.node_id} is not waiting for an answer (it is {run.status}).").classes(
                    "text-slate-600"
                )
                return
            self._ask(self.question)
            if page.can_edit:
                self._answers(self.question)
            else:
                viewer = ui.label("An editor of this workspace can approve or reject it.")
                tag(viewer.classes("text-sm text-slate-600"), f"{self.testid}-viewer")

    # -- drawing ----------------------------------------------------------------------------

    def _ask(self, question: Mapping[str, Any]) -> None:
        ui.label(f"Node {self.node_id} asks: {question.get('prompt', '')}").classes("font-semibold break-words")
        ui.label("Value under review").classes("text-sm text-slate-600")
        proposal = question.get("proposal")
        if isinstance(proposal, str):
            tag(ui.label(proposal or "(empty text)"), f"{self.testid}-value").classes(VALUE_BOX)
        else:
            code = code_block(as_json(proposal), label="value").classes("w-full max-h-64 overflow-auto")
            tag(code, f"{self.testid}-value")
        if (deadline := deadline_text(question)) is not None:
            ui.label(deadline).classes("text-sm text-slate-600")

    def _answers(self, question: Mapping[str, Any]) -> None:
        actions = [str(action) for action in question.get("actions") or ()]
        proposal = question.get("proposal")
        with ui.row().classes("w-full gap-2"):
            if "approve" in actions:
                approve = ui.button("Approve", color="positive", on_click=self._act(self._approve))
                self._buttons.append(tag(approve, f"{self.testid}-approve"))
            if "edit" in actions:
                self._toggle_button("edit", "Edit", "primary")
            if "reject" in actions:
                self._toggle_button("reject", "Reject", "negative")
        if "edit" in actions:
            with self._panel("edit"):
                self.edit_value = ui.textarea("Replacement value", value=editable_text(proposal))
                tag(self.edit_value.props("outlined autogrow").classes("w-full font-mono"), f"{self.testid}-edit-value")
                self.edit_error = tag(ui.label("").props("role=alert"), f"{self.testid}-edit-error")
                self.edit_error.classes("text-sm text-negative break-words")
                self.edit_error.set_visibility(False)
                confirm = ui.button("Approve with this value", color="positive", on_click=self._act(self._edit))
                self._buttons.append(tag(confirm, f"{self.testid}-edit-confirm"))
        if "reject" in actions:
            with self._panel("reject"):
                self.reject_reason = ui.input("Reason (optional)").classes("w-full")
                tag(self.reject_reason, f"{self.testid}-reject-reason")
                confirm = ui.button("Confirm rejection", color="negative", on_click=self._act(self._reject))
                self._buttons.append(tag(confirm, f"{self.testid}-reject-confirm"))

    def _toggle_button(self, name: str, label: str, color: str) -> None:
        button = ui.button(label, color=color, on_click=lambda: self._show(name)).props('outline aria-expanded="false"')
        self._buttons.append(tag(button, f"{self.testid}-{name}"))
        self._toggles[name] = button

    def _panel(self, name: str) -> ui.column:
        """The hidden part its toggle button opens (the edit box, the reason)."""
        panel = self._panels[name] = ui.column().classes("w-full gap-2")
        panel.set_visibility(False)
        return panel

    def _show(self, name: str) -> None:
        """Open one answer's panel (closing the other), or close it when it is open."""
        for other, panel in self._panels.items():
            opened = other == name and not panel.visible
            panel.set_visibility(opened)
            self._toggles[other].props(f'aria-expanded="{str(opened).lower()}"')

    # -- answering --------------------------------------------------------------------------

    def _act(self, send: Callable[[TenantContext], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        return self.page.action(send, Role.EDITOR)

    async def _approve(self, ctx: TenantContext) -> None:
        await self._respond(ctx, "approve")

    async def _edit(self, ctx: TenantContext) -> None:
        assert self.question is not None  # the buttons exist only for a question
        try:
            output = replacement(self.question.get("proposal"), str(self.edit_value.value or ""))
        except ValueError as exc:
            self.edit_error.set_text(str(exc))
            self.edit_error.set_visibility(True)
            return
        self.edit_error.set_visibility(False)
        await self._respond(ctx, "edit", output=output)

    async def _reject(self, ctx: TenantContext) -> None:
        await self._respond(ctx, "reject", reason=str(self.reject_reason.value or "").strip())

    async def _respond(self, ctx: TenantContext, action: str, *, reason: str = "", output: Any = None) -> None:
        if self._sending:  # a second click while the first answer is on its way
            return
        self._sending = True
        self._enable(False)
        services = self.page.services
        try:
            try:
                if action == "edit":
                    record = await services.executions.pauses.respond(
                        ctx, self.execution_id, self.node_id, action, output=output
                    )
                else:
                    record = await services.executions.pauses.respond(
                        ctx, self.execution_id, self.node_id, action, reason=reason
                    )
            except Conflict as exc:  # answered by someone else, or the run ended meanwhile
                ui.notify(str(exc), type="negative", multi_line=True, close_button=True)
                record = await services.executions.get(ctx, self.execution_id)
        finally:
            self._sending = False
            self._enable(True)
        done = self._on_answered(record)
        if inspect.isawaitable(done):
            await done

    def _enable(self, enabled: bool) -> None:
        for button in self._buttons:
            if not button.is_deleted:
                button.set_enabled(enabled)
