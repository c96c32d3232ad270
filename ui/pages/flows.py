"""Flows: the workspace's flows, importing and exporting them, and one flow's page with its versions and runs.

`/flows` lists the flows (search, import a flow file, export as a flow file or as CrewAI's
`crewai.flow/v1`, delete). `/flows/{id}` edits the name and description, lists the versions
(view a document, restore one as the newest), starts a run with a form made from the flow's
declared inputs, and shows its run history (`ui.flow_history`). The graph itself is not edited on these pages:
a version's document is shown read-only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui
from pydantic import BaseModel, ConfigDict, Field

from core.context import Role, TenantContext
from core.errors import InvalidInput, Problem
from core.flow_store import FlowRecord
from core.text import Name, Text
from executor.document import parse_document
from executor.errors import FlowInvalid, FlowProblem
from ui.code_blocks import json_block
from ui.dialogs import confirm
from ui.flow_files import crewai_export_dialog, download_flow, import_dialog
from ui.flow_history import FlowHistory
from ui.forms import FieldOptions, ModelForm
from ui.run_inputs import input_values, inputs_form
from ui.run_view import tag, when
from ui.session import current_context
from ui.tenant_page import Pages, PageView, record_id
from wiring.services import Services


class FlowDetails(BaseModel):
    """A flow's name and description (its document is versioned apart)."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="What the flow is called in lists and in runs.")
    description: Text = Field(default="", description="What it does, for the people who run it.")


def _problem_lines(problems: list[FlowProblem]) -> list[str]:
    return [f"node {p.node_id}: {p.field}: {p.message}" if p.node_id else f"{p.field}: {p.message}" for p in problems]


def _problem_box(problems: list[FlowProblem], *, test: str, intro: str) -> None:
    with tag(ui.column().classes("w-full gap-1 p-3 rounded bg-amber-100 text-amber-950").props("role=alert"), test):
        ui.label(intro).classes("font-semibold")
        for line in _problem_lines(problems):
            ui.label(line).classes("text-sm")


def register(pages: Pages) -> None:
    """`/flows` and `/flows/{flow_id}`."""
    services = pages.services

    @pages.tenant_page("/flows", Role.VIEWER, title="Flows")
    async def flows_page(page: PageView) -> None:
        """The workspace's flows with search, import, export and delete."""
        FlowList(page, await services.flows.list(page.ctx))

    @pages.tenant_page("/flows/{flow_id}", Role.VIEWER, title="Flow")
    async def flow_page(page: PageView, flow_id: str) -> None:
        """One flow: details, versions, a run form from its inputs, and its run history."""
        flow = await services.flows.get(page.ctx, record_id(flow_id))
        page.heading.set_text(flow.name)
        await FlowPage(page, flow).draw()


class FlowList:
    """The list of flows, filtered by the search box."""

    def __init__(self, page: PageView, flows: list[FlowRecord]) -> None:
        self.page = page
        self.services: Services = page.services
        self.flows = flows
        ui.label(
            "A flow is a graph of steps (inputs, LLM calls, tools, agents and crews, approvals, outputs) "
            "that runs as one job, with every step recorded."
        ).classes("text-slate-600")
        with ui.row().classes("w-full items-center gap-2"):
            self.search = tag(ui.input("Search flows", on_change=self.draw).props("clearable"), "flows-search")
            self.search.classes("flex-1")
            if page.can_edit:
                opener = page.action(lambda ctx: import_dialog(self.page, on_done=self.reload), Role.EDITOR)
                tag(ui.button("Import flow", icon="upload_file", on_click=opener).props("outline"), "flows-import")
                tag(ui.button("New flow", icon="add", on_click=lambda: new_flow_dialog(self.page)), "flows-new")
        self.body = ui.column().classes("w-full gap-2")
        self.draw()

    async def reload(self) -> None:
        self.flows = await self.services.flows.list(self.page.ctx)
        self.draw()

    def draw(self) -> None:
        self.body.clear()
        with self.body:
            if not self.flows:
                self._empty()
                return
            needle = (self.search.value or "").strip().lower()
            shown = [f for f in self.flows if needle in f.name.lower() or needle in f.description.lower()]
            if not shown:
                tag(ui.label(f"No flow matches '{needle}'."), "flows-no-match").classes("text-slate-600")
                return
            with tag(ui.list().props("bordered separator").classes("w-full rounded-md"), "flows-list"):
                for flow in shown:
                    self._row(flow)

    def _empty(self) -> None:
        with tag(ui.column().classes("w-full items-center gap-2 py-8 text-center"), "flows-empty"):
            ui.icon("account_tree", size="3rem").classes("text-primary")
            ui.label("No flows in this workspace yet.").classes("text-lg")
            if self.page.can_edit:
                ui.label("Start one with New flow above, or import a flow file exported from another workspace.")
            else:
                ui.label("An editor of this workspace can import one.")
            ui.label("Programs can create flows too: POST /api/flows (see /api/docs).").classes("text-slate-600")

    def _row(self, flow: FlowRecord) -> None:
        with tag(ui.item(), f"flow-{flow.id}"):
            with ui.item_section():
                tag(ui.link(flow.name, f"/flows/{flow.id}"), f"flow-open-{flow.id}").classes("font-semibold")
                if flow.description:
                    ui.item_label(flow.description).props("caption lines=2")
                ui.item_label(f"version {flow.latest_version} · updated {when(flow.updated_at)}").props("caption")
            with ui.item_section().props("side"), ui.row().classes("gap-1"):
                flow_actions(self.page, flow, after_delete=self.reload)


