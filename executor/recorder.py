"""The engine's `Recorder` on the journal, and the way back: stored node runs as engine states.

`JournalRecorder` numbers events gap-free per execution and hands node states to the
journal, which reads each one when it writes (`_LiveNodeRun`). `state_of` turns a stored
node run back into a `NodeState`, which is how a paused run resumes in any process and a
new run reuses an earlier one's outputs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from core.executions import EventRecord, NodeRunRecord, NodeRunSource
from executor.engine import NodeState
from executor.nodes.base import NodeUsage


class JournalPort(Protocol):
    """Where events and node runs go (`core.journal.Journal` fits)."""

    def append(self, tenant_slug: str, event: EventRecord) -> None: ...

    def put_node_run(self, tenant_slug: str, run: NodeRunRecord | NodeRunSource) -> None: ...

    async def flush(self) -> None: ...


class JournalRecorder:
    """The engine's `Recorder` on the journal: numbers events gap-free and turns node states into node runs."""

    def __init__(self, journal: JournalPort, tenant_slug: str, execution_id: uuid.UUID, last_seq: int = 0) -> None:
        self.journal = journal
        self.tenant_slug = tenant_slug
        self.execution_id = execution_id
        self.seq = last_seq

    def event(self, type: str, node_id: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.seq += 1
        record = EventRecord(self.execution_id, self.seq, datetime.now(UTC), type, node_id, data or {})
        self.journal.append(self.tenant_slug, record)

    def node_run(self, node_id: str, node_type: str, state: NodeState) -> None:
        self.journal.put_node_run(self.tenant_slug, _LiveNodeRun(self.execution_id, node_id, node_type, state))


class _LiveNodeRun:
    """A node run as the journal reads it when it writes: the node's state at that moment, as plain data."""

    __slots__ = ("execution_id", "node_id", "node_type", "state")

    def __init__(self, execution_id: uuid.UUID, node_id: str, node_type: str, state: NodeState) -> None:
        self.execution_id = execution_id
        self.node_id = node_id
        self.node_type = node_type
        self.state = state

    def snapshot(self) -> NodeRunRecord:
        state = self.state
        usage = state.usage
        return NodeRunRecord(
            execution_id=self.execution_id,
            node_id=self.node_id,
            node_type=self.node_type,
            status=state.status,
            inputs=dict(state.inputs),
            output=state.output,
            error=state.error,
            attempts=state.attempts,
            started_at=state.started_at,
            finished_at=state.finished_at,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            flags=_flags(state),
        )


def _flags(state: NodeState) -> dict[str, Any]:
    flags = dict(state.flags)
    if state.continued:
        flags["continued"] = True
    if state.taken is not None:
        flags["handles"] = sorted(state.taken)
    return flags


def state_of(run: NodeRunRecord) -> NodeState:
    """A stored node run as the engine's state of that node (what `_LiveNodeRun.snapshot` stored, read back)."""
    flags = dict(run.flags)
    handles = flags.pop("handles", None)
    continued = bool(flags.pop("continued", False))
    return NodeState(
        status=run.status,
        output=run.output,
        taken=frozenset(handles) if isinstance(handles, list) else None,
        error=run.error,
        continued=continued,
        attempts=run.attempts,
        started_at=run.started_at,
        finished_at=run.finished_at,
        inputs=dict(run.inputs),
        usage=NodeUsage(run.prompt_tokens, run.completion_tokens, run.cost_usd),
        flags=flags,
    )
