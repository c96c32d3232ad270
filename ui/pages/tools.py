"""Tools pages: the workspace's tools, and one tool's editor with its "Try it" panel.

`/tools` lists the tools; `/tools/new?kind=python|command` starts from a template that
runs as it is; `/tools/<id>` edits one (another workspace's id, or a malformed one, is the
not-found page). Both warn when the sandbox is unsafe or unavailable. Viewers read tools;
editors create, change, try and delete them (`ui.tool_editor`).
"""

from __future__ import annotations

from nicegui import ui

from core.context import Role
from core.tools import ToolSpec, ToolView, starter_spec
from ui.records import tag
from ui.tenant_page import Pages, PageView, record_id
from ui.tool_editor import ToolEditor
from ui.tool_run import sandbox_banner

WHAT_A_TOOL_IS = (
    "A tool is a Python function or a shell command that agents and flows call with JSON arguments; "
    "it runs in the sandbox."
)


def new_tool_buttons() -> None:
    with ui.row().classes("gap-2"):
        tag(ui.button("New Python tool", icon="add", on_click=lambda: ui.navigate.to("/tools/new")), "new-python-tool")
        command = ui.button(
            "New command tool", icon="terminal", on_click=lambda: ui.navigate.to("/tools/new?kind=command")
        )
        tag(command, "new-command-tool").props("outline")


def tool_list(views: list[ToolView], can_edit: bool) -> None:
    """Each tool with its kind and description, linking to its editor; or what to do when there are none."""
    if not views:
        with tag(ui.column().classes("w-full items-start gap-2 py-6"), "tools-empty"):
            ui.label("No tools yet.").classes("text-lg")
            ui.label(WHAT_A_TOOL_IS).classes("text-slate-600")
            if can_edit:
                ui.label("Start from a template above: it runs as it is.").classes("text-slate-600")
            else:
                ui.label("Editors of this workspace can create them.").classes("text-slate-600")
        return
    with tag(ui.column().classes("w-full gap-1"), "tool-list"):
        for view in views:
            with tag(ui.row().classes("w-full items-baseline gap-3"), "tool-row"):
                tag(ui.link(view.name, f"/tools/{view.id}").classes("font-mono text-base"), "tool-link")
                ui.badge(view.kind, color="slate-600")
                ui.label(view.description).classes("text-slate-600 truncate")


def register(pages: Pages) -> None:
    """/tools and /tools/{id} (and /tools/new): open to every member; editors change them."""
    services = pages.services

    @pages.tenant_page("/tools", Role.VIEWER, title="Tools")
    async def tools_page(page: PageView) -> None:
        sandbox_banner(await services.tools.sandbox_status())
        ui.label(WHAT_A_TOOL_IS).classes("text-slate-600")
        if page.can_edit:
            new_tool_buttons()
        tool_list(await services.tools.list(page.ctx), page.can_edit)

    @pages.tenant_page("/tools/{tool_id}", Role.VIEWER, title="Tool")
    async def tool_page(page: PageView, tool_id: str, kind: str = "python") -> None:
        view: ToolView | None = None
        if tool_id == "new":
            page.heading.set_text("New tool")
            ui.page_title("New tool · CrewCanvas")
            spec = starter_spec("command" if kind == "command" else "python")
        else:
            view = await services.tools.get(page.ctx, record_id(tool_id))  # NotFound: the not-found page
            page.heading.set_text(view.name)
            ui.page_title(f"{view.name} · CrewCanvas")
            # As stored: a tool saved before today's text rules still opens, and saving it says what to fix.
            spec = ToolSpec.model_construct(
                name=view.name,
                description=view.description,
                kind=view.kind,
                input_schema=view.input_schema,
                code=view.code,
                limits=view.limits,
            )
        sandbox_banner(await services.tools.sandbox_status())
        tag(ui.link("← all tools", "/tools").classes("text-sm"), "tools-back")
        if view is None and not page.can_edit:
            note = f"Your role '{page.ctx.role}' can read tools; editors of the workspace create them."
            tag(ui.label(note).classes("text-slate-600"), "tool-read-only")
            return
        ToolEditor(page, spec, view)
