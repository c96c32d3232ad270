"""The trace of one run as timeline rows: plain data from its stored events and node runs.

`build_trace(record, events, now=...)` replays a run's stored events beside its node runs
(so it works for old runs and after a restart) and returns a `Trace`: one row per node,
ordered by when it started, with nested rows under it for its attempts (when it was
retried) and for CrewAI's tasks, agent steps and tool calls. Every row has its start and
end as seconds from the run's start, its status, and, for nodes, tokens and cost; the
bars of a Gantt chart are `Trace.left_pct` / `Trace.width_pct` of a row.

Where the two sources disagree the node run wins (it holds the node's final state); the
events fill in what a node run cannot say (when each attempt started, the crew's steps) and
what has not been written yet while the run goes on (`ui.trace_crew` replays the crew's
steps). Rows still going when the trace is read end at `now` and are `open`. A node a retry
reused from an earlier run has no bar here: it ran in that run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.executions import TERMINAL_STATUSES, EventRecord, ExecutionRecord, NodeRunRecord
from ui.trace_crew import CREW_EVENTS, CrewReplay
from ui.trace_rows import ATTEMPT, NODE, UNFINISHED, TraceRow

#: A bar is at least this wide (in percent of the timeline), so an instant still shows.
MIN_BAR_PCT = 0.6

_NODE_ENDS = {
    "node_completed": "completed",
    "node_failed": "failed",
    "node_skipped": "skipped",
    "node_pinned": "pinned",
    "node_waiting": "waiting",
}


@dataclass(slots=True)
class Trace:
    """A run's timeline: its rows in display order (each node followed by its nested rows) and its totals."""

    status: str
    running: bool  # not over yet (running, pending or waiting for someone)
    started_at: datetime | None
    duration_s: float | None  # the run's, until now while it goes on
    span_s: float  # the length of the time axis: the run, or the latest row end if later
    rows: list[TraceRow]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def left_pct(self, row: TraceRow) -> float:
        """Where `row`'s bar starts, in percent of the time axis."""
        if row.start_s is None:
            return 0.0
        return min(100.0 - MIN_BAR_PCT, max(0.0, row.start_s / self.span_s * 100))

    def width_pct(self, row: TraceRow) -> float:
        """How wide `row`'s bar is, in percent of the time axis (at least `MIN_BAR_PCT`)."""
        width = (row.duration_s or 0.0) / self.span_s * 100
        return max(MIN_BAR_PCT, min(width, 100.0 - self.left_pct(row)))

    def node_rows(self) -> list[TraceRow]:
        return [row for row in self.rows if row.kind == NODE]


# -- building ---------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class _Node:
    """What the events and the node run say about one node, gathered before it becomes rows."""

    node_id: str
    seq: int
    run: NodeRunRecord | None = None
    node_type: str = ""
    attempts: dict[int, tuple[int, datetime]] = field(default_factory=dict)  # attempt -> (seq, started)
    retries: dict[int, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)  # attempt -> failed at
    last: tuple[str, datetime, dict[str, Any]] | None = None  # the latest node event's status, moment, data
    crew: list[EventRecord] = field(default_factory=list)


class _Clock:
    """Moments as seconds from the run's start."""

    def __init__(self, origin: datetime, now: datetime) -> None:
        self.origin = origin
        self.now_s = self.at(now)

    def at(self, moment: datetime | None) -> float | None:
        return None if moment is None else (_aware(moment) - self.origin).total_seconds()


