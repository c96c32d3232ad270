"""/inbox, "Waiting for you": every run of the workspace that waits for a person's answer.

A run stops here when it reaches a human approval node (`executor.nodes.human`). Each
item names the flow and version, when the node started waiting and who started the run,
shows the question with its answers (`ui.human_answer.HumanAnswer`) and links to the run
page and to the flow editor with the run on the canvas. Items are newest first by when they
started waiting; an answered item leaves the list at once. Runs paused at a breakpoint are
not questions for a person and stay on the runs page.

One read of the waiting runs (`executions.list(status="waiting")` brings their waiting node
runs along), plus the flow names and the members when something waits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from nicegui import ui

from core.context import Role, TenantContext
from core.executions import ExecutionRecord, NodeRunRecord
from ui.human_answer import HumanAnswer, question_of
from ui.records import tag
from ui.run_view import when
from ui.tenant_page import Pages, PageView

#: Waiting runs read for the page; more than this and the page points to /runs?status=waiting.
LIMIT = 100
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class WaitingRun:
    """A run with the human nodes it waits at."""

    record: ExecutionRecord
    asking: list[NodeRunRecord]

    @property
    def since(self) -> datetime | None:
        """When it started waiting (its first question's node started; the node asks at once)."""
        moments = [run.started_at for run in self.asking if run.started_at is not None]
        return min(moments) if moments else self.record.started_at


def waiting_runs(records: list[ExecutionRecord]) -> list[WaitingRun]:
    """The runs that ask a person something, the most recent question first."""
    found = []
    for record in records:
        asking = [run for run in record.node_runs if question_of(run) is not None]
        if asking:
            found.append(WaitingRun(record, asking))
    return sorted(found, key=lambda item: _aware(item.since), reverse=True)


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return _OLDEST
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Inbox:
    """The list of waiting runs on the page, read again after each answer."""

    def __init__(self, page: PageView) -> None:
        self.page = page
        self.services = page.services
        self.items = tag(ui.column().classes("w-full gap-3"), "inbox-items")

    async def fill(self, ctx: TenantContext) -> None:
        """Read what waits now and draw it."""
        found = await self.services.executions.list(ctx, status="waiting", limit=LIMIT)
        items = waiting_runs(found.items)
        flows: dict[uuid.UUID, str] = {}
        people: dict[uuid.UUID, str] = {}
        if items:
            flows = {flow.id: flow.name for flow in await self.services.flows.list(ctx)}
            members = await self.services.identity.members.list_members(ctx)
            people = {member.user_id: member.display_name or member.email for member in members}
            if ctx.user_id is not None:
                people[ctx.user_id] = "you"
        if self.items.is_deleted:
            return  # the page went away while it was read
        self.items.clear()
        with self.items:
            if not items:
                self._empty()
            for item in items:
                self._item(item, flows, people)
            if found.next_before is not None:
                with tag(ui.row().classes("gap-1 text-slate-600"), "inbox-more"):
                    ui.label(f"Showing the {LIMIT} newest waiting runs;")
                    ui.link("see all of them on the runs page", "/runs?status=waiting")

    async def answered(self, record: ExecutionRecord) -> None:
        """An answer went in (or someone else's was found): the list as it is now."""
        await self.fill(self.page.ctx)

    def _item(self, item: WaitingRun, flows: dict[uuid.UUID, str], people: dict[uuid.UUID, str]) -> None:
        record = item.record
        flow = "an unsaved document" if record.flow_id is None else flows.get(record.flow_id, "a deleted flow")
        version = f" · v{record.version}" if record.version is not None else ""
        who = "the system" if record.started_by is None else people.get(record.started_by, "a former member")
        with tag(ui.card().classes("w-full gap-3"), f"inbox-{record.id}"):
            with ui.column().classes("w-full gap-0"):
                tag(ui.label(f"{flow}{version}"), f"inbox-flow-{record.id}").classes("text-lg font-semibold")
                ui.label(
                    f"Waiting since {when(item.since)} · run started by {who} on {when(record.started_at)}"
                ).classes("text-sm text-slate-600")
            for run in item.asking:
                HumanAnswer(self.page, record.id, run, on_answered=self.answered)
            with ui.row().classes("gap-4"):
                tag(ui.link("Open the run", f"/runs/{record.id}"), f"inbox-run-{record.id}")
                if record.flow_id is not None:
                    editor = f"/flows/{record.flow_id}/edit?run={record.id}"
                    tag(ui.link("Open in the flow editor", editor), f"inbox-editor-{record.id}")

    def _empty(self) -> None:
        with tag(ui.column().classes("w-full items-center gap-2 py-8 text-center"), "inbox-empty"):
            ui.icon("inbox", size="3rem").classes("text-primary")
            ui.label("Nothing is waiting for you").classes("text-lg")
            ui.label(
                "A run stops here when it reaches a human approval node: someone approves, edits or rejects "
                "its value, and the run goes on."
            ).classes("text-slate-600")


def register(pages: Pages) -> None:
    """`/inbox`."""

    @pages.tenant_page("/inbox", Role.VIEWER, title="Waiting for you")
    async def inbox_page(page: PageView) -> None:
        """Runs waiting for a person's answer, newest first, answered in place."""
        with ui.row().classes("w-full items-center justify-between gap-2"):
            if page.can_edit:
                intro = "Runs waiting at a human approval node. Approve, edit or reject here, or open the run."
            else:
                intro = "Runs waiting at a human approval node. An editor of this workspace answers them."
            ui.label(intro).classes("text-slate-600")
            refresh = ui.button("Refresh", icon="refresh").props("outline")
        inbox = Inbox(page)
        refresh.on_click(page.action(inbox.fill))
        tag(refresh, "inbox-refresh")
        await inbox.fill(page.ctx)
