"""Runs on screen: status badges, the list rows of runs, and one run's page that follows it live.

`RunView` draws a run (status, inputs, outputs, error, every node run, the event log) and,
while the run goes on, follows its events in a task bound to the page's client: each
event is appended to the log, token text goes under its node as it is written, and the
run is read again (at most a few times a second) so node statuses, timings and the outputs
stay exact. The task stops at the run's final event, or when the client is deleted
(the tab closed and did not reconnect within NiceGUI's reconnect timeout).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

from nicegui import background_tasks, ui

from core.context import Role, TenantContext
from core.errors import NotFound
from core.executions import TERMINAL_STATUSES, EventRecord, ExecutionRecord, NodeRunRecord
from executor.watching import is_final
from ui.code_blocks import code_block, json_block, pretty
from ui.human_answer import HumanAnswer
from ui.tenant_page import PageView, notify_errors
from ui.trace_rows import seconds_text
from wiring.services import Services

STATUS_COLORS: dict[str, str] = {
    "running": "info",
    "waiting": "warning",
    "completed": "positive",
    "failed": "negative",
    "cancelled": "grey-8",
    "interrupted": "accent",
    "retrying": "warning",
    "skipped": "grey-8",
    "pinned": "secondary",
}
RETRYABLE = frozenset({"failed", "cancelled", "interrupted"})
MAX_LOG_EVENTS = 1000  # the page shows this many; the API (`/api/executions/{id}/events`) has every one
MAX_LOG_PAGES = 20  # of 500 stored events, read when the page opens
MAX_LIVE_TEXT = 20_000  # characters of streamed text kept per node (the full output arrives when it ends)
RELOAD_EVERY_S = 0.25


E = TypeVar("E", bound=ui.element)


def tag(element: E, testid: str) -> E:
    """Give `element` a test id: a `data-testid` for browsers and a marker for the simulated user."""
    element.props["data-testid"] = testid
    element.mark(testid)
    return element


def status_badge(status: str, *, test: str = "status") -> ui.badge:
    """A run's or node's status in words, on a colour that keeps AA contrast with white text."""
    badge = ui.badge(status, color=STATUS_COLORS.get(status, "grey-8"))
    badge.props["aria-label"] = f"Status: {status}"
    return tag(badge, test)


def when(moment: datetime | None) -> str:
    """A moment in UTC, to the second ('—' when there is none)."""
    if moment is None:
        return "—"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(start: datetime | None, end: datetime | None) -> str:
    """How long something took, in the unit that reads best ('—' until it has both ends)."""
    return seconds_text((end - start).total_seconds() if start is not None and end is not None else None)


def origin(record: ExecutionRecord) -> str:
    """What started a run, in a few words."""
    if record.parent_execution_id is not None:
        return f"subflow of node {record.parent_node_id}"
    options = record.options
    if options.get("origin"):
        return str(options["origin"])
    if options.get("retry_of"):
        return "retry"
    if options.get("from_node"):
        return f"from node {options['from_node']}"
    return "run"


async def flow_name_of(services: Services, ctx: TenantContext, record: ExecutionRecord) -> str | None:
    """The name of the flow a run ran, or None (an unsaved document, or a flow deleted since)."""
    if record.flow_id is None:
        return None
    try:
        return (await services.flows.get(ctx, record.flow_id)).name
    except NotFound:
        return None


def run_rows(records: list[ExecutionRecord], flow_names: Mapping[uuid.UUID, str], *, test: str = "runs") -> None:
    """Runs as a list of links: status, flow and version, origin, start and duration."""
    with tag(ui.list().props("bordered separator").classes("w-full rounded-md"), test):
        for record in records:
            flow = flow_names.get(record.flow_id, "a deleted flow") if record.flow_id else "unsaved document"
            label = f"Run of {flow}, {record.status}, started {when(record.started_at)}"
            item = tag(ui.item().props(f"clickable tag=a href=/runs/{record.id}"), f"run-{record.id}")
            item.props["aria-label"] = label
            with item:
                with ui.item_section().props("side"):
                    status_badge(record.status, test=f"run-status-{record.id}")
                with ui.item_section():
                    version = f" · v{record.version}" if record.version is not None else ""
                    ui.item_label(f"{flow}{version}")
                    ui.item_label(origin(record)).props("caption")
                with ui.item_section().props("side"):
                    ui.item_label(when(record.started_at)).props("caption")
                    ui.item_label(duration(record.started_at, record.finished_at)).props("caption")


class NodeRow:
    """One node run: what it is, how it went, its streamed text and its output."""

    def __init__(self, run: NodeRunRecord) -> None:
        self.run = run
        with tag(ui.card().classes("w-full gap-2"), f"node-{run.node_id}") as self.card:
            self.info = ui.column().classes("w-full gap-1")
            self.live = tag(ui.label("").props("aria-live=polite"), f"node-live-{run.node_id}")
            self.live.classes("whitespace-pre-wrap text-sm font-mono")
            self.live.set_visibility(False)
            with tag(ui.expansion("Output and inputs").classes("w-full"), f"node-output-{run.node_id}"):
                self.output = code_block("", label="output").classes("w-full")
                self.inputs = code_block("", label="inputs").classes("w-full")
        self.render(run)

    def render(self, run: NodeRunRecord) -> None:
        self.run = run
        self.info.clear()
        with self.info:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label(run.node_id).classes("font-semibold")
                ui.label(run.node_type).classes("text-slate-600")
                status_badge(run.status, test=f"node-status-{run.node_id}")
            facts = [
                f"attempts {run.attempts}",
                duration(run.started_at, run.finished_at),
                f"tokens {run.prompt_tokens} in / {run.completion_tokens} out",
            ]
            if run.cost_usd is not None:
                facts.append(f"${run.cost_usd:.4f}")
            ui.label(" · ".join(facts)).classes("text-sm text-slate-600")
            if run.error:
                tag(ui.label(run.error), f"node-error-{run.node_id}").classes("text-negative whitespace-pre-wrap")
        self.output.set_content(pretty(run.output))
        self.inputs.set_content(pretty(run.inputs))
        if run.status not in {"running", "retrying"}:
            self.live.set_visibility(False)  # the output below has all of it now

    def stream(self, text: str) -> None:
        self.live.set_text(text[-MAX_LIVE_TEXT:])
        self.live.set_visibility(bool(text))


class RunView:
    """One run on its page; `start` follows it live while it is not over."""

    def __init__(self, page: PageView, record: ExecutionRecord, flow_name: str | None) -> None:
        self.page = page
        self.services = page.services
        self.ctx: TenantContext = page.ctx
        self.record = record
        self.flow_name = flow_name
        self.seq = 0
        self.rows: dict[str, NodeRow] = {}
        self.tokens: dict[str, str] = {}
        self._dirty = asyncio.Event()
        self._ended = False
        self._last_type = ""
        self.logged = 0
        self.root = ui.column().classes("w-full gap-4")
        with self.root:
            self.summary = tag(ui.column().classes("w-full gap-3"), "run-summary")
            ui.label("Nodes").classes("text-lg font-semibold")
            self.nodes = tag(ui.column().classes("w-full gap-2"), "run-nodes")
            self.no_nodes = ui.label("No node has run yet.").classes("text-slate-600")
            ui.label("Event log").classes("text-lg font-semibold")
            ui.label("Each step of the run in order; streamed text is shown under its node.").classes(
                "text-sm text-slate-600"
            )
            self.log = tag(ui.column().classes("w-full gap-0 font-mono text-sm"), "run-events")
        self._draw(record)

    # -- drawing ------------------------------------------------------------------------

    def _draw(self, record: ExecutionRecord) -> None:
        self.record = record
        if self.root.is_deleted:
            return  # the page went away while the run was read: nothing to draw into
        self.summary.clear()
        with self.summary:
            self._summary(record)
        for run in record.node_runs:
            row = self.rows.get(run.node_id)
            if row is None:
                with self.nodes:
                    row = self.rows[run.node_id] = NodeRow(run)
                if run.node_id in self.tokens:
                    row.stream(self.tokens[run.node_id])
            elif row.run != run:
                row.render(run)
        self.no_nodes.set_visibility(not self.rows)

    def _summary(self, record: ExecutionRecord) -> None:
        with ui.row().classes("w-full items-center gap-3"):
            status_badge(record.status, test="run-status")
            if record.flow_id is not None and self.flow_name is not None:
                tag(ui.link(f"{self.flow_name} · v{record.version}", f"/flows/{record.flow_id}"), "run-flow")
            else:
                ui.label("a deleted flow" if record.flow_id else "an unsaved document").classes("text-slate-600")
            ui.label(origin(record)).classes("text-slate-600")
            if record.status not in TERMINAL_STATUSES:
                tag(ui.label("Live").classes("text-info text-sm"), "run-live")
        ui.label(
            f"Started {when(record.started_at)} · finished {when(record.finished_at)} · "
            f"took {duration(record.started_at, record.finished_at)}"
        ).classes("text-sm text-slate-600")
        with ui.row().classes("gap-2 items-center"):
            tag(ui.link("Trace", f"/runs/{record.id}/trace"), "run-trace").props["aria-label"] = "Trace of this run"
            if self.page.can_edit:
                if record.status not in TERMINAL_STATUSES:
                    tag(
                        ui.button("Cancel run", color="negative", on_click=self.page.action(self._cancel, Role.EDITOR)),
                        "run-cancel",
                    )
                if record.status in RETRYABLE and record.flow_id is not None:
                    tag(ui.button("Retry", on_click=self.page.action(self._retry, Role.EDITOR)), "run-retry")
        if record.error:
            tag(ui.label(record.error).props("role=alert"), "run-error").classes(
                "w-full p-3 rounded bg-red-100 text-red-900 whitespace-pre-wrap"
            )
        self._questions(record)
        with ui.row().classes("w-full gap-4 items-start"):
            with ui.column().classes("flex-1 min-w-[16rem] gap-1"):
                ui.label("Inputs").classes("font-semibold")
                tag(json_block(record.inputs, label="inputs").classes("w-full"), "run-inputs")
            with ui.column().classes("flex-1 min-w-[16rem] gap-1"):
                ui.label("Outputs").classes("font-semibold")
                if record.status == "completed" or record.outputs:
                    tag(json_block(record.outputs, label="outputs").classes("w-full"), "run-outputs")
                else:
                    ui.label("Outputs appear here when the run completes.").classes("text-slate-600")

    def _questions(self, record: ExecutionRecord) -> None:
        """What a paused run waits for: a person's approval, or a breakpoint to go on from."""
        if record.status != "waiting":
            return
        for run in record.node_runs:
            waiting = run.flags.get("waiting") if run.status == "waiting" else None
            if not isinstance(waiting, dict):
                continue
            with tag(ui.card().classes("w-full gap-2"), f"waiting-{run.node_id}"):
                if waiting.get("reason") == "human":
                    HumanAnswer(self.page, record.id, run, on_answered=self._draw)
                else:
                    ui.label(f"Paused before node {run.node_id} (a breakpoint).").classes("font-semibold")
                    if self.page.can_edit:
                        tag(ui.button("Resume", on_click=self.page.action(self._resume, Role.EDITOR)), "run-resume")

    def _log_line(self, event: EventRecord) -> None:
        data = "" if not event.data else json.dumps(event.data, ensure_ascii=False, default=str)
        node = f" [{event.node_id}]" if event.node_id else ""
        text = f"#{event.seq} {event.ts.strftime('%H:%M:%S')} {event.type}{node} {data[:300]}"
        self.logged += 1
        with self.log:
            if self.logged <= MAX_LOG_EVENTS:
                tag(ui.label(text).classes("whitespace-pre-wrap break-all"), f"event-{event.seq}")
            elif self.logged == MAX_LOG_EVENTS + 1:  # a page with a million lines helps nobody
                ui.label(
                    f"The log shows the first {MAX_LOG_EVENTS} events; "
                    f"GET /api/executions/{self.record.id}/events has them all."
                ).classes("text-slate-600")

    # -- actions ------------------------------------------------------------------------

    async def _cancel(self, ctx: TenantContext) -> None:
        self._draw(await self.services.executions.cancel(ctx, self.record.id))

    async def _retry(self, ctx: TenantContext) -> None:
        again = await self.services.executions.retry(ctx, self.record.id)
        ui.navigate.to(f"/runs/{again.id}")

    async def _resume(self, ctx: TenantContext) -> None:
        self._draw(await self.services.executions.pauses.resume(ctx, self.record.id))

    # -- following ----------------------------------------------------------------------

    async def load_log(self) -> None:
        """Draw the stored events; past `MAX_LOG_EVENTS` lines, following goes on from the run's last event."""
        for _ in range(MAX_LOG_PAGES):  # token events are not lines, but they are read
            if self.logged >= MAX_LOG_EVENTS:
                break
            events = await self.services.executions.events(self.ctx, self.record.id, after_seq=self.seq, limit=500)
            for event in events:
                self._take(event)
            if len(events) < 500:
                return
        self.seq = max(self.seq, self.record.last_seq)  # node states and outputs come from the run itself

    def _take(self, event: EventRecord) -> None:
        self.seq = event.seq
        self._last_type = event.type
        if self.root.is_deleted:
            return
        if event.type == "token":
            if event.node_id is not None:
                text = self.tokens.get(event.node_id, "") + str(event.data.get("text", ""))
                self.tokens[event.node_id] = text[-MAX_LIVE_TEXT:]
                if (row := self.rows.get(event.node_id)) is not None and row.run.status in {"running", "retrying"}:
                    row.stream(self.tokens[event.node_id])
            return
        self._log_line(event)

    def start(self) -> None:
        """Follow the run while it goes on, in a task that ends with the run or with the page's client."""
        if self.record.status in TERMINAL_STATUSES and is_final(self._last_type):
            return
        self._dirty.set()  # the run may have moved on between reading it and reading its events
        client = ui.context.client
        task = background_tasks.create(self._watch(), name=f"watch run {self.record.id}")
        client.on_delete(task.cancel)

    async def _watch(self) -> None:
        reload = asyncio.create_task(self._reload_loop())
        try:
            with self.root:
                await notify_errors(self._follow)()
        except asyncio.CancelledError:
            reload.cancel()  # the page's client is gone: nobody to draw for
            raise
        self._ended = True
        self._dirty.set()
        await reload

    async def _follow(self) -> None:
        async for item in self.services.executions.follow(self.ctx, self.record.id, after_seq=self.seq):
            if isinstance(item, EventRecord):
                self._take(item)
                if item.type != "token":
                    self._dirty.set()

    async def _reload_loop(self) -> None:
        """Read the run again after events came (coalesced), and once more after the last one."""
        with self.root:
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                ended = self._ended
                await notify_errors(self._reload)()
                if ended:
                    return
                await asyncio.sleep(RELOAD_EVERY_S)

    async def _reload(self) -> None:
        self._draw(await self.services.executions.get(self.ctx, self.record.id))
