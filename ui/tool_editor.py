"""The editor of one tool: a form of `ToolSpec` with code editors, limits in friendly units, and "Try it".

The form (`CheckedForm` of `ToolSpec`) renders the name, description and kind; the code and
the input schema are edited in CodeMirror and the limits in seconds, MiB and KiB, all
placed under the kind (the form's `after` hook) and carried into the model through hidden
fields when it validates. Every problem, whether the model's (a control character), the
page's (a name that is not snake_case, a schema that is not JSON, a limit above the
operator's maximum) or the service's, is shown under its field at once.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement

from core.context import Role, TenantContext
from core.errors import InvalidInput, Problem
from core.tool_schemas import check_input_schema
from core.tools import MAX_DESCRIPTION_CHARS, NAME_PATTERN, LimitPolicy, ToolSpec, ToolView, starter_spec
from ui.checked_form import CheckedForm, ControlSlot
from ui.code_editor import code_editor
from ui.dialogs import confirm
from ui.form_fields import ErrorText
from ui.forms import FieldOptions
from ui.records import save_record, tag
from ui.tenant_page import PageView
from ui.tool_run import TryPanel

Language = Literal["Python", "Shell"]  # CodeMirror's names for the two tool kinds
LANGUAGES: dict[str, Language] = {"python": "Python", "command": "Shell"}
KINDS: dict[str, str] = {"python": "Python function", "command": "Shell command"}
MiB = 1024 * 1024
KiB = 1024
# (limit name, label, unit size, unit name): the limits the editor shows, in friendly units.
LIMIT_FIELDS: list[tuple[str, str, int, str]] = [
    ("wall_seconds", "Wall time (s)", 1, "s"),
    ("cpu_seconds", "CPU time (s)", 1, "s"),
    ("memory_bytes", "Memory (MiB)", MiB, "MiB"),
    ("output_bytes", "Output (KiB)", KiB, "KiB"),
]
INTEGER_LIMITS = frozenset({"cpu_seconds", "memory_bytes", "output_bytes"})


def limit_problem(policy: LimitPolicy, name: str, amount: float, unit: int, unit_name: str) -> str | None:
    """Why `amount` (in the limit's own unit) cannot be asked for, in the editor's units."""
    ceiling = getattr(policy.maxima, name)
    if amount > ceiling:
        return f"at most {ceiling / unit:g} {unit_name} here (the operator's maximum)"
    for bound in type(policy.maxima).model_fields[name].metadata:
        low = getattr(bound, "ge", None)
        if low is not None and amount < low:
            return f"at least {low / unit:g} {unit_name}"
        above = getattr(bound, "gt", None)
        if above is not None and amount <= above:
            return f"more than {above / unit:g} {unit_name}"
    return None


class ToolEditor:
    """The form of one tool (new when `view` is None), Save and Delete, and the Try-it panel below."""

    def __init__(self, page: PageView, spec: ToolSpec, view: ToolView | None) -> None:
        self.page = page
        self.view = view
        self.spec = spec
        self.kind = spec.kind
        self.policy = page.services.tools.policy
        self.read_only = not page.can_edit
        self.limits = view.effective_limits if view else self.policy.effective(spec.limits).model_dump()
        self.limit_inputs: dict[str, ui.number] = {}
        with ui.card().classes("w-full gap-3"):
            self.form = CheckedForm(
                ToolSpec,
                value=spec,
                checks=self.checks,
                on_submit=self.save,
                submit_label="Create tool" if view is None else "Save",
                read_only=self.read_only,
                testid="tool",
                fields={
                    "name": FieldOptions(
                        help="snake_case (lowercase letters, digits and _), unique in the workspace; agents call "
                        "the tool by it.",
                        placeholder="fetch_weather",
                    ),
                    "description": FieldOptions(help="What the tool does, for people and for agents."),
                    "kind": FieldOptions(choices=KINDS, after=self.editors),
                    "input_schema": FieldOptions(hidden=True),
                    "code": FieldOptions(hidden=True),
                    "limits": FieldOptions(hidden=True),
                },
            )
            self.form.attach("code", self.code_errors)
            self.form.attach("input_schema", self.schema_errors)
            for name, control in self.limit_inputs.items():
                self.form.attach(f"limits.{name}", ControlSlot(control))
            self.form.on_change(self.changed)
            if self.read_only:
                note = f"Your role '{page.ctx.role}' can read tools; editors of the workspace change and try them."
                tag(ui.label(note).classes("text-slate-600"), "tool-read-only")
            elif view is not None:
                delete = ui.button(
                    "Delete", icon="delete", color="negative", on_click=page.action(self.delete, Role.EDITOR)
                )
                tag(delete, "delete-tool").props("outline")
        if not self.read_only:
            TryPanel(page, self.form.validate, page.services.tools.example_input(spec))

    def editors(self, _kind: ui.element) -> None:
        """The code, the input schema and the limits, right under the kind."""
        ui.label("Code *").classes("font-medium")
        self.code = code_editor(self.spec.code, language=LANGUAGES[self.spec.kind], label="Code")
        tag(self.code.classes("w-full h-72 border rounded"), "tool-code")
        self.code_errors = ErrorText("tool-code-error")
        ui.label("Input JSON schema").classes("font-medium")
        self.schema = code_editor(
            json.dumps(self.spec.input_schema, indent=2), language="JSON", label="Input JSON schema"
        )
        tag(self.schema.classes("w-full h-48 border rounded"), "tool-input_schema")
        self.schema_errors = ErrorText("tool-input_schema-error")
        with tag(ui.element("fieldset"), "tool-limits").classes("w-full border border-slate-300 rounded-md px-3 pb-3"):
            TextElement(tag="legend", text="Limits").classes("px-1 text-sm font-medium")
            ui.label("Empty: the default. The operator's maximum is in each label.").classes("cc-field-help text-sm")
            with ui.row().classes("gap-4"):
                for name, label, unit, _unit_name in LIMIT_FIELDS:
                    ceiling = getattr(self.policy.maxima, name) / unit
                    number = ui.number(f"{label}, max {ceiling:g}", value=self.limits[name] / unit, min=0)
                    self.limit_inputs[name] = tag(number.classes("w-44"), f"tool-limits.{name}")
        if self.read_only:
            self.code.disable()
            self.schema.disable()
            for number in self.limit_inputs.values():
                number.props("readonly")

    def changed(self, values: dict[str, Any]) -> None:
        kind = values.get("kind")
        if kind not in LANGUAGES or kind == self.kind:
            return
        self.kind = kind
        self.code.set_language(LANGUAGES[kind])
        untouched = {starter_spec("python").code, starter_spec("command").code, ""}
        if self.code.value in untouched:  # a template nobody edited: the new kind's template instead
            self.code.value = starter_spec(kind).code

    def checks(self, values: dict[str, Any]) -> list[Problem]:
        """Carry the code, schema and limits into the form, and find what the model cannot see."""
        problems: list[Problem] = []
        name = str(values.get("name") or "")
        if name and not NAME_PATTERN.match(name):
            problems.append(
                Problem(
                    "name", "use snake_case: a lowercase letter, then lowercase letters, digits or _ (fetch_weather)"
                )
            )
        description = str(values.get("description") or "").strip()
        if len(description) > MAX_DESCRIPTION_CHARS:
            problems.append(
                Problem("description", f"is {len(description)} characters; keep it under {MAX_DESCRIPTION_CHARS}")
            )
        code = self.code.value or ""
        if not code.strip():
            problems.append(Problem("code", "write a 'run' function (Python) or a script (shell command)"))
        schema = self.parsed_schema(problems)
        limits = self.requested_limits(problems)
        self.form.set_values({"code": code, "input_schema": schema, "limits": limits})
        return problems

    def parsed_schema(self, problems: list[Problem]) -> dict[str, Any] | None:
        text = self.schema.value or ""
        try:
            schema = json.loads(text) if text.strip() else {"type": "object", "properties": {}}
        except json.JSONDecodeError as exc:
            problems.append(
                Problem("input_schema", f"is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})")
            )
            return None
        try:
            return check_input_schema(schema)
        except InvalidInput as exc:  # said under the schema editor, with the rest, not on its own
            problems.append(Problem("input_schema", str(exc)))
            return None

    def requested_limits(self, problems: list[Problem]) -> dict[str, int | float]:
        limits: dict[str, int | float] = {}
        for name, _label, unit, unit_name in LIMIT_FIELDS:
            value = self.limit_inputs[name].value
            if value is None or value == "":
                continue
            amount = int(value * unit) if name in INTEGER_LIMITS else float(value * unit)
            problem = limit_problem(self.policy, name, amount, unit, unit_name)
            if problem is not None:
                problems.append(Problem(f"limits.{name}", problem))
            limits[name] = amount
        return limits

    async def save(self, spec: ToolSpec) -> None:
        tools = self.page.services.tools
        saved = await save_record(
            self.page,
            self.view,
            kind="tool",
            path="/tools",
            create=lambda ctx: tools.create(ctx, spec),
            update=lambda ctx, tool_id: tools.update(ctx, tool_id, spec),
            created="Saved",
        )
        if saved is None:
            return
        self.view = saved
        for name, _label, unit, _unit_name in LIMIT_FIELDS:  # what the operator's maxima left of the request
            self.limit_inputs[name].value = self.view.effective_limits[name] / unit

    async def delete(self, ctx: TenantContext) -> None:
        if self.view is None:
            return
        name = self.view.name
        if not await confirm(
            f"Delete the tool '{name}'?", detail="Agents and flows that use it will no longer find it."
        ):
            return
        await self.page.services.tools.delete(ctx, self.view.id)
        ui.notify(f"Deleted tool '{name}'")
        ui.navigate.to("/tools")
