"""Runs: every run of the workspace's flows, newest first, and one run's page that follows it live.

`/runs?status=failed` filters by status; pages go back in time with `before`/`before_id`
(the keys the service hands out), so a page of runs has an address of its own.
`/runs/{id}` shows one run (see `ui.run_view.RunView`); another workspace's run, or an id
that is not one, is the not-found page.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlencode

from nicegui import ui

from core.context import Role
from ui.run_view import RunView, flow_name_of, run_rows, tag
from ui.tenant_page import Pages, PageView, record_id

PAGE_SIZE = 25
STATUSES: dict[str, str] = {
    "": "Any status",
    "running": "Running",
    "waiting": "Waiting for someone",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "interrupted": "Interrupted",
}


def runs_url(status: str = "", before: datetime | None = None, before_id: uuid.UUID | None = None) -> str:
    """The address of a page of runs."""
    query = {"status": status} if status else {}
    if before is not None:
        query["before"] = before.isoformat()
        if before_id is not None:
            query["before_id"] = str(before_id)
    return "/runs" + (f"?{urlencode(query)}" if query else "")


def _cursor(before: str | None, before_id: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    """The paging key from the address; a malformed one starts from the newest run."""
    try:
        moment = datetime.fromisoformat(before) if before else None
        key = uuid.UUID(before_id) if before_id and moment is not None else None
    except ValueError:
        return None, None
    return moment, key


def register(pages: Pages) -> None:
    """`/runs` and `/runs/{execution_id}`."""
    services = pages.services

    @pages.tenant_page("/runs", Role.VIEWER, title="Runs")
    async def runs_page(
        page: PageView, status: str = "", before: str | None = None, before_id: str | None = None
    ) -> None:
        """Runs newest first, a status filter and paging."""
        status = status if status in STATUSES else ""
        moment, key = _cursor(before, before_id)
        found = await services.executions.list(
            page.ctx, status=status or None, limit=PAGE_SIZE, before=moment, before_id=key
        )
        names = {flow.id: flow.name for flow in await services.flows.list(page.ctx)}
        ui.label("Every run of this workspace's flows, newest first. Open one to see its nodes and events.").classes(
            "text-slate-600"
        )
        choose = ui.select(
            STATUSES,
            value=status,
            label="Status",
            on_change=lambda event: ui.navigate.to(runs_url(str(event.value or ""))),
        )
        tag(choose.classes("w-64"), "runs-status")
        if not found.items:
            with tag(ui.column().classes("w-full items-center gap-2 py-8"), "runs-empty"):
                ui.icon("play_circle", size="3rem").classes("text-primary")
                if status or moment:
                    ui.label("No runs match.").classes("text-lg")
                    tag(ui.link("Show every run", "/runs"), "runs-all")
                else:
                    ui.label("No runs yet.").classes("text-lg")
                    ui.label("Open a flow and start it with Run; its runs show up here.").classes("text-slate-600")
                    tag(ui.link("Go to flows", "/flows"), "runs-to-flows")
            return
        run_rows(found.items, names)
        with ui.row().classes("gap-2"):
            if moment is not None:
                tag(ui.link("Newest runs", runs_url(status)), "runs-newest")
            if found.next_before is not None:
                older = runs_url(status, found.next_before, found.next_before_id)
                tag(ui.link("Older runs", older), "runs-older")

    @pages.tenant_page("/runs/{execution_id}", Role.VIEWER, title="Run")
    async def run_page(page: PageView, execution_id: str) -> None:
        """One run: status, inputs, outputs, nodes and events; live while it goes on."""
        record = await services.executions.get(page.ctx, record_id(execution_id))
        flow_name = await flow_name_of(services, page.ctx, record)
        page.heading.set_text(f"Run of {flow_name}" if flow_name else "Run")
        view = RunView(page, record, flow_name)
        await view.load_log()
        view.start()
