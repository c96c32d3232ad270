"""The engine: runs the nodes of one flow version, concurrently where the graph allows.

Join semantics. An edge is *active* once its source has completed and took the edge's
source handle (a condition takes `true` or `false`, a router one case, every other type
all its handles); it is *dead* once its source was skipped or did not take that handle.
A node runs when every incoming edge is resolved (active or dead) and at least one is
active; it is skipped (`node_skipped`) when all of them are dead, which carries the skip
on down an untaken branch. A node without incoming edges runs at once.

Ready nodes run concurrently, at most `max_concurrency` per execution and
`tenant_concurrency` per tenant in this process. Each node has a timeout, a retry
policy (attempts, doubling backoff) and `on_error`: `fail` ends the execution as
failed (running nodes are cancelled, results so far are kept); `continue` stores the
error as the node's output (`{"error": ...}`) and the flow goes on as if it completed.

Run state is plain data (`NodeState`): the engine can start from any set of nodes whose
states are given (`RunRequest.given`), which is what running from a node, retrying and
resuming stand on. What happens is reported to a `Recorder` (events and node runs); the
engine never touches storage or the bus itself.

Cancelling the task that runs `Engine.run` cancels every running node at once (an LLM
call's connection is closed, a sandbox run is killed) and ends with `cancelled`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from core.context import TenantContext
from core.errors import problems_of
from executor.document import FlowDocument, FlowEdge
from executor.errors import ExecutorError, FlowInvalid, FlowProblem, NodeFailed, NodeTimedOut, TemplateError
from executor.expressions import evaluate
from executor.nodes.base import NodeContext, NodeData, NodeOutcome, NodeType, NodeUsage
from executor.ports import NodeServices
from executor.registry import Registry
from executor.templates import render, render_value

log = logging.getLogger(__name__)

#: Node statuses that end a node's part in an execution.
FINAL_STATUSES = frozenset({"completed", "failed", "skipped", "cancelled", "interrupted"})
_MAX_INPUT_CHARS = 64 * 1024


@dataclass
class NodeState:
    """Where one node stands in an execution: plain data, stored in its node run."""

    status: str = "pending"  # pending|running|completed|failed|skipped|cancelled|interrupted|waiting
    output: Any = None
    taken: frozenset[str] | None = None  # output handles taken; None: all
    error: str | None = None
    continued: bool = False  # failed, but on_error=continue let the flow go on
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    usage: NodeUsage = field(default_factory=NodeUsage)

    @property
    def passes(self) -> bool:
        """Whether downstream nodes may use this node's output."""
        return self.status == "completed" or (self.status == "failed" and self.continued)


@dataclass(frozen=True, slots=True)
class PlannedNode:
    """One node of a plan: its type, parsed data and edges."""

    id: str
    type: NodeType[Any]
    data: NodeData
    incoming: tuple[FlowEdge, ...]
    outgoing: tuple[FlowEdge, ...]


@dataclass(frozen=True)
class Plan:
    """A flow version made ready to run: node data parsed, edges indexed. Build once per version."""

    nodes: Mapping[str, PlannedNode]
    order: tuple[str, ...]  # the document's order

    @classmethod
    def build(cls, document: FlowDocument, registry: Registry) -> Plan:
        """Parse every node's data with its type; `FlowInvalid` if that fails (validate first for the rest)."""
        problems: list[FlowProblem] = []
        incoming: dict[str, list[FlowEdge]] = {node.id: [] for node in document.nodes}
        outgoing: dict[str, list[FlowEdge]] = {node.id: [] for node in document.nodes}
        for edge in document.edges:
            if edge.source in outgoing and edge.target in incoming:
                outgoing[edge.source].append(edge)
                incoming[edge.target].append(edge)
        nodes: dict[str, PlannedNode] = {}
        for node in document.nodes:
            try:
                node_type = registry.get(node.type)
                data = node_type.parse(node.data)
            except ExecutorError as exc:
                problems.append(FlowProblem(node.id, "type", str(exc)))
                continue
            except ValidationError as exc:
                problems.extend(FlowProblem(node.id, f"data.{p.field}", p.message) for p in problems_of(exc))
                continue
            nodes[node.id] = PlannedNode(node.id, node_type, data, tuple(incoming[node.id]), tuple(outgoing[node.id]))
        if problems:
            raise FlowInvalid(problems)
        return cls(nodes=nodes, order=tuple(node.id for node in document.nodes))

    def outputs(self, states: Mapping[str, NodeState]) -> dict[str, Any]:
        """The execution's outputs: each node with a `result_key` (the `output` nodes) that completed."""
        result: dict[str, Any] = {}
        for node_id in self.order:
            node = self.nodes[node_id]
            state = states.get(node_id)
            key = node.type.result_key(node.data)
            if key is not None and state is not None and state.passes:
                result[key] = state.output
        return result