def build_trace(record: ExecutionRecord, events: Iterable[EventRecord], *, now: datetime) -> Trace:
    """The timeline of `record` from its stored `events` (any order) and node runs, as of `now`."""
    ordered = sorted(events, key=lambda event: event.seq)
    started = record.started_at or (ordered[0].ts if ordered else None)
    origin = started or now
    clock = _Clock(_aware(origin), _aware(now))
    running = record.status not in TERMINAL_STATUSES
    run_end = clock.now_s if running else clock.at(record.finished_at)
    nodes = _gather(record.node_runs, ordered)
    rows: list[TraceRow] = []
    for node in sorted(nodes.values(), key=lambda n: _node_order(n, clock)):
        row = _node_row(node, clock, running, run_end)
        row.children = _children(node, row, clock, running)
        rows.append(row)
    flat = [item for row in rows for item in _flatten(row)]
    counted = [row for row in rows if not row.details.get("reused_from")]
    costs = [row.cost_usd for row in counted if row.cost_usd is not None]
    ends = [row.end_s for row in flat if row.end_s is not None]
    span = max([run_end or 0.0, *ends, 0.0])
    return Trace(
        status=record.status,
        running=running,
        started_at=_aware(started) if started is not None else None,
        duration_s=run_end,
        span_s=span if span > 0 else 1.0,
        rows=flat,
        prompt_tokens=sum(row.prompt_tokens or 0 for row in counted),
        completion_tokens=sum(row.completion_tokens or 0 for row in counted),
        cost_usd=math.fsum(costs) if costs else None,
    )


def _gather(runs: Sequence[NodeRunRecord], events: Sequence[EventRecord]) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    for event in events:
        if event.node_id is None:
            continue
        node = nodes.get(event.node_id)
        if node is None:
            node = nodes[event.node_id] = _Node(event.node_id, event.seq)
        if event.type == "node_started":
            attempt = int(event.data.get("attempt") or len(node.attempts) + 1)
            node.attempts[attempt] = (event.seq, event.ts)
            node.node_type = str(event.data.get("type") or node.node_type)
            node.last = ("running", event.ts, event.data)
        elif event.type == "node_retrying":
            attempt = int(event.data.get("attempt") or len(node.attempts))
            node.retries[attempt] = (event.ts, event.data)
            node.last = ("retrying", event.ts, event.data)
        elif event.type in _NODE_ENDS:
            status = _NODE_ENDS[event.type]
            if event.type == "node_failed" and event.data.get("cancelled"):
                status = "cancelled"
            node.last = (status, event.ts, event.data)
        elif event.type in CREW_EVENTS:
            node.crew.append(event)
    first_seq = max((node.seq for node in nodes.values()), default=0) + 1
    for index, run in enumerate(runs):
        node = nodes.get(run.node_id)
        if node is None:  # written, but its events not (yet) read
            node = nodes[run.node_id] = _Node(run.node_id, first_seq + index)
        node.run = run
        node.node_type = run.node_type
    return nodes


def _reused_from(node: _Node) -> str | None:
    if node.run is not None and node.run.flags.get("reused_from"):
        return str(node.run.flags["reused_from"])
    if node.last is not None and node.last[2].get("reused_from"):
        return str(node.last[2]["reused_from"])
    return None


def _node_order(node: _Node, clock: _Clock) -> tuple[float, int]:
    if _reused_from(node):
        return (-math.inf, node.seq)  # it ran before this run began
    start = _node_start(node)
    moment = clock.at(start) if start is not None else None
    if moment is None and node.last is not None:
        moment = clock.at(node.last[1])
    return (moment if moment is not None else math.inf, node.seq)


def _node_start(node: _Node) -> datetime | None:
    if node.run is not None and node.run.started_at is not None:
        return node.run.started_at
    if node.attempts:
        return node.attempts[min(node.attempts)][1]
    return None


