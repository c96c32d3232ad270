"""Traces: `/runs/{execution_id}/trace`, one run as a timeline built from its stored events and node runs.

The page replays what was stored (`ui.trace_model.build_trace`), so it shows old runs and
runs of processes that have since stopped as well as new ones; a run still going is shown
as far as it got. Another workspace's run, or an id that is not one, is the not-found page.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from core.context import Role, TenantContext
from core.executions import EventRecord, ExecutionRecord
from ui.flow_history import member_names, starter_name
from ui.run_view import flow_name_of
from ui.tenant_page import Pages, PageView, record_id
from ui.trace_model import build_trace
from ui.trace_view import TraceView
from wiring.services import Services

EVENT_PAGE = 5000  # the most the service hands out at once
MAX_TRACE_EVENTS = 50_000  # beyond this a page would be too slow to build; the API has them all
MAX_SUBFLOW_RUNS = 500  # the most the service lists at once; the newest are shown


async def subflow_runs(
    services: Services, ctx: TenantContext, execution_id: uuid.UUID
) -> dict[str, list[ExecutionRecord]]:
    """The runs this run's subflow nodes started, by node id, oldest first (a for_each node starts several)."""
    runs: dict[str, list[ExecutionRecord]] = {}
    page = await services.executions.list(ctx, parent_execution_id=execution_id, limit=MAX_SUBFLOW_RUNS)
    for child in reversed(page.items):
        runs.setdefault(child.parent_node_id or "", []).append(child)
    return runs


async def stored_events(
    services: Services, ctx: TenantContext, execution_id: uuid.UUID
) -> tuple[list[EventRecord], bool]:
    """The run's stored events in order, up to `MAX_TRACE_EVENTS`, and whether there were more."""
    events: list[EventRecord] = []
    while len(events) < MAX_TRACE_EVENTS:
        after = events[-1].seq if events else 0
        batch = await services.executions.events(ctx, execution_id, after_seq=after, limit=EVENT_PAGE)
        events.extend(batch)
        if len(batch) < EVENT_PAGE:
            return events, False
    return events, True


def register(pages: Pages) -> None:
    """`/runs/{execution_id}/trace`."""
    services = pages.services

    @pages.tenant_page("/runs/{execution_id}/trace", Role.VIEWER, title="Trace")
    async def trace_page(page: PageView, execution_id: str) -> None:
        """One run as a timeline: every node with its attempts and crew steps, their timings, tokens and cost."""
        record = await services.executions.get(page.ctx, record_id(execution_id))
        events, cut = await stored_events(services, page.ctx, record.id)
        flow_name = await flow_name_of(services, page.ctx, record)
        members = await member_names(page, page.ctx)
        page.heading.set_text(f"Trace of {flow_name}" if flow_name else "Trace of a run")
        TraceView(
            page,
            record,
            build_trace(record, events, now=datetime.now(UTC)),
            flow_name=flow_name,
            started_by=starter_name(record.started_by, members),
            events_cut=cut,
            subflow_runs=await subflow_runs(services, page.ctx, record.id),
        )
