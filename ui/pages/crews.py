"""Crews pages: the list (search, import of a CrewAI project), and one crew's editor, export and test run.

- `/crews`: the workspace's crews with their process, how many agents and tasks they have
  and whether anything stops them from running; editors get "New crew" and "Import
  CrewAI project" (a .zip, or its agents.yaml and tasks.yaml), which shows what the import
  created, what it renamed and every note on what it could not map.
- `/crews/new` (editors) and `/crews/{id}`: the editor (`ui.crew_editor`), "Export" (the
  crew as a zipped CrewAI project), "Delete" (asks first; its agents and tasks stay) and
  the *Test* panel (`ui.crew_test_panel`). Viewers see it all read-only and cannot run it.
"""

from __future__ import annotations

from nicegui import ui
from nicegui.events import MultiUploadEventArguments

from core.context import Role, TenantContext
from core.crews import CrewView
from core.errors import InvalidInput
from executor.crewai.project import MAX_UPLOAD_BYTES, CrewProjects, ImportedRecord, ImportReport, ProjectUpload
from ui.crew_editor import CrewEditor, CrewWorld
from ui.crew_test_panel import CrewTestPanel
from ui.dialogs import confirm
from ui.records import SearchList, shorten, tag
from ui.tenant_page import Pages, PageView, record_id
from wiring.services import Services

WHAT_A_CREW_IS = (
    "A crew is a team of agents working through a list of tasks: each task says what to do and which "
    "agent does it, and the crew runs them in order (or a manager agent delegates them)."
)


def projects(services: Services) -> CrewProjects:
    """Export and import of CrewAI projects, on this app's records."""
    return CrewProjects(services.crews, services.tools, services.llm_stack.providers)


# -- the list ------------------------------------------------------------------------------


def crew_row(crew: CrewView) -> None:
    """One crew in the list: its name (a link), process, sizes and whether it can run."""
    with tag(ui.card().classes("w-full gap-1 py-2"), "crew-row") as card:
        card.props["data-name"] = crew.name
        with ui.row().classes("w-full items-center gap-3"):
            ui.link(crew.name, f"/crews/{crew.id}").classes("font-medium text-lg")
            ui.badge(crew.process, color="grey-8")
            agents, tasks = len(crew.agent_ids), len(crew.task_ids)
            ui.label(f"{agents} agent{'s' * (agents != 1)} · {tasks} task{'s' * (tasks != 1)}").classes(
                "text-sm text-slate-600"
            )
            ui.space()
            if crew.problems:
                count = len(crew.problems)
                badge = ui.badge(f"{count} problem{'s' * (count != 1)}", color="negative")
                badge.props["title"] = "; ".join(str(problem.message) for problem in crew.problems[:5])
                tag(badge, "crew-row-problems")
            else:
                tag(ui.badge("ready to run", color="positive"), "crew-row-ready")
        if crew.description:
            ui.label(shorten(crew.description, 160)).classes("text-sm text-slate-600")


def empty_state(page: PageView, importer: ImportDialog | None) -> None:
    with tag(ui.column().classes("w-full items-center gap-3 py-8 text-center"), "crews-empty"):
        ui.icon("groups", size="3rem").classes("text-primary").props("aria-hidden=true")
        ui.label("No crews yet.").classes("text-lg font-medium")
        ui.label(WHAT_A_CREW_IS).classes("max-w-xl text-slate-600")
        if page.can_edit and importer is not None:
            ui.label("Make the agents and tasks first, then put them in a crew; or import a CrewAI project.")
            with ui.row().classes("gap-2"):
                tag(ui.button("New crew", icon="add", on_click=lambda: ui.navigate.to("/crews/new")), "crews-empty-new")
                tag(ui.button("Import CrewAI project", on_click=importer.open).props("outline"), "crews-empty-import")
        else:
            ui.label("Ask an editor of this workspace to create one.").classes("text-slate-600")


