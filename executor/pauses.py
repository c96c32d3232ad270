"""Paused runs: answers for waiting nodes (respond, resume, step), deadlines, and mail to the people asked.

A waiting execution holds no task, thread or connection: its state is its stored node
runs. An answer is stored first, on the node run (`waiting` -> `answered` or `released`,
a compare-and-set, so a node takes one answer), and then the run is woken: the process
that takes the paused run (`waiting` -> `running`, again a compare-and-set) continues it
from the stored states, whichever process that is and whatever code it runs now. If the
run is busy with other branches, its process finds the answer when it would pause, so no
answer is lost and none is applied twice.

Deadlines (`respond_within_s` of a human node) are timers in the control plane; every
process polls for due ones, and the one that takes a timer applies the node's
`on_timeout` answer on behalf of nobody (`by: "timeout"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from core.context import Role, TenantContext
from core.errors import Conflict, CoreError, InvalidInput
from core.executions import PAUSED_NODE_STATUSES, TERMINAL_STATUSES, ExecutionRecord, ExecutionStore, NodeRunRecord
from core.mail import Mailer, MailMessage
from core.timers import Timer
from executor.engine import Answer, NodeState, Recorder, RunRequest
from executor.recorder import state_of
from executor.reuse import substitutes

if TYPE_CHECKING:
    from executor.versions import Prepared

log = logging.getLogger(__name__)

#: What a response is stored as when nobody answered in time.
TIMEOUT = "timeout"
_UNSET: Any = object()


class TimerPort(Protocol):
    """Stored deadlines (`core.timers.TimerStore` fits)."""

    async def set(self, timers: Iterable[Timer]) -> None: ...

    async def take_due(self, limit: int = 100) -> list[Timer]: ...

    async def drop(self, tenant_slug: str, execution_id: uuid.UUID, node_ids: Iterable[str] | None = None) -> None: ...


Wake = Callable[[TenantContext, uuid.UUID], Awaitable[None]]


class Pauses:
    """Answers for waiting nodes, the deadlines of waiting nodes, and mail about them."""

    def __init__(
        self,
        store: ExecutionStore,
        timers: TimerPort,
        mail: Mailer,
        *,
        wake: Wake,
        every_s: float = 2.0,
        public_url: str = "",
    ) -> None:
        self.store = store
        self.timers = timers
        self.mail = mail
        self._wake = wake
        self.every_s = every_s
        self.public_url = public_url.rstrip("/")
        self._poller: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Poll for due deadlines in the background."""
        self._poller = asyncio.create_task(self._poll(), name="execution timers")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._sending:
            await asyncio.wait(self._sending, timeout=10)

    # -- answers ----------------------------------------------------------------------------

    async def respond(
        self,
        ctx: TenantContext,
        execution_id: uuid.UUID,
        node_id: str,
        action: str,
        *,
        reason: str = "",
        output: Any = _UNSET,
    ) -> ExecutionRecord:
        """A person's `approve`, `reject` (with a reason) or `edit` (with the replacement output) for a human node."""
        ctx.require(Role.EDITOR, "respond to waiting runs")
        record = await self._open(ctx, execution_id)
        run = record.runs_by_node().get(node_id)
        waiting = _waiting(run)
        if run is None or waiting.get("reason") != "human":
            now = run.status if run is not None else "not reached"
            raise Conflict(f"node '{node_id}' of execution {execution_id} is not waiting for a response (it is {now})")
        allowed = list(waiting.get("actions") or ())
        if action not in allowed:
            raise InvalidInput(f"node '{node_id}' takes {', '.join(allowed)}, not {action!r}", field="action")
        response: dict[str, Any] = {"action": action, "by": _who(ctx), "at": datetime.now(UTC).isoformat()}
        if action == "edit":
            if output is _UNSET:
                raise InvalidInput("an edit needs the replacement value in 'output'", field="output")
            response["output"] = output
        if action == "reject":
            response["reason"] = reason
        await self._answer(ctx, execution_id, node_id, "answered", {"response": response})
        return await self.store.get(ctx, execution_id)

    async def resume(self, ctx: TenantContext, execution_id: uuid.UUID, *, step: bool = False) -> ExecutionRecord:
        """Run the nodes paused at breakpoints; with `step`, pause again before the nodes after them."""
        ctx.require(Role.EDITOR, "resume runs")
        record = await self._open(ctx, execution_id)
        paused = [run for run in record.node_runs if _waiting(run).get("reason") in {"breakpoint", "step"}]
        if not paused:
            asking = [run.node_id for run in record.node_runs if _waiting(run).get("reason") == "human"]
            if asking:
                raise Conflict(
                    f"execution {execution_id} waits for a response at node '{asking[0]}', not at a breakpoint; "
                    f"answer it at /api/executions/{execution_id}/nodes/{asking[0]}/respond"
                )
            raise Conflict(f"execution {execution_id} is {record.status}; it is not paused at a breakpoint")
        release = {"release": {"by": _who(ctx), "at": datetime.now(UTC).isoformat(), "step": step}}
        slug = ctx.tenant_slug
        taken = [await self.store.answer_node(slug, execution_id, run.node_id, "released", release) for run in paused]
        if all(now is not None for now in taken):  # someone else resumed it a moment ago
            raise Conflict(f"execution {execution_id} was resumed already; it is not paused at a breakpoint")
        await self._wake(ctx, execution_id)
        return await self.store.get(ctx, execution_id)

    async def _open(self, ctx: TenantContext, execution_id: uuid.UUID) -> ExecutionRecord:
        """The run, if it has not ended (an ended run takes no answers)."""
        record = await self.store.get(ctx, execution_id)
        if record.status in TERMINAL_STATUSES:
            raise Conflict(f"execution {execution_id} has ended ({record.status}); it takes no answers")
        return record

    async def _answer(
        self,
        ctx: TenantContext,
        execution_id: uuid.UUID,
        node_id: str,
        status: str,
        flags: dict[str, Any],
    ) -> None:
        now = await self.store.answer_node(ctx.tenant_slug, execution_id, node_id, status, flags)
        if now is not None:
            raise Conflict(f"node '{node_id}' of execution {execution_id} is not waiting any more (it is {now})")
        await self.timers.drop(ctx.tenant_slug, execution_id, [node_id])
        await self._wake(ctx, execution_id)

    # -- deadlines and mail -------------------------------------------------------------------

    async def arm(
        self, ctx: TenantContext, execution_id: uuid.UUID, prepared: Prepared, fresh: Mapping[str, NodeState]
    ) -> None:
        """Nodes that started waiting: store their deadlines and tell the people they ask."""
        timers = []
        for node_id, state in fresh.items():
            waiting = state.flags.get("waiting") or {}
            if waiting.get("due_at"):
                due = datetime.fromisoformat(str(waiting["due_at"]))
                timers.append(Timer(ctx.tenant_id, ctx.tenant_slug, execution_id, node_id, due))
            if waiting.get("notify") and self.mail.enabled:
                task = asyncio.create_task(self._notify(execution_id, prepared, node_id, waiting))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        if timers:
            await self.timers.set(timers)

    async def disarm(self, tenant_slug: str, execution_id: uuid.UUID) -> None:
        """The run ended: its deadlines go."""
        await self.timers.drop(tenant_slug, execution_id)

    async def fire_due(self) -> int:
        """Apply the timeout answer of every node whose deadline passed; how many were answered."""
        fired = 0
        for timer in await self.timers.take_due():
            ctx = TenantContext(timer.tenant_id, timer.tenant_slug, None, Role.EDITOR)
            try:
                record = await self.store.get(ctx, timer.execution_id)
                waiting = _waiting(record.runs_by_node().get(timer.node_id))
                action = waiting.get("on_timeout") or "reject"
                response = {"action": action, "by": TIMEOUT, "at": datetime.now(UTC).isoformat()}
                if action == "reject":
                    response["reason"] = "nobody responded in time"
                await self._answer(ctx, timer.execution_id, timer.node_id, "answered", {"response": response})
                fired += 1
            except CoreError as exc:  # answered meanwhile, or the run is gone: nothing to do
                log.info("deadline of node %s in execution %s: %s", timer.node_id, timer.execution_id, exc)
        return fired

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.fire_due()
            except Exception:  # the database may be briefly away: poll again next time
                log.warning("firing execution deadlines failed; trying again later", exc_info=True)

    async def _notify(
        self, execution_id: uuid.UUID, prepared: Prepared, node_id: str, waiting: Mapping[str, Any]
    ) -> None:
        node = next((n for n in prepared.document.nodes if n.id == node_id), None)
        label = str(node.data.get("label") or node_id) if node is not None else node_id
        link = f"{self.public_url}/runs/{execution_id}" if self.public_url else f"execution {execution_id}"
        text = (
            f"The flow run {execution_id} waits for you at '{label}'.\n\n{waiting.get('prompt', '')}\n\n"
            f"Approve, edit or reject it in CrewCanvas: {link}\n"
        )
        if waiting.get("due_at"):
            text += f"Without an answer by {waiting['due_at']}, it will {waiting.get('on_timeout')}.\n"
        for address in waiting.get("notify") or ():
            try:
                await self.mail.send(MailMessage(to=str(address), subject=f"Waiting for you: {label}", text=text))
            except CoreError as exc:  # mail is a courtesy: the run waits in the inbox all the same
                log.warning("could not mail %s about execution %s: %s", address, execution_id, exc)


