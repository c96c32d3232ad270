"""Flows as files: download a flow's export, import one, and export it as CrewAI's `crewai.flow/v1`.

The flow file is what `FlowService.export` produces (`crewcanvas.flow-export/v1`: the
document plus the names of the tools, providers, crews and flows it refers to); importing
matches those by name in this workspace and reports what it could not find. The CrewAI
export is the same function the API's `/api/flows/{id}/export/crewai` answers with.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Awaitable, Callable

import yaml
from nicegui import ui
from nicegui.elements.upload_files import FileUpload
from nicegui.events import UploadEventArguments

from core.context import Role, TenantContext
from core.errors import CoreError, InvalidInput
from core.flow_store import FlowRecord
from executor.crewai.declarative import DeclarativeExport, export_saved_flow
from executor.errors import ExecutorError, FlowInvalid
from ui.code_blocks import code_block
from ui.run_view import tag
from ui.tenant_page import PageView
from wiring.services import Services

MAX_FLOW_FILE = 10 * 1024 * 1024


def file_stem(name: str) -> str:
    """A file name from a flow's name (letters, digits, `-` and `_`)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower() or "flow"


async def download_flow(services: Services, ctx: TenantContext, flow: FlowRecord) -> None:
    """Send the browser the flow's latest version as a flow file."""
    exported = await services.flows.export(ctx, flow.id)
    data = json.dumps(exported, indent=2, ensure_ascii=False).encode()
    ui.download.content(data, f"{file_stem(flow.name)}.flow.json", "application/json")


async def import_dialog(page: PageView, *, on_done: Callable[[], Awaitable[None]]) -> None:
    """A dialog that takes a flow file, imports it as a new flow and reports how it went."""

    async def take(ctx: TenantContext, file: FileUpload) -> None:
        try:
            payload = json.loads(await file.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"'{file.name}' is not a JSON file ({exc}); choose a flow file from Export") from exc
        if not isinstance(payload, dict):
            raise InvalidInput(f"'{file.name}' is not a flow file; choose one made by a flow's Export")
        report.clear()
        try:
            result = await page.services.flows.import_(ctx, payload)
        except FlowInvalid as exc:  # not a CoreError: the document inside is not a flow document
            with report:
                tag(ui.label("Nothing was imported: the flow in this file is not valid."), "import-failed")
                for problem in exc.problems:
                    ui.label(f"{problem.field}: {problem.message}").classes("text-sm text-negative")
            return
        upload.reset()
        with report:
            with ui.row().classes("items-center gap-2"):
                ui.icon("check_circle", color="positive")
                tag(ui.label(f"Imported as the flow '{result.flow.name}'."), "import-done")
            if result.missing:
                ui.label("Not found in this workspace (the nodes using them need one chosen before it runs):")
                with tag(ui.column().classes("gap-0"), "import-missing"):
                    for item in result.missing:
                        named = f"'{item['name']}'" if item.get("name") else "(no name in the file)"
                        ui.label(f"{item['kind']} {named}, id {item['id']}").classes("text-sm")
            else:
                ui.label("Everything it refers to was found here.").classes("text-sm text-slate-600")
            if result.problems:
                ui.label(f"It cannot run yet: {len(result.problems)} problem(s); its page lists them.").classes(
                    "text-sm"
                )
            tag(ui.link("Open the flow", f"/flows/{result.flow.id}"), "import-open")
        await on_done()

    def uploaded(event: UploadEventArguments) -> Awaitable[None]:
        return page.action(lambda ctx: take(ctx, event.file), Role.EDITOR)()

    with ui.dialog() as dialog, tag(ui.card().classes("w-full max-w-xl"), "import-dialog"):
        ui.label("Import a flow").classes("text-lg font-semibold")
        ui.label(
            "Choose a flow file (.json) made by a flow's Export, here or in another workspace. It becomes a new "
            "flow; the tools, providers, crews and flows it uses are matched by name."
        ).classes("text-slate-600")
        upload = ui.upload(
            label="Flow file",
            auto_upload=True,
            max_file_size=MAX_FLOW_FILE,
            on_upload=uploaded,
            on_rejected=lambda: ui.notify("That file is over 10 MiB; a flow file is much smaller", type="negative"),
        ).props('accept=".json,application/json" flat bordered')
        tag(upload.classes("w-full"), "import-file")
        report = ui.column().classes("w-full gap-1")
        with ui.row().classes("w-full justify-end"):
            tag(ui.button("Close", on_click=dialog.close).props("flat"), "import-close")
    dialog.on("hide", dialog.delete)
    dialog.open()