class ImportDialog:
    """Upload a CrewAI project (a .zip, or agents.yaml + tasks.yaml) and see what the import created."""

    def __init__(self, page: PageView) -> None:
        self.page = page
        with ui.dialog() as self.dialog, tag(ui.card().classes("w-[40rem] max-w-full gap-3"), "crews-import-dialog"):
            self.dialog.props["aria-label"] = "Import a CrewAI project"
            ui.label("Import a CrewAI project").classes("text-lg font-semibold").props("role=heading aria-level=2")
            ui.label(
                "Upload the project as a .zip (as `crewai create crew` makes it, or as a crew's Export here), or "
                "its config/agents.yaml and config/tasks.yaml together. New agents, tasks and a crew are created "
                "(names already taken get a suffix); nothing you have is changed and no uploaded code is run."
            ).classes("text-sm text-slate-600")
            self.upload = tag(
                ui.upload(
                    multiple=True,
                    auto_upload=True,
                    max_total_size=MAX_UPLOAD_BYTES,
                    on_multi_upload=self._uploaded,
                    label="Project .zip, or agents.yaml + tasks.yaml",
                ),
                "crews-import-upload",
            ).classes("w-full")
            self.upload.props('accept=".zip,.yaml,.yml"')
            self.error = tag(ui.label().classes("whitespace-pre-line text-negative"), "crews-import-error")
            self.error.props("role=alert")
            self.error.set_visibility(False)
            self.report = tag(ui.column().classes("w-full gap-1 p-0"), "crews-import-report")
            with ui.row().classes("w-full justify-end"):
                tag(ui.button("Close", on_click=self.dialog.close).props("flat"), "crews-import-close")

    def open(self) -> None:
        self.error.set_visibility(False)
        self.report.clear()
        self.dialog.open()

    async def _uploaded(self, event: MultiUploadEventArguments) -> None:
        files = {file.name: await file.read() for file in event.files}
        self.upload.reset()
        await self.page.action(lambda ctx: self.import_files(ctx, files), Role.EDITOR)()

    async def import_files(self, ctx: TenantContext, files: dict[str, bytes]) -> None:
        """Import the uploaded files; a refused upload is explained in the dialog (nothing was created)."""
        self.error.set_visibility(False)
        self.report.clear()
        try:
            report = await projects(self.page.services).import_(ctx, _project_upload(files))
        except InvalidInput as exc:
            details = [problem.message for problem in exc.problems if problem.message not in str(exc)]
            self.error.set_text("\n".join([f"Nothing was imported: {exc}", *details]))
            self.error.set_visibility(True)
            return
        self._show(report)

    def _show(self, report: ImportReport) -> None:
        with self.report:
            with ui.row().classes("items-center gap-2"):
                ui.icon("check_circle", color="positive").props("aria-hidden=true")
                ui.label(f"Created crew {report.crew_name} ({report.process}).").classes("font-medium")
            tag(ui.link(f"Open crew {report.crew_name}", f"/crews/{report.crew_id}"), "crews-import-open")
            _records("Agents", report.agents, "crews-import-agents")
            _records("Tasks", report.tasks, "crews-import-tasks")
            if report.notes:
                ui.label("Notes: what was not imported as it was").classes("font-medium pt-2")
                with tag(ui.column().classes("gap-0 p-0 text-sm"), "crews-import-notes"):
                    for note in report.notes:
                        where = " · ".join(part for part in (note.file, note.item, note.field) if part)
                        ui.label(f"{where}: {note.message}")


def _records(title: str, records: list[ImportedRecord], testid: str) -> None:
    ui.label(f"{title} created ({len(records)})").classes("font-medium pt-2")
    with tag(ui.column().classes("gap-0 p-0 text-sm"), testid):
        for record in records:
            renamed = f" (renamed from {record.source}: the name was taken)" if record.source != record.name else ""
            ui.label(f"{record.name}{renamed}")


def _project_upload(files: dict[str, bytes]) -> ProjectUpload:
    """The upload as the import takes it: one .zip, or the two YAML files told apart by their names."""
    zips = [name for name in files if name.lower().endswith(".zip")]
    if len(zips) == 1 and len(files) == 1:
        return ProjectUpload(archive=files[zips[0]], archive_name=zips[0])
    agents = [name for name in files if "agents" in name.lower() and not name.lower().endswith(".zip")]
    tasks = [name for name in files if "tasks" in name.lower() and not name.lower().endswith(".zip")]
    if zips or len(files) != 2 or len(agents) != 1 or len(tasks) != 1:
        got = ", ".join(sorted(files)) or "nothing"
        raise InvalidInput(
            f"upload one .zip, or two files named agents.yaml and tasks.yaml (got {got}); "
            "select both YAML files at once"
        )
    return ProjectUpload(agents=files[agents[0]], tasks=files[tasks[0]])