def new_flow_dialog(page: PageView) -> None:
    """Ask for a name, create the flow (an input and an output node) and open it in the editor."""

    async def create(details: BaseModel) -> None:
        assert isinstance(details, FlowDetails)
        ctx = await page.fresh(Role.EDITOR)
        if ctx is None:
            return
        saved = await page.services.flows.create(ctx, details.name, details.description)
        dialog.close()
        ui.navigate.to(f"/flows/{saved.version.flow_id}/edit")

    with ui.dialog() as dialog, ui.card().classes("w-[28rem]"):
        ui.label("New flow").classes("text-lg font-semibold")
        ModelForm(
            FlowDetails,
            on_submit=create,
            submit_label="Create and open",
            fields={"description": FieldOptions(widget="textarea")},
            testid="new-flow",
        )
        ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()


def flow_actions(page: PageView, flow: FlowRecord, *, after_delete: Callable[[], Awaitable[None]]) -> None:
    """Open in the editor, export, export as CrewAI and (editors) delete, for one flow."""
    verb = "Edit" if page.can_edit else "Open"
    tag(
        ui.button(verb, icon="draw", on_click=lambda: ui.navigate.to(f"/flows/{flow.id}/edit"))
        .props("flat dense no-caps")
        .props(f'aria-label="{verb} {flow.name} in the editor"'),
        f"flow-edit-{flow.id}",
    )

    async def delete(ctx: TenantContext) -> None:
        if not await confirm(
            f"Delete the flow '{flow.name}'?",
            detail="Its versions and runs are deleted with it. This cannot be undone.",
            testid=f"confirm-delete-{flow.id}",
        ):
            return
        await page.services.flows.delete(ctx, flow.id)
        ui.notify(f"Deleted the flow '{flow.name}'", type="positive")
        await after_delete()

    export = page.action(lambda ctx: download_flow(page.services, ctx, flow))
    as_file = tag(ui.button("Export", icon="download", on_click=export).props("flat dense"), f"flow-export-{flow.id}")
    as_file.props["aria-label"] = f"Export {flow.name} as a flow file"
    crewai = page.action(lambda ctx: crewai_export_dialog(page.services, ctx, flow))
    as_crewai = tag(
        ui.button("CrewAI", icon="ios_share", on_click=crewai).props("flat dense"), f"flow-crewai-{flow.id}"
    )
    as_crewai.props["aria-label"] = f"Export {flow.name} as a CrewAI flow"
    if page.can_edit:
        button = ui.button(icon="delete", color="negative", on_click=page.action(delete, Role.EDITOR))
        button.props("flat dense round")
        button.props["aria-label"] = f"Delete {flow.name}"
        tag(button, f"flow-delete-{flow.id}")


