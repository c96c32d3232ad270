"""The state of a run at one event: every node's status, output and error, folded from the stored events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.context import TenantContext
from core.executions import EventRecord

if TYPE_CHECKING:
    from executor.service import ExecutionService

_NODE_STATUS = {
    "node_started": "running",
    "node_retrying": "retrying",
    "node_completed": "completed",
    "node_failed": "failed",
    "node_skipped": "skipped",
    "node_pinned": "pinned",
    "node_waiting": "waiting",
}
_FINAL = {"execution_completed", "execution_failed", "execution_cancelled", "execution_interrupted"}


@dataclass
class Snapshot:
    """Where a run stood after event `seq`."""

    execution_id: uuid.UUID
    seq: int = 0
    status: str = "running"
    finished: bool = False
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def apply(self, event: EventRecord) -> None:
        """Fold one event in (events must come in `seq` order)."""
        self.seq = event.seq
        if event.node_id is not None and event.type in _NODE_STATUS:
            node = self.nodes.setdefault(event.node_id, {"status": "pending"})
            node["status"] = _NODE_STATUS[event.type]
            data = event.data
            if event.type == "node_started":
                node["attempt"] = data.get("attempt")
            elif event.type in {"node_completed", "node_pinned"}:
                node["output"] = data.get("output")
                node.pop("error", None)
                node.pop("waiting", None)
                if data.get("reused_from"):
                    node["reused_from"] = data["reused_from"]
            elif event.type == "node_waiting":
                node["waiting"] = data
            elif event.type == "node_failed":
                node["error"] = data.get("error")
                node.pop("waiting", None)
                if data.get("cancelled"):
                    node["status"] = "cancelled"
            elif event.type == "node_retrying":
                node["error"] = data.get("error")
        elif event.type == "execution_waiting":
            self.status = "waiting"
        elif event.type in {"execution_started", "execution_resumed"}:
            self.status = "running"
        elif event.type in _FINAL:
            self.status = event.type.removeprefix("execution_")
            self.finished = True
            self.outputs = dict(event.data.get("outputs") or {})
            self.error = event.data.get("error")

    @classmethod
    async def load(
        cls, executions: ExecutionService, ctx: TenantContext, execution_id: uuid.UUID, *, after_seq: int = 0
    ) -> Snapshot:
        """The state after every stored event (reading from the start; `after_seq` only sets where to resume)."""
        record = await executions.get(ctx, execution_id)
        snapshot = cls(execution_id)
        seen = 0
        while True:
            events = await executions.events(ctx, execution_id, after_seq=seen, limit=500)
            for event in events:
                snapshot.apply(event)
            if len(events) < 500:
                break
            seen = events[-1].seq
        snapshot.seq = max(snapshot.seq, after_seq)
        if record.status in {"completed", "failed", "cancelled", "interrupted"} and not snapshot.finished:
            snapshot.status, snapshot.finished, snapshot.error = record.status, True, record.error
        return snapshot

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": str(self.execution_id),
            "seq": self.seq,
            "status": self.status,
            "finished": self.finished,
            "nodes": self.nodes,
            "outputs": self.outputs,
            "error": self.error,
        }