async def crewai_export_dialog(services: Services, ctx: TenantContext, flow: FlowRecord) -> None:
    """Show the flow as `crewai.flow/v1` (YAML), what did not map, and offer it as files."""
    with ui.dialog() as dialog, tag(ui.card().classes("w-full max-w-3xl"), "crewai-dialog"):
        ui.label(f"{flow.name} as a CrewAI flow (crewai.flow/v1)").classes("text-lg font-semibold")
        body = ui.column().classes("w-full gap-2")
        with body, ui.row().classes("items-center gap-2"):
            ui.spinner()
            ui.label("Exporting; the first export of this server loads CrewAI, which takes a moment.")
        with ui.row().classes("w-full justify-end gap-2"):
            downloads = ui.row().classes("gap-2")
            tag(ui.button("Close", on_click=dialog.close).props("flat"), "crewai-close")
    dialog.on("hide", dialog.delete)
    dialog.open()
    try:
        exported = await export_saved_flow(
            ctx,
            flow.id,
            flows=services.flows,
            crews=services.crews,
            tools=services.tools,
            providers=services.llm_stack.providers,
        )
    except CoreError:
        dialog.close()  # the page's action handler reports it
        raise
    except ExecutorError as exc:  # not a CoreError: the export was refused, saying why
        if not dialog.is_deleted:
            body.clear()
            with body:
                failed = tag(ui.label(f"Could not export it: {exc}").props("role=alert"), "crewai-failed")
                failed.classes("text-negative")
        return
    if dialog.is_deleted:
        return  # closed while it was exporting
    _show_export(flow, exported, body, downloads)


def _show_export(flow: FlowRecord, exported: DeclarativeExport, body: ui.column, downloads: ui.row) -> None:
    text = yaml.safe_dump(exported.document, sort_keys=False, allow_unicode=True)
    stem = file_stem(flow.name)
    yaml_bytes = text.encode()
    json_bytes = json.dumps(exported.document, indent=2, ensure_ascii=False).encode()
    body.clear()
    with body:
        _unmapped(exported)
        tag(
            code_block(text, label="CrewAI flow", language="yaml").classes("w-full max-h-96 overflow-auto"),
            "crewai-document",
        )
        if exported.files:
            names = ", ".join(sorted(exported.files))
            ui.label(f"Its tools come as Python modules ({names}): the .zip holds them with the flow.").classes(
                "text-sm"
            )
    with downloads:
        save_yaml = tag(ui.button("Download YAML"), "crewai-yaml")
        save_yaml.on_click(lambda: ui.download.content(yaml_bytes, f"{stem}.crewai.yaml", "application/yaml"))
        save_json = tag(ui.button("Download JSON").props("outline"), "crewai-json")
        save_json.on_click(lambda: ui.download.content(json_bytes, f"{stem}.crewai.json", "application/json"))
        if exported.files:
            archive = _zipped(f"{stem}.crewai.yaml", yaml_bytes, exported.files)
            save_zip = tag(ui.button("Download .zip").props("outline"), "crewai-zip")
            save_zip.on_click(lambda: ui.download.content(archive, f"{stem}.crewai.zip", "application/zip"))


def _unmapped(exported: DeclarativeExport) -> None:
    if not exported.unmapped and not exported.notes:
        tag(ui.label("Every node maps to crewai.flow/v1."), "crewai-all-mapped").classes("text-slate-600")
        return
    if exported.unmapped:
        ui.label("These nodes have no crewai.flow/v1 equivalent and are left out:").classes("font-medium")
        with tag(ui.column().classes("gap-0"), "crewai-unmapped"):
            for item in exported.unmapped:
                ui.label(f"{item.node_id} ({item.type}): {item.reason}").classes("text-sm")
    if exported.notes:
        ui.label("Notes:").classes("font-medium")
        with tag(ui.column().classes("gap-0"), "crewai-notes"):
            for note in exported.notes:
                where = f"{note.node_id}: " if note.node_id else ""
                ui.label(f"{where}{note.message}").classes("text-sm")


def _zipped(document_name: str, document: bytes, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(document_name, document)
        for name, content in sorted(files.items()):
            archive.writestr(name, content)
    return buffer.getvalue()