class Recorder(Protocol):
    """Where the engine reports what happens (the execution service stores and publishes it)."""

    def event(self, type: str, node_id: str | None = None, data: dict[str, Any] | None = None) -> None: ...

    def node_run(self, node_id: str, node_type: str, state: NodeState) -> None: ...


@dataclass
class RunRequest:
    """One run of a plan: who, which execution, the flow inputs and what is known already."""

    tenant: TenantContext
    execution_id: uuid.UUID
    inputs: dict[str, Any]
    given: dict[str, NodeState] = field(default_factory=dict)  # states known before the run (reused outputs)


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # completed | failed | cancelled
    outputs: dict[str, Any]
    error: str | None
    states: dict[str, NodeState]


class TenantSlots:
    """Bounds how many nodes of one tenant run at once in this process."""

    def __init__(self, per_tenant: int) -> None:
        self.per_tenant = per_tenant
        self._slots: dict[str, asyncio.Semaphore] = {}

    def of(self, tenant: str) -> asyncio.Semaphore:
        slot = self._slots.get(tenant)
        if slot is None:
            slot = self._slots[tenant] = asyncio.Semaphore(self.per_tenant)
        return slot


def _now() -> datetime:
    return datetime.now(UTC)


def _clip(value: Any) -> Any:
    """Values stored as a node's resolved inputs, with long texts cut (the output is never cut)."""
    if isinstance(value, str) and len(value) > _MAX_INPUT_CHARS:
        return value[:_MAX_INPUT_CHARS] + f"... ({len(value) - _MAX_INPUT_CHARS} more characters)"
    return value


class Engine:
    """Runs plans. One engine serves every execution of the process."""

    def __init__(
        self,
        services: NodeServices,
        *,
        max_concurrency: int = 8,
        tenant_slots: TenantSlots | None = None,
    ) -> None:
        self.services = services
        self.max_concurrency = max_concurrency
        self.tenant_slots = tenant_slots or TenantSlots(32)

    async def run(self, plan: Plan, request: RunRequest, recorder: Recorder) -> RunResult:
        """Run every node that can run; returns when nothing more can, or raises `CancelledError`."""
        return await _Run(self, plan, request, recorder).execute()


