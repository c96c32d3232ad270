"""A crew node's CrewAI events replayed as rows: its tasks, with their agent steps and tool calls under them.

The events (see `executor.crewai.events`) come under the crew's node: a task is
`crew_task_started` to `crew_task_completed`/`crew_task_failed`, a tool call `tool_started`
to `tool_finished`/`tool_failed`; an agent step is one event at the end of the step, so its
row spans from the end of the step or tool call before it in the same task (or the task's
start). Events name their task, which places steps and tool calls under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from core.executions import EventRecord
from ui.trace_rows import STEP, TASK, TOOL, TraceRow

#: The event types replayed here.
CREW_EVENTS = frozenset(
    {
        "crew_task_started",
        "crew_task_completed",
        "crew_task_failed",
        "agent_step",
        "tool_started",
        "tool_finished",
        "tool_failed",
    }
)


class CrewReplay:
    """Replays a node's CrewAI events into task rows with their steps and tool calls under them."""

    def __init__(self, node_id: str, parent: TraceRow, at: Callable[[datetime], float | None]) -> None:
        self.node_id = node_id
        self.parent = parent
        self.at = at  # a moment as seconds from the run's start
        self.rows: list[TraceRow] = []
        self.open_tasks: list[TraceRow] = []
        self.open_tools: list[TraceRow] = []
        self.cursor: dict[str, float] = {}  # row key -> when its last step or tool call ended
        self.owners: dict[str, str] = {}  # tool row key -> the key of the row it is under
        self.count = 0

    def replay(self, events: Sequence[EventRecord]) -> list[TraceRow]:
        for event in events:
            at = self.at(event.ts)
            if event.type == "crew_task_started":
                self._task_started(event, at)
            elif event.type in {"crew_task_completed", "crew_task_failed"}:
                self._task_ended(event, at)
            elif event.type == "agent_step":
                self._step(event, at)
            elif event.type == "tool_started":
                self._tool_started(event, at)
            else:
                self._tool_ended(event, at)
        return self.rows

    def _key(self, kind: str) -> str:
        self.count += 1
        return f"{self.parent.key}/{kind}:{self.count}"

    def _task_of(self, event: EventRecord) -> TraceRow | None:
        """The open task an event belongs to: the one of its name, else the latest one open."""
        name = event.data.get("task")
        for task in reversed(self.open_tasks):
            if name and task.details.get("task") == name:
                return task
        return self.open_tasks[-1] if self.open_tasks and not name else None

    def _under(self, task: TraceRow | None) -> tuple[TraceRow, list[TraceRow]]:
        return (task, task.children) if task is not None else (self.parent, self.rows)

    def _task_started(self, event: EventRecord, at: float | None) -> None:
        name = str(event.data.get("task") or "a task")
        agent = str(event.data.get("agent") or "")
        task = TraceRow(
            key=self._key("task"),
            kind=TASK,
            node_id=self.node_id,
            depth=1,
            title=f"Task {name}",
            subtitle=agent,
            status="running",
            start_s=at,
            end_s=None,
            seq=event.seq,
            details={"task": event.data.get("task"), "agent": event.data.get("agent")},
        )
        self.rows.append(task)
        self.open_tasks.append(task)
        if at is not None:
            self.cursor[task.key] = at

    def _task_ended(self, event: EventRecord, at: float | None) -> None:
        task = self._task_of(event)
        if task is None:
            return
        self.open_tasks.remove(task)
        task.end_s = at
        task.status = "completed" if event.type == "crew_task_completed" else "failed"
        for name in ("output", "error"):
            if name in event.data:
                task.details[name] = event.data[name]

    def _step(self, event: EventRecord, at: float | None) -> None:
        task = self._task_of(event)
        owner, siblings = self._under(task)
        data = event.data
        if data.get("tool_calls"):
            title = "Step: calls " + ", ".join(str(call.get("tool")) for call in data["tool_calls"])
        elif data.get("tool"):
            title = f"Step: uses {data['tool']}"
        else:
            title = "Step: final answer" if data.get("final") else "Step"
        start = self.cursor.get(owner.key, owner.start_s if owner.start_s is not None else at)
        siblings.append(
            TraceRow(
                key=self._key("step"),
                kind=STEP,
                node_id=self.node_id,
                depth=owner.depth + 1,
                title=title,
                subtitle=str(data.get("agent") or ""),
                status="completed",
                start_s=start,
                end_s=at,
                seq=event.seq,
                details={k: v for k, v in data.items() if k != "crew_seq"},
            )
        )
        if at is not None:
            self.cursor[owner.key] = at

    def _tool_started(self, event: EventRecord, at: float | None) -> None:
        owner, siblings = self._under(self._task_of(event))
        tool = TraceRow(
            key=self._key("tool"),
            kind=TOOL,
            node_id=self.node_id,
            depth=owner.depth + 1,
            title=f"Tool {event.data.get('tool')}",
            subtitle=str(event.data.get("agent") or ""),
            status="running",
            start_s=at,
            end_s=None,
            seq=event.seq,
            details={k: v for k, v in event.data.items() if k != "crew_seq"},
        )
        self.owners[tool.key] = owner.key
        siblings.append(tool)
        self.open_tools.append(tool)

    def _tool_ended(self, event: EventRecord, at: float | None) -> None:
        name = event.data.get("tool")
        tool = next((t for t in reversed(self.open_tools) if t.details.get("tool") == name), None)
        if tool is None:
            return
        self.open_tools.remove(tool)
        tool.end_s = at
        tool.status = "completed" if event.type == "tool_finished" else "failed"
        for key in ("output", "error"):
            if key in event.data:
                tool.details[key] = event.data[key]
        if at is not None:
            self.cursor[self.owners[tool.key]] = at
