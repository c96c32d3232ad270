"""The crew editor: a ModelForm of `CrewSpec` (test id `crew`), the tasks as an ordered list, live checks.

`TaskOrder` holds the tasks in the order they run: drag a row to move it (HTML5 drag and
drop as in NiceGUI's `examples/trello_cards`: rows are `draggable`, `dragstart` tells the
server which row moves, `dragover.prevent` runs in the browser alone so a row accepts the
drop, `drop` moves the dragged task to that row's place), or use its arrow buttons.
On every change the editor lists what would stop the crew from running (`crew_problems`,
plus what only the server knows of the saved crew: providers, tools), a task's problems
also under its row, and the crew's `{placeholders}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement

from core.context import Role, TenantContext
from core.crew_specs import CrewProblem, CrewSpec, crew_placeholders, crew_problems
from core.crews import AgentView, CrewProblemView, CrewView, TaskView
from core.errors import InvalidInput
from ui.forms import FieldOptions, ModelForm
from ui.records import placeholder_chips, placeholder_text, provider_choices, shorten, tag
from ui.session import current_context
from ui.tenant_page import PageView
from wiring.services import Services

#: The browser starts a drag only with some data in it (Firefox); the server needs none of it.
DRAG_START_JS = "(e) => { e.dataTransfer.effectAllowed = 'move'; e.dataTransfer.setData('text/plain', ''); emit(); }"
ROW = "w-full items-center no-wrap gap-2 rounded-md border border-slate-300 px-2 py-1"


class TaskOrder:
    """The crew's task ids in the order they run, drawn as rows; `on_change(order)` after every change."""

    def __init__(
        self, world: CrewWorld, order: list[uuid.UUID], *, read_only: bool, on_change: Callable[[list[uuid.UUID]], None]
    ) -> None:
        self.tasks = world.tasks
        self.agents = world.agents
        self.order = list(order)
        self.read_only = read_only
        self.on_change = on_change
        self.problems: dict[int, list[str]] = {}
        self._dragged: int | None = None
        with tag(ui.element("fieldset"), "crew-tasks").classes(
            "w-full flex flex-col gap-2 border border-slate-300 rounded-md px-3 pb-3"
        ):
            TextElement(tag="legend", text="Tasks *").classes("px-1 text-sm font-medium")
            ui.label(
                "In the order they run. Drag a task by its handle, or use its arrows, to move it; "
                "a task can only read (context) the results of tasks above it."
            ).classes("cc-field-help text-sm -mt-1")
            self.empty = ui.label("No tasks yet." + ("" if read_only else " Add the first one below."))
            self.rows = tag(ui.column().classes("w-full gap-1 p-0"), "crew-task-list")
            self.rows.props["role"] = "list"
            self.rows.props["aria-label"] = "The crew's tasks, in the order they run"
            self.error = tag(ui.label().classes("text-negative text-sm whitespace-pre-line"), "crew-tasks-error")
            self.error.props("role=alert")
            self.error.set_visibility(False)
            if not read_only:
                self.picker = tag(ui.select({}, label="Add a task", with_input=True), "crew-task-add-select")
                self.picker.classes("w-full").on_value_change(self._picked)
                self.picker.props["aria-label"] = "Add a task to the crew (it goes last)"
        self.render()

    # -- drawing --------------------------------------------------------------------------

    def name(self, task_id: uuid.UUID) -> str:
        task = self.tasks.get(task_id)
        return task.name if task is not None else f"(deleted task {str(task_id)[:8]})"

    def render(self) -> None:
        """Draw the rows again (after a change of order or of problems)."""
        self.rows.clear()
        self.empty.set_visibility(not self.order)  # outside the list: a list holds list items only
        with self.rows:
            for index, task_id in enumerate(self.order):
                self._row(index, task_id)
        if not self.read_only:
            options = {
                str(t.id): t.name for t in sorted(self.tasks.values(), key=lambda t: t.name) if t.id not in self.order
            }
            self.picker.set_options(options, value=None)

    def _row(self, index: int, task_id: uuid.UUID) -> None:
        name = self.name(task_id)
        task = self.tasks.get(task_id)
        with tag(ui.column().classes("w-full gap-0 p-0"), "crew-task") as item:
            item.props(f'role=listitem data-task="{name}" data-index="{index}"')
            with ui.row().classes(ROW) as row:
                if not self.read_only:
                    row.props("draggable=true")
                    row.classes("cursor-grab")
                    row.on("dragstart", lambda i=index: self._drag(i), args=[], js_handler=DRAG_START_JS)
                    row.on("dragover.prevent", js_handler="() => {}")
                    row.on("drop.prevent", lambda i=index: self._drop(i), args=[])
                    ui.icon("drag_indicator").classes("text-slate-500").props(
                        'aria-hidden=true data-testid="crew-task-handle"'
                    )
                ui.label(f"{index + 1}.").classes("w-6 text-right font-mono")
                with ui.column().classes("grow gap-0 p-0"):
                    if task is not None:
                        ui.link(name, f"/tasks/{task_id}").classes("font-medium")
                        agent = self.agents.get(task.agent_id) if task.agent_id else None
                        who = f"by {agent.name}" if agent else "no agent (the manager assigns it)"
                        ui.label(f"{who} · {shorten(task.description, 90)}").classes("text-sm text-slate-600")
                    else:
                        ui.label(name).classes("font-medium text-negative")
                if not self.read_only:
                    self._buttons(index, name)
            for message in self.problems.get(index, []):
                tag(ui.label(message).classes("text-negative text-sm pl-10"), f"crew-task-problem-{name}").props(
                    "role=alert"
                )

    def _buttons(self, index: int, name: str) -> None:
        last = len(self.order) - 1
        buttons = (
            ("arrow_upward", f"Move task {name} up", "up", index > 0, lambda: self.move(index, index - 1)),
            ("arrow_downward", f"Move task {name} down", "down", index < last, lambda: self.move(index, index + 1)),
            ("close", f"Remove task {name} from the crew", "remove", True, lambda: self.remove(index)),
        )
        for icon, label, what, enabled, action in buttons:
            button = tag(ui.button(icon=icon, on_click=action).props("flat round dense"), f"crew-task-{what}-{name}")
            button.props["aria-label"] = label
            button.set_enabled(enabled)

    # -- changes --------------------------------------------------------------------------

    def move(self, source: int, target: int) -> None:
        """Move the task at `source` to position `target` (the others keep their order)."""
        if source == target or not (0 <= source < len(self.order) and 0 <= target < len(self.order)):
            return
        task_id = self.order.pop(source)
        self.order.insert(target, task_id)
        self._changed()

    def remove(self, index: int) -> None:
        del self.order[index]
        self._changed()

    def add(self, task_id: uuid.UUID) -> None:
        if task_id not in self.order:
            self.order.append(task_id)
            self._changed()

    def _picked(self) -> None:
        if self.picker.value:  # drawing the rows again empties the picker: that change is not a pick
            self.add(uuid.UUID(str(self.picker.value)))
            self.picker.run_method("updateInputValue", "", True)  # else the picked name filters the next pick

    def _drag(self, index: int) -> None:
        self._dragged = index

    def _drop(self, index: int) -> None:
        if self._dragged is not None:
            self.move(self._dragged, index)
        self._dragged = None

    def _changed(self) -> None:
        self.problems = {}
        self.show_error(None)
        self.render()
        self.on_change(list(self.order))

    # -- problems -------------------------------------------------------------------------

    def show_problems(self, problems: Mapping[int, list[str]]) -> None:
        """Show problems under the rows they concern (by position), after drawing the rows again."""
        self.problems = dict(problems)
        self.render()

    def show_error(self, message: str | None) -> None:
        """A problem of the list as a whole (no task at all, a task twice), or None to clear it."""
        self.error.set_text(message or "")
        self.error.set_visibility(bool(message))


