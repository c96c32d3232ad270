"""A run's node and edge states for the canvas, worked out from its events (live or replayed) or its record.

`RunStates.take(event)` answers with only what changed: patches for the nodes the event
touched and states for the edges it moved, which the editor sends to the canvas as small
messages (`patch_nodes`, `set_edge_states`) rather than redrawing the flow. Edges flow while
their target runs and are done once data went along them; a branch not taken stays plain.

    states = RunStates(document)
    patches, edges = states.take(event)     # {"ask": {"status": "running", ...}}, {"e1": "flowing"}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from core.executions import EventRecord, ExecutionRecord, NodeRunRecord

#: Node event type -> the status the canvas shows.
STATUS_OF_EVENT = {
    "node_started": "running",
    "node_retrying": "running",
    "node_completed": "completed",
    "node_failed": "failed",
    "node_skipped": "skipped",
    "node_pinned": "pinned",
    "node_waiting": "waiting",
}
#: Stored node-run status -> the status the canvas shows.
STATUS_OF_RUN = {"retrying": "running", "interrupted": "failed"}
MAX_DETAIL = 80


def epoch_ms(moment: datetime | None) -> float | None:
    return moment.timestamp() * 1000 if moment is not None else None


def short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


class RunStates:
    """What the canvas shows of one run, kept from its events."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.edges: list[Mapping[str, Any]] = list(document.get("edges") or [])
        self.node_ids = [str(node["id"]) for node in document.get("nodes") or []]
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edge_states: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.status = ""

    def pending(self) -> dict[str, dict[str, Any]]:
        """Every node pending (a run just started): the patches that clear the last run's states."""
        self.nodes = {node_id: _state("pending") for node_id in self.node_ids}
        self.edge_states = {str(edge["id"]): "" for edge in self.edges}
        self.tokens.clear()
        return {node_id: dict(state) for node_id, state in self.nodes.items()}

    def take(self, event: EventRecord) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The node patches and edge states `event` changes (empty when it changes nothing drawn)."""
        if event.type.startswith("execution_"):
            self.status = event.type.removeprefix("execution_")
            return {}, {}
        node_id = event.node_id
        status = STATUS_OF_EVENT.get(event.type)
        if node_id is None or node_id not in self.node_ids:
            return {}, {}
        if event.type == "token":
            self.tokens[node_id] = (self.tokens.get(node_id, "") + str(event.data.get("text", "")))[-2000:]
            return {node_id: self._set(node_id, detail=short(self.tokens[node_id][-MAX_DETAIL:]))}, {}
        if status is None:
            return {}, {}
        ts = epoch_ms(event.ts)
        fields: dict[str, Any] = {"status": status}
        if event.type == "node_started":
            fields |= {"started_at": ts, "ended_at": None, "detail": ""}
            if int(event.data.get("attempt") or 1) > 1:
                fields["detail"] = f"attempt {event.data['attempt']}"
        elif event.type == "node_retrying":
            fields["detail"] = short(f"retrying: {event.data.get('error', '')}")
        elif event.type in {"node_completed", "node_pinned", "node_failed", "node_skipped"}:
            fields["ended_at"] = ts
            if self.nodes.get(node_id, {}).get("started_at") is None:
                fields["started_at"] = ts
            if event.type == "node_failed":
                fields["detail"] = short(str(event.data.get("error") or "failed"))
        elif event.type == "node_waiting":
            fields["detail"] = waiting_detail(event.data)
        patches = {node_id: self._set(node_id, **fields)}
        return patches, self._edges_after(node_id, event.type, event.data.get("handles"))

    def from_record(self, record: ExecutionRecord) -> dict[str, dict[str, Any]]:
        """Every node's state from a stored run (opening an earlier run, or catching up after a reconnect)."""
        self.pending()
        self.status = record.status
        patches = {node_id: dict(state) for node_id, state in self.nodes.items()}
        for run in record.node_runs:
            if run.node_id in self.node_ids:
                patches[run.node_id] = self._set(run.node_id, **_run_fields(run))
                if run.status in {"completed", "pinned"}:
                    self._edges_after(run.node_id, "node_completed", None)
        return patches

    def _set(self, node_id: str, **fields: Any) -> dict[str, Any]:
        state = self.nodes.setdefault(node_id, _state(""))
        state.update(fields)
        return dict(state)

    def _edges_after(self, node_id: str, event_type: str, handles: Iterable[str] | None) -> dict[str, str]:
        taken = set(handles) if handles is not None else None
        changed: dict[str, str] = {}
        for edge in self.edges:
            state = self._edge_after(edge, node_id, event_type, taken)
            if state is not None:
                changed[str(edge["id"])] = state
        self.edge_states.update(changed)
        return changed

    def _edge_after(self, edge: Mapping[str, Any], node_id: str, event_type: str, taken: set[str] | None) -> str | None:
        """An edge's new state after `event_type` of `node_id`: data flows into a node that starts, and
        has gone along once its target is done (or along a handle its source took); None: unchanged."""
        now = self.edge_states.get(str(edge["id"]), "")
        if edge.get("target") == node_id:
            if event_type == "node_started" and now == "done":
                return "flowing"
            if event_type in {"node_completed", "node_failed", "node_waiting"} and now == "flowing":
                return "done"
            return None
        along = taken is None or edge.get("source_handle", "out") in taken
        if edge.get("source") == node_id and event_type in {"node_completed", "node_pinned"} and along:
            return "done"
        return None


def waiting_detail(waiting: Mapping[str, Any]) -> str:
    """The line a waiting node shows: the question a person is asked, or that a breakpoint paused it."""
    if waiting.get("reason") != "human":
        return "paused at a breakpoint"
    prompt = str(waiting.get("prompt") or "").strip()
    return short(f"asks: {prompt}") if prompt else "waiting for you"


def _state(status: str) -> dict[str, Any]:
    return {"status": status, "started_at": None, "ended_at": None, "detail": ""}


def _run_fields(run: NodeRunRecord) -> dict[str, Any]:
    status = STATUS_OF_RUN.get(run.status, run.status)
    if run.flags.get("pinned") or run.flags.get("overridden"):
        status = "pinned"
    detail = ""
    if run.error:
        detail = short(run.error)
    elif status == "waiting":
        waiting = run.flags.get("waiting")
        detail = waiting_detail(waiting if isinstance(waiting, Mapping) else {})
    return {
        "status": status,
        "started_at": epoch_ms(run.started_at),
        "ended_at": epoch_ms(run.finished_at),
        "detail": detail,
    }