class _Run:
    """The state of one `Engine.run` call."""

    def __init__(self, engine: Engine, plan: Plan, request: RunRequest, recorder: Recorder) -> None:
        self.engine = engine
        self.plan = plan
        self.request = request
        self.recorder = recorder
        self.states: dict[str, NodeState] = {node_id: NodeState() for node_id in plan.order}
        self.states.update(request.given)
        self.scope_nodes: dict[str, dict[str, Any]] = {
            node_id: {"output": state.output} for node_id, state in request.given.items() if state.passes
        }
        self.scope: dict[str, Any] = {"inputs": request.inputs, "nodes": self.scope_nodes}
        self.unresolved: dict[str, int] = {}
        self.active: dict[str, int] = {}
        self.tenant_limit = engine.tenant_slots.of(request.tenant.tenant_slug)
        self.tasks: dict[asyncio.Task[None], str] = {}
        self.waiting: deque[str] = deque()  # ready, but not yet given a task (the execution's bound)
        self.wake = asyncio.Event()
        self.failure: str | None = None
        self.bug: BaseException | None = None

    async def execute(self) -> RunResult:
        self.waiting.extend(self._initial())
        try:
            while self.failure is None and self.bug is None:
                if len(self.waiting) == 1 and not self.tasks:
                    # One node can run and nothing else does (a chain): run it here, without a task.
                    node_id = self.waiting.popleft()
                    await self._node(node_id)
                    if self.failure is None:
                        self.waiting.extend(self._resolve(node_id))
                    continue
                self._dispatch()
                if not self.tasks:
                    break
                # Finished tasks start their successors themselves (`_finished`); wake-ups come only
                # when nothing runs any more, a lone node is left to run here, or the run failed.
                self.wake.clear()
                await self.wake.wait()
        except asyncio.CancelledError:
            await self._cancel_running()
            raise
        if self.bug is not None:
            await self._cancel_running()
            raise self.bug
        if self.failure is not None:
            await self._cancel_running()
            return RunResult("failed", self.plan.outputs(self.states), self.failure, self.states)
        return RunResult("completed", self.plan.outputs(self.states), None, self.states)

    def _initial(self) -> list[str]:
        """Count each node's unresolved incoming edges; the nodes that can start now, in document order."""
        ready: list[str] = []
        for node_id in self.plan.order:
            if self.states[node_id].status in FINAL_STATUSES:
                continue
            node = self.plan.nodes[node_id]
            unresolved = active = 0
            for edge in node.incoming:
                verdict = self._edge(edge)
                if verdict is None:
                    unresolved += 1
                elif verdict:
                    active += 1
            self.unresolved[node_id], self.active[node_id] = unresolved, active
            if unresolved == 0:
                ready.extend(self._settle(node_id))
        return ready

    def _edge(self, edge: FlowEdge) -> bool | None:
        """Whether an edge is active (True), dead (False) or not yet resolved (None)."""
        source = self.states[edge.source]
        if source.status not in FINAL_STATUSES:
            return None
        if not source.passes:
            return False
        return source.taken is None or edge.source_handle in source.taken

    def _settle(self, node_id: str) -> list[str]:
        """A node whose incoming edges are all resolved: ready to run, or skipped (and its skip passed on)."""
        node = self.plan.nodes[node_id]
        if not node.incoming or self.active[node_id] > 0:
            return [node_id]
        state = self.states[node_id]
        state.status, state.finished_at = "skipped", _now()
        self.recorder.event("node_skipped", node_id, {"reason": "no incoming branch was taken"})
        self.recorder.node_run(node_id, node.type.type, state)
        return self._resolve(node_id)

    def _resolve(self, node_id: str) -> list[str]:
        """A node reached a final state: update its successors; the ones now ready."""
        ready: list[str] = []
        for edge in self.plan.nodes[node_id].outgoing:
            target = edge.target
            if self.states[target].status in FINAL_STATUSES or target not in self.unresolved:
                continue
            self.unresolved[target] -= 1
            if self._edge(edge):
                self.active[target] += 1
            if self.unresolved[target] == 0:
                ready.extend(self._settle(target))
        return ready

    def _dispatch(self) -> None:
        """Give ready nodes a task each, up to the execution's bound; the rest wait their turn."""
        bound = self.engine.max_concurrency
        while self.waiting and len(self.tasks) < bound:
            node_id = self.waiting.popleft()
            task = asyncio.create_task(self._node(node_id), name=node_id)
            self.tasks[task] = node_id
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A node's task ended: start what it made ready, and wake `execute` when that has work."""
        node_id = self.tasks.pop(task, None)
        if node_id is None or task.cancelled():
            return  # cancelled by `_cancel_running`, which waits for it
        error = task.exception()
        if error is not None:  # `_node` handles every error of a node: this is a bug, raised from `execute`
            self.bug = error
        elif self.failure is None:
            self.waiting.extend(self._resolve(node_id))
            if self.tasks or len(self.waiting) != 1:
                self._dispatch()
        if self.failure is not None or self.bug is not None or not self.tasks:
            self.wake.set()

    async def _cancel_running(self) -> None:
        running = list(self.tasks)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self.tasks.clear()

    async def _node(self, node_id: str) -> None:
        """Run one node with its policy; record what happens. Never raises but for cancellation."""
        node = self.plan.nodes[node_id]
        state = self.states[node_id]
        async with self.tenant_limit:
            state.status, state.started_at = "running", _now()
            state.inputs = {
                "nodes": {e.source: _clip(self.states[e.source].output) for e in node.incoming},
            }
            self.recorder.node_run(node_id, node.type.type, state)
            try:
                outcome = await self._attempts(node, state)
            except asyncio.CancelledError:
                state.status, state.finished_at = "cancelled", _now()
                state.error = "cancelled"
                self.recorder.event("node_failed", node_id, {"error": "cancelled", "cancelled": True})
                self.recorder.node_run(node_id, node.type.type, state)
                raise
            except Exception as exc:  # every failure of a node ends here, stored with its message
                self._failed(node, state, _message(exc))
                return
        state.status, state.finished_at = "completed", _now()
        state.output, state.taken = outcome.output, outcome.taken
        self.scope_nodes[node_id] = {"output": outcome.output}
        self.recorder.event(
            "node_completed",
            node_id,
            {
                "output": outcome.output,
                "handles": sorted(outcome.taken) if outcome.taken is not None else None,
                "attempts": state.attempts,
                "duration_ms": _duration_ms(state),
                **_usage(state.usage),
            },
        )
        self.recorder.node_run(node_id, node.type.type, state)

    async def _attempts(self, node: PlannedNode, state: NodeState) -> NodeOutcome:
        policy = node.data.retry
        delay = policy.backoff_s
        while True:
            state.attempts += 1
            self.recorder.event("node_started", node.id, {"attempt": state.attempts, "type": node.type.type})
            try:
                return await self._attempt(node, state)
            except (NodeFailed, TemplateError) as exc:
                if state.attempts >= policy.attempts:
                    raise
                error = str(exc)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # unexpected errors are retried like the others, and logged
                log.exception("node %s (%s) raised", node.id, node.type.type)
                if state.attempts >= policy.attempts:
                    raise
                error = _message(exc)
            self.recorder.event(
                "node_retrying", node.id, {"attempt": state.attempts, "error": error, "delay_s": round(delay, 3)}
            )
            await asyncio.sleep(delay)
            delay *= 2

    async def _attempt(self, node: PlannedNode, state: NodeState) -> NodeOutcome:
        rendered: dict[str, Any] = {}
        scope = self.scope

        def render_template(source: str) -> str:
            value = render(source, scope)
            if len(rendered) < 50:
                rendered[source] = _clip(value)
            return value

        def render_any(value: Any) -> Any:
            result = render_value(value, scope)
            for source, leaf in _template_leaves(value, result):
                if len(rendered) < 50:
                    rendered[source] = _clip(leaf)
            return result

        def emit(kind: str, data: dict[str, Any]) -> None:
            self.recorder.event(kind, node.id, data)

        ctx = NodeContext(
            tenant=self.request.tenant,
            execution_id=self.request.execution_id,
            node_id=node.id,
            attempt=state.attempts,
            scope=scope,
            services=self.engine.services,
            emit=emit,
            render=render_template,
            render_value=render_any,
            evaluate=lambda source: evaluate(source, scope),
            usage=state.usage,
        )
        try:
            if node.data.timeout_s is None:
                return await node.type.run(node.data, ctx)
            try:
                async with asyncio.timeout(node.data.timeout_s):
                    return await node.type.run(node.data, ctx)
            except TimeoutError:
                raise NodeTimedOut(f"the node ran longer than its timeout of {node.data.timeout_s:g} s") from None
        finally:
            if rendered:
                state.inputs["rendered"] = rendered

    def _failed(self, node: PlannedNode, state: NodeState, message: str) -> None:
        state.status, state.finished_at, state.error = "failed", _now(), message
        continued = node.data.on_error == "continue"
        data = {"error": message, "attempts": state.attempts, "continued": continued, **_usage(state.usage)}
        self.recorder.event("node_failed", node.id, data)
        if continued:
            state.continued = True
            state.output = {"error": message}
            self.scope_nodes[node.id] = {"output": state.output}
        elif self.failure is None:
            self.failure = f"node '{node.id}' failed: {message}"
        self.recorder.node_run(node.id, node.type.type, state)


def _template_leaves(value: Any, result: Any) -> list[tuple[str, Any]]:
    """(template, what it rendered to) for every string with a template in `value`, walked beside `result`."""
    if isinstance(value, str):
        return [(value, result)] if "{{" in value or "{%" in value else []
    if isinstance(value, dict) and isinstance(result, dict):
        return [pair for key, item in value.items() for pair in _template_leaves(item, result.get(key))]
    if isinstance(value, list) and isinstance(result, list) and len(value) == len(result):
        return [pair for item, done in zip(value, result, strict=True) for pair in _template_leaves(item, done)]
    return []


def _message(exc: BaseException) -> str:
    if isinstance(exc, ExecutorError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _duration_ms(state: NodeState) -> float | None:
    if state.started_at is None or state.finished_at is None:
        return None
    return round((state.finished_at - state.started_at).total_seconds() * 1000, 3)


def _usage(usage: NodeUsage) -> dict[str, Any]:
    if not usage.prompt_tokens and not usage.completion_tokens and usage.cost_usd is None:
        return {}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": usage.cost_usd,
    }
