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

Debugging and pauses. A node with a *substitute* (a pinned output, or an override) emits
that output when it becomes ready instead of running (`node_pinned`), taking the handles
its type says the output takes. A node in `breakpoints` (or any node, when stepping)
pauses before it runs, and a runner may ask to wait (a `human` node): either way the node
is `waiting` (`node_waiting`), its branch stops there and the rest of the flow goes on
until nothing more can run; the run then ends `waiting`. A later run of the same
execution gives the stored states back, with `answers` for waiting nodes: `release` runs
a paused node, `respond` hands a person's response to the node type's `answer` hook.

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

from core.context import TenantContext
from executor.document import FlowEdge
from executor.errors import ExecutorError, NodeFailed, NodeTimedOut, TemplateError
from executor.expressions import evaluate
from executor.nodes.base import NodeContext, NodeOutcome, NodeUsage
from executor.plan import Plan, PlannedNode
from executor.ports import NodeServices
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
    flags: dict[str, Any] = field(default_factory=dict)  # pinned, overridden, reused_from, waiting, response

    @property
    def passes(self) -> bool:
        """Whether downstream nodes may use this node's output."""
        return self.status == "completed" or (self.status == "failed" and self.continued)


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
    substitutes: dict[str, Substitute] = field(default_factory=dict)  # emitted instead of running the node
    breakpoints: frozenset[str] = frozenset()  # pause before these nodes
    step: bool = False  # pause before every node but the released ones
    answers: dict[str, Answer] = field(default_factory=dict)  # for nodes given as `waiting`
    inbox: Inbox | None = None  # where answers reach the run while it goes on


class Inbox:
    """Hands answers to a run while it goes on (a response to one human node while other branches run)."""

    def __init__(self) -> None:
        self.run: _Run | None = None

    def deliver(self, answers: Mapping[str, Answer]) -> bool:
        """Apply `answers` now; False when the run is not going (they are applied when it continues)."""
        return self.run is not None and self.run.deliver(answers)


@dataclass(frozen=True, slots=True)
class Substitute:
    """An output used instead of running a node: a pinned output, or an override for one run."""

    output: Any
    source: str  # "pin" | "override"