def answers_of(record: ExecutionRecord) -> tuple[dict[str, Answer], bool]:
    """The stored answers of a run's waiting nodes, and whether one of them is a step."""
    answers: dict[str, Answer] = {}
    step = False
    for run in record.node_runs:
        if run.status == "answered":
            answers[run.node_id] = Answer("respond", dict(run.flags.get("response") or {}))
        elif run.status == "released":
            release = dict(run.flags.get("release") or {})
            step = step or bool(release.get("step"))
            answers[run.node_id] = Answer("release", release)
    return answers, step


def resumed_request(
    ctx: TenantContext, record: ExecutionRecord, pins: Mapping[str, Any], recorder: Recorder
) -> RunRequest:
    """The request that continues a paused run from its stored node runs and their answers."""
    answers, step = answers_of(record)
    given: dict[str, NodeState] = {}
    for run in record.node_runs:
        if run.status in {"pending", "running"}:
            continue
        state = state_of(run)
        if run.node_id in answers:
            state.status = "waiting"
            state.flags.pop("response", None)
            state.flags.pop("release", None)
        given[run.node_id] = state
    options = record.options
    pinned = pins if options.get("use_pins") else {}
    done = {node_id for node_id, state in given.items() if state.status != "waiting"}
    pending = {k: v for k, v in pinned.items() if k not in done}
    overrides = {k: v for k, v in dict(options.get("overrides") or {}).items() if k not in done}
    recorder.event("execution_resumed", None, {"nodes": sorted(answers), "step": step})
    return RunRequest(
        ctx,
        record.id,
        dict(record.inputs),
        given=given,
        substitutes=substitutes(overrides, pending),
        breakpoints=frozenset(options.get("breakpoints") or ()),
        step=step,
        answers=answers,
    )


def cancel_waiting(record: ExecutionRecord, recorder: Recorder) -> None:
    """Record every waiting (or answered, not yet continued) node of a paused run as cancelled."""
    for run in record.node_runs:
        if run.status in PAUSED_NODE_STATUSES:
            state = state_of(run)
            state.status, state.error, state.finished_at = "cancelled", "cancelled", datetime.now(UTC)
            for key in ("waiting", "release", "response"):
                state.flags.pop(key, None)
            recorder.event("node_failed", run.node_id, {"error": "cancelled", "cancelled": True})
            recorder.node_run(run.node_id, run.node_type, state)


def _waiting(run: NodeRunRecord | None) -> dict[str, Any]:
    """What a waiting node run waits for ({} when it does not wait)."""
    if run is None or run.status != "waiting":
        return {}
    waiting = run.flags.get("waiting")
    return dict(waiting) if isinstance(waiting, dict) else {}


def _who(ctx: TenantContext) -> str:
    return str(ctx.user_id) if ctx.user_id is not None else "system"