def _node_row(node: _Node, clock: _Clock, running: bool, run_end: float | None) -> TraceRow:
    run, last = node.run, node.last
    data = last[2] if last is not None else {}
    status = run.status if run is not None else (last[0] if last is not None else "pending")
    if run is not None and status == "completed" and (run.flags.get("pinned") or run.flags.get("overridden")):
        status = "pinned"  # its output was given, not made
    reused = _reused_from(node)
    details: dict[str, Any] = {"node_id": node.node_id, "type": node.node_type}
    if run is not None:
        details |= {
            "attempts": run.attempts,
            "inputs": run.inputs,
            "output": run.output,
            "error": run.error,
            "flags": run.flags,
        }
        tokens = (run.prompt_tokens, run.completion_tokens, run.cost_usd)
    else:
        details |= {"attempts": len(node.attempts), "output": data.get("output"), "error": data.get("error")}
        tokens = (int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0), data.get("cost_usd"))
    if reused:
        details["reused_from"] = reused
    row = TraceRow(
        key=f"node:{node.node_id}",
        kind=NODE,
        node_id=node.node_id,
        depth=0,
        title=node.node_id,
        subtitle=node.node_type,
        status=status,
        start_s=None,
        end_s=None,
        seq=node.seq,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        cost_usd=float(tokens[2]) if tokens[2] is not None else None,
        details=details,
    )
    if reused or status == "skipped":
        return row  # no bar: it did not run in this run
    start = _node_start(node)
    end = run.finished_at if run is not None else None
    if end is None and last is not None and last[0] in {"completed", "failed", "cancelled", "pinned"}:
        end = last[1]
    if start is None and last is not None and last[0] == "pinned":
        start = last[1]
    row.start_s = clock.at(start)
    row.end_s = clock.at(end)
    if row.start_s is not None and row.end_s is None:
        if running:
            row.end_s, row.open = clock.now_s, True
        else:  # the run is over without this node ending: it stops where the run stopped
            row.end_s = run_end
    return row


def _children(node: _Node, parent: TraceRow, clock: _Clock, running: bool) -> list[TraceRow]:
    """The rows nested under a node: its attempts (when there was more than one) and its crew's steps."""
    rows: list[TraceRow] = []
    if len(node.attempts) > 1:
        rows.extend(_attempt_rows(node, parent, clock))
    if node.crew:
        rows.extend(CrewReplay(node.node_id, parent, clock.at).replay(node.crew))
    for row in _walk(rows):
        if row.end_s is None and row.start_s is not None:
            if running and parent.open:
                row.end_s, row.open = clock.now_s, True
            else:
                row.end_s = parent.end_s if parent.end_s is not None else row.start_s
                row.status = parent.status if parent.status not in {"completed", "running"} else UNFINISHED
    return sorted(rows, key=_by_start)


def _attempt_rows(node: _Node, parent: TraceRow, clock: _Clock) -> list[TraceRow]:
    rows: list[TraceRow] = []
    last_attempt = max(node.attempts)
    for attempt, (seq, started) in sorted(node.attempts.items()):
        failed = node.retries.get(attempt)
        if failed is not None:
            status, end = "failed", clock.at(failed[0])
            details = {"attempt": attempt, "error": failed[1].get("error"), "retried_after_s": failed[1].get("delay_s")}
        else:
            final = attempt == last_attempt
            status = parent.status if final else UNFINISHED
            end = parent.end_s if final else None
            details = {"attempt": attempt, "error": parent.details.get("error") if final else None}
        rows.append(
            TraceRow(
                key=f"{parent.key}/attempt:{attempt}",
                kind=ATTEMPT,
                node_id=node.node_id,
                depth=1,
                title=f"Attempt {attempt}",
                subtitle="",
                status=status,
                start_s=clock.at(started),
                end_s=end,
                seq=seq,
                open=parent.open and failed is None and attempt == last_attempt,
                details=details,
            )
        )
    return rows


def _walk(rows: Iterable[TraceRow]) -> Iterable[TraceRow]:
    for row in rows:
        yield row
        yield from _walk(row.children)


def _by_start(row: TraceRow) -> tuple[float, int]:
    return (row.start_s if row.start_s is not None else math.inf, row.seq)


def _flatten(row: TraceRow) -> list[TraceRow]:
    """`row` and everything under it, each level in order of start."""
    row.children.sort(key=_by_start)
    return [row, *(item for child in row.children for item in _flatten(child))]