# -- the pages -----------------------------------------------------------------------------


def register(pages: Pages) -> None:
    """Register `/crews`, `/crews/new` and `/crews/{crew_id}`."""
    services = pages.services

    @pages.tenant_page("/crews", Role.VIEWER, title="Crews")
    async def crews_page(page: PageView) -> None:
        importer = ImportDialog(page) if page.can_edit else None
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(WHAT_A_CREW_IS).classes("text-slate-600 grow basis-96")
            if importer is not None:
                tag(ui.button("New crew", icon="add", on_click=lambda: ui.navigate.to("/crews/new")), "crews-new")
                tag(
                    ui.button("Import CrewAI project", icon="upload_file", on_click=importer.open).props("outline"),
                    "crews-import",
                )
        found = SearchList(
            page,
            testid="crews",
            label="Search crews by name or description",
            load=services.crews.list_crews,
            row=crew_row,
            empty=lambda: empty_state(page, importer),
        )
        await found.fill(page.ctx)

    # Registered before `/crews/{crew_id}`, which would take "new" for an id.
    @pages.tenant_page("/crews/new", Role.EDITOR, title="New crew")
    async def new_crew_page(page: PageView) -> None:
        world = await CrewWorld.load(services, page.ctx)
        tag(ui.link("← All crews", "/crews"), "crew-back")
        if not world.tasks:
            with tag(ui.row().classes("items-center gap-2 rounded-md border p-3"), "crew-needs-records"):
                ui.icon("info", color="info").props("aria-hidden=true")
                ui.label("A crew is made of agents and tasks: create them first on the")
                ui.link("Agents", "/agents")
                ui.label("and")
                ui.link("Tasks", "/tasks")
                ui.label("pages.")

        async def created(crew: CrewView) -> None:
            ui.navigate.to(f"/crews/{crew.id}")

        CrewEditor(page, None, world, created)

    @pages.tenant_page("/crews/{crew_id}", Role.VIEWER, title="Crew")
    async def crew_page(page: PageView, crew_id: str) -> None:
        crew = await services.crews.get_crew(page.ctx, record_id(crew_id))  # NotFound: the not-found page
        world = await CrewWorld.load(services, page.ctx)
        page.heading.set_text(f"Crew {crew.name}")
        ui.page_title(f"Crew {crew.name} · CrewCanvas")

        async def export(ctx: TenantContext) -> None:
            exported = await projects(services).export(ctx, crew.id)
            ui.download(exported.data, exported.filename, "application/zip")

        async def delete(ctx: TenantContext) -> None:
            name = editor.crew.name if editor.crew is not None else crew.name
            if await confirm(f"Delete crew {name}?", detail="Its agents and tasks stay; only the crew goes."):
                await services.crews.delete_crew(ctx, crew.id)
                ui.notify(f"Crew {name} deleted.", type="positive")
                ui.navigate.to("/crews")

        with ui.row().classes("w-full items-center gap-2"):
            tag(ui.link("← All crews", "/crews"), "crew-back")
            ui.space()
            export_button = tag(ui.button("Export", icon="download", on_click=page.action(export)), "crew-export")
            export_button.props("outline")
            export_button.props["title"] = "Download the crew as a CrewAI project (.zip)"
            if page.can_edit:
                tag(
                    ui.button("Delete", icon="delete", color="negative", on_click=page.action(delete, Role.EDITOR)),
                    "crew-delete",
                ).props("outline")
            else:
                tag(ui.label("Read-only: changing a crew needs the editor role."), "crew-read-only").classes(
                    "text-slate-600"
                )

        async def saved(view: CrewView) -> None:
            page.heading.set_text(f"Crew {view.name}")
            panel.show_inputs(view)
            ui.notify(f"Crew {view.name} saved.", type="positive")

        editor = CrewEditor(page, crew, world, saved)
        panel = CrewTestPanel(page, crew)