# -- the editor ----------------------------------------------------------------------------

PROCESSES = {
    "sequential": "Sequential: the tasks run in the order below",
    "hierarchical": "Hierarchical: a manager plans the work and delegates the tasks",
}
MANAGER_HINT = "Only for a hierarchical crew (ignored otherwise): "


@dataclass(frozen=True)
class CrewWorld:
    """The workspace's records a crew is made of, loaded once per page."""

    agents: dict[uuid.UUID, AgentView]
    tasks: dict[uuid.UUID, TaskView]
    providers: dict[str, str]

    @classmethod
    async def load(cls, services: Services, ctx: TenantContext) -> CrewWorld:
        return cls(
            agents={agent.id: agent for agent in await services.crews.list_agents(ctx)},
            tasks={task.id: task for task in await services.crews.list_tasks(ctx)},
            providers=await provider_choices(services, ctx),
        )


def _ids(values: Any) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    for value in values if isinstance(values, list) else [values]:
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue  # empty or not an id: nothing chosen
    return found


def _key(problem: CrewProblem | CrewProblemView) -> tuple[str, str, str, str]:
    return (problem.kind, problem.name, problem.field, problem.message)


class CrewEditor:
    """The crew's form (ModelForm of CrewSpec), its ordered tasks, what stops it from running and its placeholders."""

    def __init__(
        self, page: PageView, crew: CrewView | None, world: CrewWorld, on_saved: Callable[[CrewView], Awaitable[None]]
    ) -> None:
        self.page = page
        self.crew = crew
        self.world = world
        self.on_saved = on_saved
        self.tasks: TaskOrder | None = None
        self.placeholders: ui.column | None = None
        self.extra: list[CrewProblemView] = self._server_only(crew)
        agent_names = {str(a.id): f"{a.name} - {shorten(a.role, 60)}" for a in world.agents.values()}
        fields = {
            "name": FieldOptions(placeholder="research_crew"),
            "description": FieldOptions(widget="textarea", help="What the crew is for, in a sentence or two."),
            "process": FieldOptions(choices=PROCESSES),
            "agent_ids": FieldOptions(
                label="Agents",
                choices=agent_names,
                help="The agents that work in this crew; each task's agent must be one of them.",
                after=lambda _: self._task_section(),
            ),
            "task_ids": FieldOptions(hidden=True),  # edited by the ordered list below the agents
            "manager_provider_id": FieldOptions(
                label="Manager provider", choices=world.providers, help=MANAGER_HINT + "the manager model's provider."
            ),
            "manager_model": FieldOptions(
                label="Manager model",
                help=MANAGER_HINT + "the model that plans and delegates (empty: the provider's first).",
            ),
            "manager_agent_id": FieldOptions(
                label="Manager agent",
                choices=agent_names,
                help=MANAGER_HINT + "one of your agents as the manager, instead of a manager model; not also a member.",
            ),
            "planning": FieldOptions(help="Plan every task before the crew starts (one more model call per run)."),
            "inputs": FieldOptions(
                label="Input defaults",
                help="A default value for each of the crew's {placeholders}, by name; a run may give others.",
                after=lambda _: self._placeholder_section(),
            ),
        }
        with tag(ui.column().classes("w-full gap-1 p-0"), "crew-problems") as self.problems:
            self.problems.props('aria-live="polite"')
        value = crew.model_dump(include=set(CrewSpec.model_fields)) if crew is not None else None
        self.form = ModelForm(
            CrewSpec,
            value=value,
            on_submit=self._save,
            submit_label="Create crew" if crew is None else "Save",
            read_only=not page.can_edit,
            fields=fields,
            testid="crew",
        )
        self.form.on_change(self._changed)
        self._changed(self.form.values())

    # -- sections -------------------------------------------------------------------------

    def _task_section(self) -> None:
        order = list(self.crew.task_ids) if self.crew is not None else []
        self.tasks = TaskOrder(self.world, order, read_only=not self.page.can_edit, on_change=self._reordered)

    def _placeholder_section(self) -> None:
        self.placeholders = tag(ui.column().classes("w-full gap-1 p-0"), "crew-placeholders")

    def _reordered(self, order: list[uuid.UUID]) -> None:
        added = self._add_missing_agents(order)
        self.form.set_values({"task_ids": [str(task_id) for task_id in order]} | added)

    def _add_missing_agents(self, order: list[uuid.UUID]) -> dict[str, list[str]]:
        """A task's agent joins the crew with the task (a sequential crew would refuse it otherwise)."""
        members = [str(agent_id) for agent_id in _ids(self.form.values().get("agent_ids"))]
        agents = [self.world.tasks[t].agent_id for t in order if t in self.world.tasks]
        joined = [a for a in dict.fromkeys(agents) if a in self.world.agents and str(a) not in members]
        if not joined:
            return {}
        names = ", ".join(self.world.agents[agent_id].name for agent_id in joined)
        ui.notify(f"Added {names} to the crew's agents: a task's agent must be in the crew.")
        return {"agent_ids": members + [str(agent_id) for agent_id in joined]}

    # -- live checks ----------------------------------------------------------------------

    def _draft(self, values: dict[str, Any]) -> CrewSpec:
        """The crew as the form holds it now, unvalidated (enough for `crew_problems`)."""
        manager_model = values.get("manager_model") or None
        return CrewSpec.model_construct(
            name=values.get("name") or "this_crew",
            process="hierarchical" if values.get("process") == "hierarchical" else "sequential",
            agent_ids=_ids(values.get("agent_ids")),
            task_ids=list(self.tasks.order) if self.tasks is not None else [],
            manager_provider_id=next(iter(_ids(values.get("manager_provider_id"))), None),
            manager_model=manager_model,
            manager_agent_id=next(iter(_ids(values.get("manager_agent_id"))), None),
        )

    def _server_only(self, crew: CrewView | None) -> list[CrewProblemView]:
        """The saved crew's problems the page cannot work out itself (providers, tools): shown until the next save."""
        if crew is None:
            return []
        local = {_key(p) for p in crew_problems(crew, self.world.agents, self.world.tasks)}
        return [problem for problem in crew.problems if _key(problem) not in local]

    def _changed(self, values: dict[str, Any]) -> None:
        draft = self._draft(values)
        found: list[CrewProblem | CrewProblemView] = [*crew_problems(draft, self.world.agents, self.world.tasks)]
        found += self.extra
        self._show_problems(found)
        if self.tasks is not None:
            rows: dict[int, list[str]] = {}
            for problem in found:
                for index, task_id in enumerate(self.tasks.order):
                    if problem.kind == "task" and self.tasks.name(task_id) == problem.name:
                        rows.setdefault(index, []).append(f"{problem.field}: {problem.message}")
            self.tasks.show_problems(rows)
        agents = [self.world.agents[a] for a in draft.agent_ids if a in self.world.agents]
        tasks = [self.world.tasks[t] for t in draft.task_ids if t in self.world.tasks]
        self._show_placeholders(crew_placeholders(agents, tasks))

    def _show_problems(self, problems: list[CrewProblem | CrewProblemView]) -> None:
        self.problems.clear()
        with self.problems:
            if not problems:
                with ui.row().classes("items-center gap-2"):
                    ui.icon("check_circle", color="positive").props("aria-hidden=true")
                    tag(ui.label("Nothing stops this crew from running."), "crew-no-problems")
                return
            with ui.row().classes("items-center gap-2"):
                ui.icon("warning", color="warning").props("aria-hidden=true")
                ui.label(f"What stops this crew from running ({len(problems)}):").classes("font-medium")
            for problem in problems:
                with tag(ui.row().classes("items-start gap-2 no-wrap pl-7 text-sm"), "crew-problem"):
                    ui.badge(f"{problem.kind} {problem.name}", color="grey-8").classes("font-mono")
                    ui.label(f"{problem.field}: {problem.message}").classes("break-words")

    def _show_placeholders(self, names: list[str]) -> None:
        if self.placeholders is not None:
            self.placeholders.clear()
            with self.placeholders:
                ui.label(placeholder_text(names, record="crew", fields="agents' and tasks' texts")).classes("text-sm")
                placeholder_chips(names, "crew-placeholder-names")

    # -- saving ---------------------------------------------------------------------------

    async def _save(self, spec: CrewSpec) -> None:
        ctx = await current_context(self.page.services, Role.EDITOR)
        if ctx is None or self.tasks is None:
            return
        spec = spec.model_copy(update={"task_ids": list(self.tasks.order)})
        crews = self.page.services.crews
        try:
            if self.crew is None:
                saved = await crews.create_crew(ctx, spec)
            else:
                saved = await crews.update_crew(ctx, self.crew.id, spec)
        except InvalidInput as exc:
            # The tasks' problems go under their rows (`task_ids.N`), the others under the form's fields.
            rows: dict[int, list[str]] = {}
            for problem in exc.problems:
                parts = problem.field.split(".")
                if parts[0] == "task_ids":
                    rows.setdefault(int(parts[1]) if parts[1:] and parts[1].isdigit() else -1, []).append(
                        problem.message
                    )
            self.tasks.show_problems(rows)
            self.tasks.show_error("\n".join(rows.get(-1, [])) or None)
            rest = [p for p in exc.problems if not p.field.startswith("task_ids")]
            if rest or not exc.problems:
                raise InvalidInput(str(exc), problems=rest) from None
            return
        self.crew = saved
        self.extra = self._server_only(saved)
        self._changed(self.form.values())
        await self.on_saved(saved)
