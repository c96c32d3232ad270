"""A flow's execution history: a table of its runs with who started them, when, how long, tokens and cost.

    history = FlowHistory(page, flow.id)
    await history.show(page.ctx)

Runs come newest first, `PAGE_SIZE` at a time; Older goes back in time with the service's
paging keys, Newer and Newest come back. Each row links to the run's page and to its trace.
Tokens and cost are summed for the whole page in one query (`ExecutionStore.usage`), not
read run by run; who started a run is the member's display name, else their email.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from nicegui import ui

from core.auth.members import MemberInfo
from core.context import TenantContext
from core.executions import ExecutionPage, ExecutionRecord, ExecutionUsage
from ui.records import tag
from ui.run_view import duration, origin, status_badge, when
from ui.tenant_page import PageView
from ui.trace_rows import cost_text

PAGE_SIZE = 20
_COLUMNS = ("Status", "Version", "Started by", "Started", "Duration", "Tokens", "Cost", "Open")
_CELL = "px-2 py-1 text-left align-middle"
_RULE = "border-slate-500/30"

Cursor = tuple[datetime | None, uuid.UUID | None]


def starter_name(started_by: uuid.UUID | None, members: Mapping[uuid.UUID, MemberInfo]) -> str:
    """Who started a run, for people: a member's display name, else their email."""
    if started_by is None:
        return "unknown"
    member = members.get(started_by)
    if member is None:
        return "a former member"
    return member.display_name or member.email


async def member_names(page: PageView, ctx: TenantContext) -> dict[uuid.UUID, MemberInfo]:
    """The workspace's members by user id."""
    return {member.user_id: member for member in await page.services.identity.members.list_members(ctx)}


class FlowHistory:
    """The runs of one flow as a table with paging; `show` draws a page of it."""

    def __init__(self, page: PageView, flow_id: uuid.UUID) -> None:
        self.page = page
        self.flow_id = flow_id
        self.members: dict[uuid.UUID, MemberInfo] | None = None
        self.shown: Cursor = (None, None)
        self.newer: list[Cursor] = []  # the keys of the pages before this one, to come back
        self.root = tag(ui.column().classes("w-full gap-2"), "flow-history")

    async def show(
        self, ctx: TenantContext, before: datetime | None = None, before_id: uuid.UUID | None = None
    ) -> None:
        """Draw the page of runs that started before `before` (the newest page without it)."""
        services = self.page.services
        found = await services.executions.list(
            ctx, flow_id=self.flow_id, limit=PAGE_SIZE, before=before, before_id=before_id
        )
        usage = await services.executions.store.usage(ctx, [record.id for record in found.items])
        if self.members is None:
            self.members = await member_names(self.page, ctx)
        self.shown = (before, before_id)
        self.root.clear()
        with self.root:
            if not found.items:
                self._empty(first_page=before is None)
            else:
                self._table(found.items, usage)
            self._paging(found)

    async def _older(self, ctx: TenantContext, before: datetime | None, before_id: uuid.UUID | None) -> None:
        self.newer.append(self.shown)
        await self.show(ctx, before, before_id)

    async def _newer(self, ctx: TenantContext) -> None:
        before, before_id = self.newer.pop() if self.newer else (None, None)
        await self.show(ctx, before, before_id)

    async def _newest(self, ctx: TenantContext) -> None:
        self.newer.clear()
        await self.show(ctx)

    def _empty(self, *, first_page: bool) -> None:
        with tag(ui.column().classes("w-full items-center gap-1 py-4 text-center"), "flow-history-empty"):
            if not first_page:
                ui.label("No older runs.").classes("text-slate-600")
                return
            ui.icon("history", size="2rem").classes("text-primary")
            ui.label("No runs of this flow yet.").classes("font-semibold")
            if self.page.can_edit:
                ui.label("Fill in the Run form above and press Run; every run shows up here with its trace.")
            else:
                ui.label("An editor of this workspace can run it; every run shows up here with its trace.")
            ui.label(f"Programs start runs with POST /api/flows/{self.flow_id}/executions.").classes(
                "text-sm text-slate-600"
            )

    def _table(self, records: list[ExecutionRecord], usage: Mapping[uuid.UUID, ExecutionUsage]) -> None:
        members = self.members or {}
        with ui.element("div").classes("w-full overflow-x-auto"):
            table = tag(ui.element("table").classes("w-full text-sm border-collapse"), "flow-history-table")
            with table:
                with ui.element("caption").classes("sr-only"):
                    ui.label("Runs of this flow, newest first")
                with ui.element("thead"), ui.element("tr").classes(f"border-b {_RULE}"):
                    for name in _COLUMNS:
                        with ui.element("th").props("scope=col").classes(_CELL + " font-semibold"):
                            ui.label(name)
                with ui.element("tbody"):
                    for record in records:
                        self._row(record, usage.get(record.id, ExecutionUsage()), members)

    def _row(self, record: ExecutionRecord, used: ExecutionUsage, members: Mapping[uuid.UUID, MemberInfo]) -> None:
        started = when(record.started_at)
        who = starter_name(record.started_by, members)
        with tag(ui.element("tr").classes(f"border-b last:border-b-0 {_RULE}"), f"history-{record.id}"):
            with ui.element("td").classes(_CELL):
                status_badge(record.status, test=f"history-status-{record.id}")
            with ui.element("td").classes(_CELL):
                ui.label(f"v{record.version}" if record.version is not None else "—")
            with ui.element("td").classes(_CELL):
                tag(ui.label(who), f"history-who-{record.id}")
                if origin(record) != "run":
                    ui.label(origin(record)).classes("text-xs text-slate-600")
            with ui.element("td").classes(_CELL + " whitespace-nowrap"):
                ui.label(started)
            with ui.element("td").classes(_CELL + " whitespace-nowrap"):
                ui.label(duration(record.started_at, record.finished_at))
            with ui.element("td").classes(_CELL):
                tag(ui.label(str(used.tokens)), f"history-tokens-{record.id}")
            with ui.element("td").classes(_CELL):
                tag(ui.label(cost_text(used.cost_usd)), f"history-cost-{record.id}")
            with ui.element("td").classes(_CELL + " whitespace-nowrap"), ui.row().classes("gap-3 no-wrap"):
                run = tag(ui.link("Run", f"/runs/{record.id}"), f"history-run-{record.id}")
                run.props["aria-label"] = f"Open the run started {started} by {who}"
                trace = tag(ui.link("Trace", f"/runs/{record.id}/trace"), f"history-trace-{record.id}")
                trace.props["aria-label"] = f"Trace of the run started {started} by {who}"

    def _paging(self, found: ExecutionPage) -> None:
        if not self.newer and found.next_before is None:
            return
        with ui.row().classes("gap-2"):
            if self.newer:
                newest = self.page.action(self._newest)
                tag(ui.button("Newest", icon="first_page", on_click=newest).props("flat dense"), "history-newest")
                newer = self.page.action(self._newer)
                tag(ui.button("Newer", icon="chevron_left", on_click=newer).props("flat dense"), "history-newer")
            if found.next_before is not None:
                key = (found.next_before, found.next_before_id)
                older = self.page.action(lambda ctx: self._older(ctx, *key))
                tag(ui.button("Older", icon="chevron_right", on_click=older).props("flat dense"), "history-older")
