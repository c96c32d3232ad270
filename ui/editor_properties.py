"""The flow editor's right-hand panel: the selected node's properties, or the flow's inputs.

A node's form comes from its type's data model through `ui.forms.ModelForm`, with pickers
for the saved things it refers to (providers, tools, agents, crews, flows) and, under
template and CEL fields, completion of references to upstream nodes and flow inputs as they
are typed (`ui.reference_completion`) and buttons that insert them. What is typed is stored
in the draft half a second after the last key (valid or not: a half-filled node is kept),
and the draft's validation shows its problems under the fields and on the node, without
taking the focus from where one types.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nicegui import background_tasks, ui
from nicegui.elements.mixins.value_element import ValueElement
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from core.context import Role, TenantContext
from core.errors import Problem
from executor.document import MAX_INPUTS, FlowInputSpec
from executor.errors import FlowProblem, UnknownNodeType
from ui.editor_session import EditorSession
from ui.forms import FieldOptions, ModelForm
from ui.records import agent_choices, model_choices, provider_choices, provider_models, tag, tool_choices
from ui.reference_completion import ReferenceCompletion
from ui.tenant_page import REPORTED, PageView

#: Seconds after the last change before a form's values are stored.
SETTLE_S = 0.5
#: Fields holding Jinja templates (`{{ nodes.x.output }}`) and CEL expressions (`nodes.x.output`).
TEMPLATE_FIELDS = frozenset({"prompt", "system", "value", "task", "expected_output", "conversation", "for_each"})
CEL_FIELDS = frozenset({"expression"})


class FlowInputs(BaseModel):
    """The inputs a run of the flow takes (`{{ inputs.<name> }}`)."""

    inputs: list[FlowInputSpec] = Field(default_factory=list, max_length=MAX_INPUTS)


@dataclass
class Pickers:
    """The workspace's saved things by id, for the node forms' selects."""

    choices: dict[str, dict[str, str]] = field(default_factory=dict)
    models: dict[str, list[str]] = field(default_factory=dict)  # provider id -> its models

    @classmethod
    async def load(cls, page: PageView, ctx: TenantContext) -> Pickers:
        services = page.services
        crews = {str(c.id): c.name for c in await services.crews.list_crews(ctx)}
        flows = {str(f.id): f.name for f in await services.flows.list(ctx)}
        tools = await tool_choices(services, ctx)
        models = await provider_models(services, ctx)
        return cls(
            {
                "provider_id": await provider_choices(services, ctx),
                "tool_id": tools,
                "tool_ids": tools,
                "agent_id": await agent_choices(services, ctx),
                "crew_id": crews,
                "flow_id": flows,
            },
            models,
        )

    def options(self, data: Mapping[str, Any]) -> dict[str, FieldOptions]:
        """The pickers of a node's form; the models follow the provider the node's data names."""
        options = {name: FieldOptions(choices=choices) for name, choices in self.choices.items()}
        provider = data.get("provider_id")
        options["model"] = FieldOptions(
            choices=model_choices(self.models, str(provider) if provider else None),
            help="The models of the chosen provider (every provider's when none is chosen).",
        )
        return options


def field_of(problem: FlowProblem) -> str:
    """A problem's field as the node's form names it (`data.prompt` -> `prompt`)."""
    return problem.field.removeprefix("data.")


class Properties:
    """The panel; `show(node_id)` switches it to a node, `show(None)` to the flow."""

    def __init__(self, page: PageView, session: EditorSession, pickers: Pickers) -> None:
        self.page = page
        self.session = session
        self.pickers = pickers
        self.node_id: str | None = None
        self.selection: list[str] = []
        self.form: ModelForm[Any] | None = None
        # Per form (by id): the wait before its typed values are stored, for which node.
        self._pending: dict[int, tuple[asyncio.Task[None], str | None, ModelForm[Any]]] = {}
        # Per form (by id): the draft's data it was filled from, and its values right after filling.
        self._shown: dict[int, dict[str, Any]] = {}
        self._provider: Any = None  # the provider the node form's model picker was built for
        self._baseline: dict[int, dict[str, Any]] = {}
        with ui.column().classes("w-full gap-3 p-3") as self.element:
            tag(self.element, "properties")
        self.actions: Callable[[list[str]], Awaitable[None]] | None = None
        #: Draws the selected node's part of the run on the canvas (`ui.editor_inspect`), above its form.
        self.inspect: Callable[[str], None] | None = None
        self.run_box: ui.column | None = None

    # -- switching -------------------------------------------------------------------------------

    def show(self, node_id: str | None, selection: list[str] | None = None, *, rebuild: bool = False) -> None:
        wanted = list(selection or ([node_id] if node_id else []))
        if not rebuild and self.form is not None and node_id == self.node_id and wanted == self.selection:
            return  # already shown (a click sends both node_click and selection): keep the form and its typing
        self.run_box = None
        self.node_id = node_id if node_id is not None and self.session.node(node_id) is not None else None
        self.selection = list(selection or ([node_id] if node_id else []))
        self.element.clear()
        with self.element:
            if len(self.selection) > 1:
                self._many()
            elif self.node_id is not None:
                self._node(self.node_id)
            else:
                self._flow()

    def refresh(self) -> None:
        """After a change from elsewhere (undo, the canvas): new values and problems, focus kept."""
        if self.node_id is not None and self.session.node(self.node_id) is None:
            self.show(None)
            return
        if self.form is None:
            self.show(self.node_id, self.selection)
            return
        stored = self._stored(self.node_id)
        if self.node_id is not None and stored.get("provider_id") != self._provider:
            self.show(self.node_id, self.selection, rebuild=True)  # the model picker follows the provider
            return
        if _differs(stored, self._shown.get(id(self.form), {})):  # changed elsewhere: undo, another tab
            self.form.set_values(stored)
            self._loaded(self.form, stored)
        if self.node_id is not None:
            problems = [Problem(field_of(p), p.message) for p in self.session.node_problems(self.node_id)]
        else:
            problems = [Problem(p.field, p.message) for p in self.session.problems if p.node_id is None]
        self.form.clear_problems()
        self.form.show_problems(problems, focus=False)

    def _stored(self, node_id: str | None) -> dict[str, Any]:
        """What the draft holds for the form: the node's data, or the flow's inputs."""
        if node_id is None:
            return {"inputs": self.session.document.get("inputs", [])}
        node = self.session.node(node_id)
        return dict(node.get("data") or {}) if node is not None else {}

    def _loaded(self, form: ModelForm[Any], stored: dict[str, Any]) -> None:
        """Remember what `form` shows (`stored`) and its values then: only a change from those is stored."""
        self._shown[id(form)] = stored
        self._baseline[id(form)] = form.data()[0]

    def redraw_run(self) -> None:
        """Draw the selected node's part of the shown run again (it moved on)."""
        if self.run_box is None or self.run_box.is_deleted or self.node_id is None:
            return
        self.run_box.clear()
        if self.inspect is not None:
            with self.run_box:
                self.inspect(self.node_id)

    async def flush(self) -> None:
        """Store what was typed and is not stored yet (before saving the draft or running it)."""
        pending, self._pending = self._pending, {}
        for task, node_id, form in pending.values():
            if not task.done():
                task.cancel()
                await self._store(node_id, form)

    # -- the panel's kinds -------------------------------------------------------------------------

    def _node(self, node_id: str) -> None:
        node = self.session.node(node_id)
        assert node is not None
        try:
            node_type = self.page.services.registry.get(str(node["type"]))
        except UnknownNodeType as exc:
            self.form = None
            ui.label(str(exc)).classes("text-negative")
            return
        with ui.row().classes("items-center gap-2 no-wrap"):
            ui.icon(node_type.meta.icon, size="1.5rem").classes("text-primary")
            with ui.column().classes("gap-0"):
                tag(ui.label(node_type.meta.label).classes("font-semibold"), "properties-type")
                tag(ui.label(f"id: {node_id}").classes("text-xs text-slate-600"), "properties-id")
        ui.label(node_type.meta.help).classes("text-sm text-slate-600")
        self.run_box = ui.column().classes("w-full gap-2")
        self.redraw_run()
        options = self.pickers.options(node.get("data") or {})
        self._provider = (node.get("data") or {}).get("provider_id")
        for name in TEMPLATE_FIELDS | CEL_FIELDS:
            options[name] = FieldOptions(after=self._references(node_id, name, cel=name in CEL_FIELDS))
        self.form = ModelForm(
            node_type.data_model,
            value=node.get("data") or {},
            fields=options,
            read_only=not self.page.can_edit,
            testid="node",
        )
        if self.form.submit_button is not None:
            self.form.submit_button.set_visibility(False)  # stored as typed: nothing to submit
        self._loaded(self.form, self._stored(node_id))
        self.form.on_change(lambda _: self._settle())
        self.refresh()

    def _flow(self) -> None:
        ui.label("Flow").classes("font-semibold")
        if self.page.can_edit:
            ui.label(
                "Drag nodes from the left onto the canvas and connect a node's right-hand dot to another's "
                "left-hand dot. Select a node to edit it. The inputs below are what a run asks for."
            ).classes("text-sm text-slate-600")
        self.form = ModelForm(
            FlowInputs,
            value={"inputs": self.session.document.get("inputs", [])},
            read_only=not self.page.can_edit,
            testid="flow-inputs",
        )
        if self.form.submit_button is not None:
            self.form.submit_button.set_visibility(False)
        self._loaded(self.form, self._stored(None))
        self.form.on_change(lambda _: self._settle())
        self.refresh()

    def _many(self) -> None:
        ui.label(f"{len(self.selection)} nodes selected").classes("font-semibold")
        ui.label("Drag one to move them together; Delete removes them; Ctrl+C copies them.").classes(
            "text-sm text-slate-600"
        )
        self.form = None
        if self.page.can_edit and self.actions is not None:
            actions = self.actions
            tag(
                ui.button("Delete selected", icon="delete", on_click=lambda: actions(self.selection)).props(
                    "outline color=negative"
                ),
                "properties-delete-many",
            )

    def _references(self, node_id: str, field_name: str, *, cel: bool) -> Callable[[ui.element], None]:
        def draw(element: ui.element) -> None:
            if not self.page.can_edit:
                return
            names = [f"inputs.{spec['name']}" for spec in self.session.document.get("inputs", [])]
            names += [f"nodes.{upstream}.output" for upstream in self.session.upstream(node_id)]
            if not names:
                return
            if isinstance(element, ValueElement):
                ReferenceCompletion(element, names, cel=cel, testid=f"node-{field_name}")
            with ui.row().classes("gap-1 items-center"):
                ui.label("Insert:").classes("text-xs text-slate-600")
                for name in names:
                    text = name if cel else f"{{{{ {name} }}}}"
                    ui.button(text, on_click=lambda _, t=text: _insert(element, t)).props(
                        f'flat dense no-caps size=sm aria-label="Insert {text}"'
                    ).classes("text-xs")

        return draw

    # -- storing ---------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Store the form's values once typing pauses (each change restarts that form's wait; a form left for
        another node still stores what was typed into it)."""
        if not self.page.can_edit or self.form is None:
            return
        form, node_id = self.form, self.node_id
        earlier = self._pending.pop(id(form), None)
        if earlier is not None:
            earlier[0].cancel()
        task = background_tasks.create(self._settled(node_id, form), name="store node properties")
        self._pending[id(form)] = (task, node_id, form)

    async def _settled(self, node_id: str | None, form: ModelForm[Any]) -> None:
        await asyncio.sleep(SETTLE_S)
        self._pending.pop(id(form), None)
        with self.element:
            await self._store(node_id, form)

    async def _store(self, node_id: str | None, form: ModelForm[Any] | None) -> None:
        if form is None:
            return
        data, problems = form.data()
        if problems:
            form.show_problems(problems, focus=False)
            return
        ctx = await self.page.fresh(Role.EDITOR)
        if ctx is None:
            return
        if not _differs(data, self._baseline.get(id(form), {})):
            return  # filled in, not typed: nothing to store
        if node_id is not None:
            if self.session.node(node_id) is None:
                return
            operation: dict[str, Any] = {"op": "update", "node": node_id, "data": _compact(data, form.model)}
            stored = operation["data"]
        else:
            operation = {"op": "inputs", "inputs": data.get("inputs") or []}
            stored = {"inputs": operation["inputs"]}
        # Remembered before applying: the redraw that follows must not put these values back into the
        # form, where the person may have typed on meanwhile.
        self._shown[id(form)], self._baseline[id(form)] = stored, data
        await _apply(self.session, ctx, operation, form)


async def _apply(
    session: EditorSession, ctx: TenantContext, operation: Mapping[str, Any], form: ModelForm[Any]
) -> None:
    try:
        await session.apply(ctx, [operation])
    except REPORTED as exc:
        form.show_problems([Problem("", str(exc))], focus=False)


def _insert(element: ui.element, text: str) -> None:
    current = str(getattr(element, "value", "") or "")
    element.value = current + ("" if not current or current.endswith((" ", "\n")) else " ") + text  # type: ignore[attr-defined]


def _compact(data: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """The data without empty values and values equal to the model's defaults: a stored node holds what was
    chosen, so its document (and a diff of two versions) stays as small as that."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        spec = model.model_fields.get(key)
        if value is None:
            continue
        if spec is not None and not spec.is_required():
            default = to_jsonable_python(spec.get_default(call_default_factory=True))
            if _normal(to_jsonable_python(value)) == _normal(default):
                continue
        kept[key] = value
    return kept


def _differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _normal(a) != _normal(b)


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
