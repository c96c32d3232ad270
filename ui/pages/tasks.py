"""/tasks: the workspace's CrewAI tasks; /tasks/new and /tasks/{id}: one task's editor.

The editor is a `ModelForm` of `TaskSpec`: who does it (an agent, or none when a
hierarchical crew's manager assigns it), which other tasks' results it reads, what a good
result looks like and, optionally, a JSON Schema the result must meet. The `{placeholders}`
in the description, expected output and output file are the crew's inputs; the page lists
them live. Viewers see the same form read-only, without Save or Delete.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from core.context import Role, TenantContext
from core.crew_specs import TaskSpec, placeholders
from core.crews import TaskView
from ui.dialogs import confirm
from ui.forms import FieldOptions, ModelForm
from ui.records import (
    SearchList,
    agent_choices,
    placeholder_chips,
    placeholder_text,
    save_record,
    shorten,
    tag,
    task_choices,
)
from ui.tenant_page import Pages, PageView, record_id

WHAT_A_TASK_IS = (
    "A task is one piece of work for an agent: what to do, what a good result looks like, "
    "and which earlier tasks' results it reads. Crews run tasks in order."
)
TEXT_FIELDS = "description, expected output or output file"
SCHEMA_EXAMPLE = '{"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}'


def new_task_button() -> None:
    tag(ui.button("New task", icon="add", on_click=lambda: ui.navigate.to("/tasks/new")), "new-task")


class TaskList:
    """The list of tasks with a search box; each row links to its editor."""

    def __init__(self, page: PageView, agents: dict[str, str], names: dict[str, str]) -> None:
        self.page = page
        self.agents = agents
        self.names = names
        if page.can_edit:
            with ui.row().classes("items-center gap-2"):
                new_task_button()
        self.list = SearchList[TaskView](
            page,
            testid="tasks",
            label="Search tasks by name or description",
            load=lambda ctx, search: page.services.crews.list_tasks(ctx, search),
            row=self.row,
            empty=self.empty,
        )

    def empty(self) -> None:
        with tag(ui.column().classes("w-full items-start gap-2 py-6"), "tasks-empty"):
            ui.label("No tasks yet.").classes("text-lg")
            ui.label(WHAT_A_TASK_IS).classes("text-slate-600")
            if self.page.can_edit:
                ui.label("Create an agent first if you have none, then a task for it.").classes("text-slate-600")
                new_task_button()
            else:
                ui.label("Editors of this workspace can create them.").classes("text-slate-600")

    def row(self, task: TaskView) -> None:
        with tag(ui.card().classes("w-full gap-1"), "task-row").props(f'data-task="{task.name}"'):
            with ui.row().classes("w-full items-baseline gap-3"):
                tag(ui.link(task.name, f"/tasks/{task.id}").classes("font-mono text-base"), "task-link")
                tag(ui.label(shorten(task.description, 90)).classes("text-slate-600"), "task-description")
            agent = self.agents.get(str(task.agent_id), "a deleted agent") if task.agent_id else "no agent"
            details = [f"agent: {agent}"]
            if task.context_ids:
                reads = [self.names.get(str(context_id), "a deleted task") for context_id in task.context_ids]
                details.append(f"reads: {', '.join(reads)}")
            if task.output_schema is not None:
                details.append("JSON result")
            tag(ui.label(" · ".join(details)).classes("text-sm text-slate-600"), "task-details")
            placeholder_chips(task.placeholders, "task-placeholders")


class TaskEditor:
    """The form of one task (new when `task` is None), its live placeholders, Save and Delete."""

    def __init__(self, page: PageView, task: TaskView | None, agents: dict[str, str], others: dict[str, str]) -> None:
        self.page = page
        self.task = task
        tag(ui.link("← all tasks", "/tasks").classes("text-sm"), "tasks-back")
        if not agents:
            with tag(ui.row().classes("items-center gap-2"), "task-no-agents"):
                ui.label("No agents yet: a task needs one to run in a sequential crew.")
                ui.link("Create an agent", "/agents/new" if page.can_edit else "/agents")
        self.form = ModelForm(
            TaskSpec,
            value=task,
            on_submit=self.save,
            submit_label="Create task" if task is None else "Save",
            read_only=not page.can_edit,
            testid="task",
            fields={
                "name": FieldOptions(placeholder="research_task"),
                "description": FieldOptions(placeholder="Research the latest developments in {topic}"),
                "expected_output": FieldOptions(placeholder="A list of 10 bullet points about {topic}"),
                "agent_id": FieldOptions(
                    label="Agent",
                    choices=agents,
                    help="Who does it; leave empty only for a hierarchical crew, whose manager assigns it.",
                ),
                "context_ids": FieldOptions(
                    label="Context tasks",
                    choices=others,
                    help="Earlier tasks of the crew whose results this one reads.",
                ),
                "output_schema": FieldOptions(
                    label="Output schema (JSON Schema)",
                    widget="json",
                    placeholder=SCHEMA_EXAMPLE,
                ),
                "output_file": FieldOptions(placeholder="report.md"),
            },
        )
        self.inputs = tag(ui.label().classes("text-slate-700"), "task-inputs")
        self.show_inputs(self.form.values())
        self.form.on_change(self.show_inputs)
        self.meta = tag(ui.label().classes("text-sm text-slate-500"), "task-meta")
        self.show_meta()
        if task is not None and page.can_edit:
            tag(
                ui.button("Delete", icon="delete", color="negative", on_click=page.action(self.delete, Role.EDITOR)),
                "task-delete",
            ).props("outline")

    def show_inputs(self, values: dict[str, Any]) -> None:
        names = placeholders(values.get("description"), values.get("expected_output"), values.get("output_file"))
        self.inputs.set_text(placeholder_text(names, record="task", fields=TEXT_FIELDS))

    def show_meta(self) -> None:
        task = self.task
        self.meta.set_visibility(task is not None)
        if task is not None:
            created, saved = f"{task.created_at:%Y-%m-%d %H:%M}", f"{task.updated_at:%Y-%m-%d %H:%M}"
            self.meta.set_text(f"Created {created} · last saved {saved} (UTC)")

    async def save(self, spec: TaskSpec) -> None:
        crews = self.page.services.crews
        saved = await save_record(
            self.page,
            self.task,
            kind="task",
            path="/tasks",
            create=lambda ctx: crews.create_task(ctx, spec),
            update=lambda ctx, task_id: crews.update_task(ctx, task_id, spec),
        )
        if saved is not None:
            self.task = saved
            self.show_meta()

    async def delete(self, ctx: TenantContext) -> None:
        if self.task is None:
            return
        name = self.task.name
        if not await confirm(f"Delete the task '{name}'?", detail="Crews and other tasks must not use it any more."):
            return
        await self.page.services.crews.delete_task(ctx, self.task.id)  # a Conflict names who uses it
        ui.notify(f"Deleted task '{name}'")
        ui.navigate.to("/tasks")


def register(pages: Pages) -> None:
    """Add /tasks, /tasks/new and /tasks/{task_id}."""

    @pages.tenant_page("/tasks", Role.VIEWER, title="Tasks")
    async def tasks_page(page: PageView) -> None:
        services, ctx = page.services, page.ctx
        agents = {str(agent.id): agent.name for agent in await services.crews.list_agents(ctx)}
        list_view = TaskList(page, agents, await task_choices(services, ctx))
        await list_view.list.fill(ctx)

    # Registered before /tasks/{task_id}, so "new" is never read as an id.
    @pages.tenant_page("/tasks/new", Role.EDITOR, title="Task")
    async def new_task_page(page: PageView) -> None:
        page.heading.set_text("New task")
        services, ctx = page.services, page.ctx
        TaskEditor(page, None, await agent_choices(services, ctx), await task_choices(services, ctx))

    @pages.tenant_page("/tasks/{task_id}", Role.VIEWER, title="Task")
    async def task_page(page: PageView, task_id: str) -> None:
        services, ctx = page.services, page.ctx
        task = await services.crews.get_task(ctx, record_id(task_id))
        page.heading.set_text(task.name)
        others = await task_choices(services, ctx, exclude=task.id)
        TaskEditor(page, task, await agent_choices(services, ctx), others)