@dataclass(frozen=True, slots=True)
class Answer:
    """What continues a waiting node: `release` (run it: past a breakpoint) or `respond` (a person's response)."""

    kind: str  # "release" | "respond"
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # completed | failed | waiting
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
        self.released: set[str] = set()  # paused nodes that run now (past their breakpoint)
        self.live = False  # the loop runs: answers can be delivered

    async def execute(self) -> RunResult:
        self._answer()
        if self.failure is None:
            self.waiting.extend(self._initial())
        self.live = True
        if self.request.inbox is not None:
            self.request.inbox.run = self
        try:
            return await self._loop()
        finally:
            self.live = False
            if self.request.inbox is not None:
                self.request.inbox.run = None

    async def _loop(self) -> RunResult:
        try:
            while self.failure is None and self.bug is None:
                if len(self.waiting) == 1 and not self.tasks:
                    # One node can run and nothing else does (a chain): run it here, without a task.
                    node_id = self.waiting.popleft()
                    await self._node(node_id)
                    if self.failure is None:
                        self.waiting.extend(self._advance(node_id))
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
            self._drop_waiting("cancelled")
            raise
        if self.bug is not None:
            await self._cancel_running()
            raise self.bug
        if self.failure is not None:
            await self._cancel_running()
            self._drop_waiting("the execution failed")
            return RunResult("failed", self.plan.outputs(self.states), self.failure, self.states)
        status = "waiting" if any(state.status == "waiting" for state in self.states.values()) else "completed"
        return RunResult(status, self.plan.outputs(self.states), None, self.states)

    def _answer(self) -> None:
        """Apply the answers the run starts with."""
        for node_id, answer in self.request.answers.items():
            self._apply(node_id, answer)

    def _apply(self, node_id: str, answer: Answer) -> bool:
        """Continue a waiting node: a released one runs again, a response goes to its type's hook.

        False when the node does not wait (any more): an answer is applied once."""
        state = self.states.get(node_id)
        if state is None or state.status != "waiting":
            return False
        node = self.plan.nodes[node_id]
        waiting = state.flags.pop("waiting", {})
        if answer.kind == "release":
            state.status = "pending"
            self.released.add(node_id)
            return True
        state.flags["response"] = answer.response
        try:
            outcome = node.type.answer(node.data, waiting, answer.response)
        except NodeFailed as exc:
            self._failed(node, state, str(exc))
            return True
        self._complete(node, state, outcome, {"response": answer.response})
        return True

    def deliver(self, answers: Mapping[str, Answer]) -> bool:
        """Answers that came while the run goes on: apply them now. False when the run is no longer going."""
        if not self.live or self.failure is not None or self.bug is not None:
            return False
        for node_id, answer in answers.items():
            if not self._apply(node_id, answer):
                continue
            if self.states[node_id].status == "pending":
                self.waiting.append(node_id)
            elif self.failure is None:
                self.waiting.extend(self._advance(node_id))
        if self.failure is None and self.tasks:
            self._dispatch()
        self.wake.set()
        return True

    def _drop_waiting(self, why: str) -> None:
        """The run ended without them: waiting nodes are cancelled."""
        for node_id, state in self.states.items():
            if state.status == "waiting":
                state.status, state.finished_at, state.error = "cancelled", _now(), why
                state.flags.pop("waiting", None)
                self.recorder.event("node_failed", node_id, {"error": why, "cancelled": True})
                self.recorder.node_run(node_id, self.plan.nodes[node_id].type.type, state)

    def _initial(self) -> list[str]:
        """Count each node's unresolved incoming edges; the nodes that can start now, in document order."""
        ready: list[str] = []
        for node_id in self.plan.order:
            if self.states[node_id].status in FINAL_STATUSES or self.states[node_id].status == "waiting":
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
        if not node.incoming or self.active[node_id] > 0 or node_id in self.released:
            return [node_id]
        state = self.states[node_id]
        state.status, state.finished_at = "skipped", _now()
        self.recorder.event("node_skipped", node_id, {"reason": "no incoming branch was taken"})
        self.recorder.node_run(node_id, node.type.type, state)
        return self._resolve(node_id)

    def _advance(self, node_id: str) -> list[str]:
        """After a node's turn: its successors now ready, if it reached a final state (a paused one did not)."""
        return self._resolve(node_id) if self.states[node_id].status in FINAL_STATUSES else []

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
            self.waiting.extend(self._advance(node_id))
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
        if node_id not in self.released and (self.request.step or node_id in self.request.breakpoints):
            self._pause(node, state, {"reason": "step" if self.request.step else "breakpoint"})
            return
        substitute = self.request.substitutes.get(node_id)
        if substitute is not None:
            self._substitute(node, state, substitute)
            return
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
        if outcome.wait is not None:
            self._pause(node, state, outcome.wait)
            return
        self._complete(node, state, outcome)

    def _complete(
        self, node: PlannedNode, state: NodeState, outcome: NodeOutcome, extra: dict[str, Any] | None = None
    ) -> None:
        state.status, state.finished_at = "completed", _now()
        state.output, state.taken = outcome.output, outcome.taken
        self.scope_nodes[node.id] = {"output": outcome.output}
        self.recorder.event(
            "node_completed",
            node.id,
            {
                "output": outcome.output,
                "handles": sorted(outcome.taken) if outcome.taken is not None else None,
                "attempts": state.attempts,
                "duration_ms": _duration_ms(state),
                **_usage(state.usage),
                **(extra or {}),
            },
        )
        self.recorder.node_run(node.id, node.type.type, state)

    def _substitute(self, node: PlannedNode, state: NodeState, substitute: Substitute) -> None:
        """Emit a pinned or overriding output instead of running the node."""
        now = _now()
        state.status, state.started_at, state.finished_at = "completed", now, now
        state.output = substitute.output
        state.taken = node.type.handles_of(node.data, substitute.output)
        state.flags["pinned" if substitute.source == "pin" else "overridden"] = True
        self.scope_nodes[node.id] = {"output": substitute.output}
        handles = sorted(state.taken) if state.taken is not None else None
        data = {"output": substitute.output, "source": substitute.source, "handles": handles}
        self.recorder.event("node_pinned", node.id, data)
        self.recorder.node_run(node.id, node.type.type, state)

    def _pause(self, node: PlannedNode, state: NodeState, waiting: dict[str, Any]) -> None:
        """The node waits: for a person's response, or at a breakpoint; its branch stops here for this run."""
        state.status = "waiting"
        if state.started_at is None:
            state.started_at = _now()
        state.flags["waiting"] = waiting
        self.recorder.event("node_waiting", node.id, waiting)
        self.recorder.node_run(node.id, node.type.type, state)

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
            upstream={e.source: self.states[e.source].output for e in node.incoming if self.states[e.source].passes},
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