class FlowPage:
    """One flow's page."""

    def __init__(self, page: PageView, flow: FlowRecord) -> None:
        self.page = page
        self.services: Services = page.services
        self.flow = flow

    async def draw(self) -> None:
        page, flow = self.page, self.flow
        with ui.row().classes("w-full items-center gap-2"):
            self.version_label = tag(ui.label(f"version {flow.latest_version}"), "flow-version")
            self.version_label.classes("text-slate-600")
            ui.space()

            async def back_to_list() -> None:
                ui.navigate.to("/flows")

            flow_actions(page, flow, after_delete=back_to_list)
        with ui.card().classes("w-full"):
            ui.label("Details").classes("text-lg font-semibold")
            ModelForm(
                FlowDetails,
                value={"name": flow.name, "description": flow.description},
                on_submit=self._rename,
                read_only=not page.can_edit,
                fields={"description": FieldOptions(widget="textarea")},
                testid="flow-details",
            )
        self.run_box = ui.card().classes("w-full")
        self.versions_box = ui.card().classes("w-full")
        await self._draw_run()
        await self._draw_versions()
        with ui.card().classes("w-full"):
            ui.label("History").classes("text-lg font-semibold")
            await FlowHistory(page, flow.id).show(page.ctx)
            tag(ui.link("Every run of the workspace", "/runs"), "flow-all-runs")

    async def _rename(self, details: BaseModel) -> None:
        assert isinstance(details, FlowDetails)
        ctx = await current_context(self.services, Role.EDITOR)
        if ctx is None:
            return
        self.flow = await self.services.flows.rename(
            ctx, self.flow.id, name=details.name, description=details.description
        )
        self.page.heading.set_text(self.flow.name)
        ui.notify("Saved", type="positive")

    async def _draw_run(self) -> None:
        """The Run form from the latest version's inputs, or what stops that version from running."""
        latest = await self.services.flows.version(self.page.ctx, self.flow.id)
        document = parse_document(latest.document)
        problems = await self.services.flows.validate(self.page.ctx, document, flow_id=self.flow.id)
        self.run_box.clear()
        with self.run_box:
            ui.label(f"Run version {latest.version}").classes("text-lg font-semibold")
            if problems:
                _problem_box(
                    problems,
                    test="flow-problems",
                    intro="This version cannot run until these problems are fixed (import a corrected "
                    "flow file, or save a new version through the API):",
                )
                return
            if not self.page.can_edit:
                ui.label("Editors of this workspace can run this flow.").classes("text-slate-600")
                return
            if not document.inputs:
                ui.label("This flow takes no inputs.").classes("text-slate-600")
            self.run_errors = ui.column().classes("w-full")
            inputs_form(document.inputs, on_submit=self._run)

    async def _run(self, values: BaseModel) -> None:
        ctx = await current_context(self.services, Role.EDITOR)
        if ctx is None:
            return
        inputs = input_values(values)
        self.run_errors.clear()
        try:
            execution = await self.services.executions.start_run(ctx, self.flow.id, inputs)
        except InvalidInput as exc:
            # The service names inputs `inputs.<name>`; the form's fields are the names themselves.
            problems = [Problem(p.field.removeprefix("inputs."), p.message) for p in exc.problems]
            raise InvalidInput(str(exc), problems=problems) from exc
        except FlowInvalid as exc:  # saved meanwhile with problems; not a CoreError, so shown here
            with self.run_errors:
                _problem_box(exc.problems, test="run-problems", intro="The flow cannot run:")
            return
        ui.navigate.to(f"/runs/{execution.id}")

    async def _draw_versions(self) -> None:
        versions = await self.services.flows.versions(self.page.ctx, self.flow.id)
        self.versions_box.clear()
        with self.versions_box:
            ui.label("Versions").classes("text-lg font-semibold")
            ui.label("Every save is a new version; runs keep the version they ran.").classes("text-slate-600")
            with tag(ui.list().props("separator").classes("w-full"), "flow-versions"):
                for version in versions:
                    with (
                        tag(ui.item(), f"version-{version.version}"),
                        ui.item_section(),
                        ui.row().classes("w-full items-center gap-2"),
                    ):
                        ui.label(f"Version {version.version}").classes("font-semibold")
                        ui.label(when(version.created_at)).classes("text-sm text-slate-600")
                        if version.message:
                            ui.label(version.message).classes("text-sm")
                        ui.space()
                        self._version_buttons(version.version)

    def _version_buttons(self, number: int) -> None:
        show = self.page.action(lambda ctx: self._show_version(ctx, number))
        tag(ui.button("View", on_click=show).props("flat dense"), f"version-view-{number}")
        if self.page.can_edit and number != self.flow.latest_version:
            restore = self.page.action(lambda ctx: self._restore(ctx, number), Role.EDITOR)
            tag(ui.button("Restore", on_click=restore).props("flat dense"), f"version-restore-{number}")

    async def _show_version(self, ctx: TenantContext, number: int) -> None:
        version = await self.services.flows.version(ctx, self.flow.id, number)
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-3xl"):
            ui.label(f"{self.flow.name} · version {number}").classes("text-lg font-semibold")
            tag(json_block(version.document, label="version's document").classes("w-full"), "version-document")
            with ui.row().classes("w-full justify-end"):
                tag(ui.button("Close", on_click=dialog.close).props("flat"), "version-close")
        dialog.on("hide", dialog.delete)
        dialog.open()

    async def _restore(self, ctx: TenantContext, number: int) -> None:
        saved = await self.services.flows.restore(ctx, self.flow.id, number)
        self.flow = await self.services.flows.get(ctx, self.flow.id)
        self.version_label.set_text(f"version {self.flow.latest_version}")
        ui.notify(f"Version {number} is now the latest, as version {saved.version.version}", type="positive")
        await self._draw_run()
        await self._draw_versions()
