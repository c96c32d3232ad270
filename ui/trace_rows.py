"""A row of a run's trace and how it reads: the data of one bar of the timeline, and its text.

A `TraceRow` is a node, or an attempt, CrewAI task, agent step or tool call nested under
one (`depth` > 0), with its start and end in seconds from the run's start. `row_label` says
everything a bar shows in words (its text alternative); `numbers_text` is the short form
shown beside its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NODE, ATTEMPT, TASK, STEP, TOOL = "node", "attempt", "task", "step", "tool"
#: The status of a nested row whose end was never recorded, under a node that ended.
UNFINISHED = "unfinished"


@dataclass(slots=True)
class TraceRow:
    """One bar of the timeline: a node, or an attempt, task, step or tool call under one (`depth` > 0)."""

    key: str
    kind: str
    node_id: str
    depth: int
    title: str
    subtitle: str
    status: str
    start_s: float | None  # seconds from the run's start; None when it has no bar (skipped, reused)
    end_s: float | None
    seq: int  # the event that made the row: ties in ordering go by it
    open: bool = False  # still going: `end_s` is the moment the trace was read
    prompt_tokens: int | None = None  # known for nodes only
    completion_tokens: int | None = None
    cost_usd: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    children: list[TraceRow] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.start_s is None or self.end_s is None:
            return None
        return max(0.0, self.end_s - self.start_s)

    @property
    def tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


def seconds_text(seconds: float | None) -> str:
    """A duration or offset in the unit that reads best ('—' when unknown)."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


def cost_text(cost: float | None) -> str:
    """A cost in US dollars ('—' when unknown)."""
    return "—" if cost is None else f"${cost:.4f}"


def numbers_text(row: TraceRow) -> str:
    """A row's duration, tokens and cost, as shown beside its name (a node that used no model: its duration)."""
    parts = [seconds_text(row.duration_s) + (" so far" if row.open else "")]
    if row.kind == NODE and (row.tokens or row.cost_usd is not None):
        parts += [f"{row.tokens} tokens", cost_text(row.cost_usd)]
    return " · ".join(parts)


def row_label(row: TraceRow) -> str:
    """Everything a bar shows, in words: its text alternative."""
    name = f"{row.title} ({row.subtitle})" if row.subtitle else row.title
    if row.start_s is None:
        when = "not run in this run" if row.details.get("reused_from") else "no timing"
    elif row.open:
        when = f"started at {seconds_text(row.start_s)}, still going after {seconds_text(row.duration_s)}"
    else:
        when = f"from {seconds_text(row.start_s)} to {seconds_text(row.end_s)}, took {seconds_text(row.duration_s)}"
    parts = [f"{name}: {row.status}", when]
    if row.tokens is not None:
        parts.append(f"{row.tokens} tokens ({row.prompt_tokens or 0} in, {row.completion_tokens or 0} out)")
    if row.kind == NODE:
        parts.append(f"cost {cost_text(row.cost_usd)}")
    return ", ".join(parts)
