"""Executions: start a flow version, watch it, cancel it, and recover what a dead process left.

`ExecutionService.start` validates the version and the inputs, stores an `executions`
row and runs the engine as a task of this process (queue mode, later, hands it to a
worker instead). Everything the engine reports goes through a `JournalRecorder`: events
get a gap-free `seq` and go to the journal, which writes them in batches and only then
publishes them on the bus channel `executions:<id>`; node runs are upserted the same way.

Cancelling reaches the run wherever it runs: locally the task is cancelled; otherwise a
message on the bus channel `executions:control` asks the process that runs it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput
from core.events import EventBus
from core.executions import TERMINAL_STATUSES as FINAL
from core.executions import EventRecord, ExecutionPage, ExecutionRecord, ExecutionStore
from core.flow_store import FlowStore
from core.mail import Mailer
from executor.catalog import CatalogSource
from executor.document import parse_document
from executor.engine import Engine, Inbox, RunRequest, RunResult, TenantSlots
from executor.pauses import Pauses, TimerPort, answers_of, cancel_waiting, resumed_request
from executor.ports import CrewPort, LLMPort, NodeServices, Runners, ToolPort
from executor.recorder import JournalPort, JournalRecorder
from executor.registry import Registry
from executor.reuse import (
    Carried,
    RunOptions,
    announce,
    changed_nodes,
    check_named,
    retry,
    run_from,
    source_run,
    substitutes,
)
from executor.subflows import ChildRuns
from executor.versions import Prepared, VersionPlans
from executor.watching import channel, follow, until_final, until_paused_or_ended

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "executions:control"


class ExecutionService:
    """Starts, cancels, lists and recovers executions (subflow nodes' child runs: `executor.subflows`)."""

    def __init__(
        self,
        *,
        flows: FlowStore,
        store: ExecutionStore,
        journal: JournalPort,
        bus: EventBus,
        registry: Registry,
        catalog: CatalogSource,
        llm: LLMPort,
        tools: ToolPort,
        crews: CrewPort | None = None,
        runners: Runners,
        timers: TimerPort,
        mail: Mailer,
        tenants: Callable[[], Awaitable[dict[str, uuid.UUID]]],
        max_concurrency: int = 8,
        tenant_concurrency: int = 32,
        sweep_every_s: float = 30.0,
        timer_every_s: float = 2.0,
        public_url: str = "",
    ) -> None:
        self.flows = flows
        self.store = store
        self.journal = journal
        self.bus = bus
        self.registry = registry
        self.versions = VersionPlans(flows, registry, catalog)
        self.runners = runners
        self._tenants = tenants  # slug -> id of every tenant
        self._sweep_every_s = sweep_every_s
        self._sweeper: asyncio.Task[None] | None = None
        self.subflows = ChildRuns(
            store=store,
            journal=journal,
            runners=runners,
            prepare=self.prepare,
            drive=self._drive,
            take=self._take,
            stop=self._stop,
        )
        self.engine = Engine(
            NodeServices(llm=llm, tools=tools, subflows=self.subflows, crews=crews),
            max_concurrency=max_concurrency,
            tenant_slots=TenantSlots(tenant_concurrency),
        )
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._inboxes: dict[uuid.UUID, tuple[TenantContext, Inbox]] = {}  # runs going on here, for answers
        # Version id -> (document, plan, when it was last validated): versions never change.
        self._closing = False
        self._control: asyncio.Task[None] | None = None
        self._control_ready = asyncio.Event()
        self.pauses = Pauses(store, timers, mail, wake=self.wake, every_s=timer_every_s, public_url=public_url)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Interrupt runs of dead processes, then listen for cancel requests and sweep now and then."""
        await self.recover()
        self._control = asyncio.create_task(self._listen(), name="execution control")
        self._sweeper = asyncio.create_task(self._sweep(), name="execution sweep")
        self.pauses.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._control_ready.wait(), timeout=5)

    async def recover(self) -> int:
        """Runs whose process stopped (no heartbeat) become `interrupted`, their events and node runs kept.

        Paused runs with an answer stored but never taken up (the process that took the answer
        stopped before it woke the run) continue here."""
        live = await self.runners.live()
        tenants = await self._tenants()
        count = await self.store.mark_interrupted(tenants, live_runners=live)
        if count:
            log.warning("marked %d execution(s) of stopped processes as interrupted", count)
        for slug, stranded in (await self.store.answered_while_paused(tenants)).items():
            for execution_id in stranded:
                await self.wake(TenantContext(tenants[slug], slug, None, Role.EDITOR), execution_id)
        return count

    async def _sweep(self) -> None:
        """Find the runs of replicas that died while this one lives on."""
        while True:
            await asyncio.sleep(self._sweep_every_s)
            try:
                # Reading every tenant's runs is only worth it once some process has died.
                if await self.runners.reap():
                    await self.recover()
            except Exception:  # the database may be briefly away: sweep again next time
                log.warning("sweeping interrupted executions failed; trying again later", exc_info=True)

    async def aclose(self) -> None:
        """Stop: runs still going are cancelled and stored as `interrupted`, so they can be retried."""
        self._closing = True
        await self.pauses.aclose()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for background in (self._control, self._sweeper):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await self.journal.flush()

    # -- starting --------------------------------------------------------------------------

    async def prepare(
        self, ctx: TenantContext, flow_id: uuid.UUID, inputs: Mapping[str, Any], version: int | None = None
    ) -> Prepared:
        """Load and validate a version and check `inputs` against it; `FlowInvalid` or `InvalidInput` if wrong."""
        return await self.versions.prepare(ctx, flow_id, inputs, version)

    async def start_run(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        options: RunOptions | None = None,
    ) -> ExecutionRecord:
        """Start an execution of `flow_id` (its latest version unless `version`); returns once it is stored.

        `options` start it from a node reusing an earlier run, with overrides, pinned outputs or
        breakpoints; without them every node runs and pins are ignored."""
        ctx.require(Role.EDITOR, "run flows")
        options = options or RunOptions()
        prepared = await self.prepare(ctx, flow_id, inputs or {}, version)
        check_named(prepared.plan, options.from_node, options.overrides, options.breakpoints)
        carried = Carried()
        stored: dict[str, Any] = {}
        if options.from_node is not None:
            source = await source_run(self.store, ctx, flow_id, options.reuse_execution)
            carried = run_from(
                prepared.plan, source.runs_by_node(), options.from_node, source=source.id, overrides=options.overrides
            )
            stored = {"from_node": options.from_node, "reuse_execution": str(source.id)}
        elif options.reuse_execution is not None:
            raise InvalidInput("reuse_execution needs from_node: the node to run from", field="from_node")
        else:
            carried.substitutes = substitutes(options.overrides, {})
        if options.use_pins:
            pinned = {k: v for k, v in prepared.pins().items() if k not in carried.given}
            carried.substitutes = {**substitutes({}, pinned), **carried.substitutes}
        stored |= {
            "overrides": dict(options.overrides),
            "use_pins": options.use_pins,
            "breakpoints": list(dict.fromkeys(options.breakpoints)),
        }
        return await self._launch(ctx, prepared, carried, stored, frozenset(options.breakpoints))

    async def start_document(
        self, ctx: TenantContext, document: Mapping[str, Any], inputs: Mapping[str, Any], *, origin: str
    ) -> ExecutionRecord:
        """Start an execution of an unsaved document (a chat with a crew builds one per message).

        It runs, streams and is stored like any run (`options.origin` says what started it);
        with no saved version behind it, it cannot be retried or resumed after a restart, so
        such documents hold no human nodes or breakpoints."""
        ctx.require(Role.EDITOR, "run flows")
        prepared = await self.versions.prepare_document(ctx, document, inputs)
        return await self._launch(ctx, prepared, Carried(), {"origin": origin}, frozenset())

    async def retry(self, ctx: TenantContext, execution_id: uuid.UUID, *, latest: bool = False) -> ExecutionRecord:
        """Run a failed, cancelled or interrupted execution again from its failed nodes, keeping what succeeded.

        On the version it ran, or with `latest` on the flow's latest version (where a node
        whose definition changed runs again too). The new execution links to this one."""
        ctx.require(Role.EDITOR, "retry runs")
        old = await self.store.get(ctx, execution_id)
        if old.status not in {"failed", "cancelled", "interrupted"}:
            raise Conflict(
                f"execution {execution_id} is {old.status}; only a failed, cancelled or interrupted run can be retried"
            )
        if old.flow_id is None:
            raise Conflict(f"execution {execution_id} has no flow any more; start a new run instead")
        prepared = await self.prepare(ctx, old.flow_id, old.inputs, None if latest else old.version)
        changed: set[str] = set()
        if prepared.number != old.version:
            before = parse_document((await self.flows.version(ctx, old.flow_id, old.version)).document)
            changed = changed_nodes(before, prepared.document)
        overrides = dict(old.options.get("overrides") or {})
        carried = retry(prepared.plan, old.runs_by_node(), source=old.id, changed=changed, overrides=overrides)
        use_pins = bool(old.options.get("use_pins"))
        if use_pins:
            pinned = {k: v for k, v in prepared.pins().items() if k not in carried.given}
            carried.substitutes = {**substitutes({}, pinned), **carried.substitutes}
        stored = {"retry_of": str(old.id), "overrides": overrides, "use_pins": use_pins, "breakpoints": []}
        return await self._launch(ctx, prepared, carried, stored, frozenset())

    async def _launch(
        self,
        ctx: TenantContext,
        prepared: Prepared,
        carried: Carried,
        options: dict[str, Any],
        breakpoints: frozenset[str],
    ) -> ExecutionRecord:
        if self._closing:
            raise Conflict("the server is shutting down; start the run again in a moment")
        execution = await self.store.create(
            ctx,
            flow_id=prepared.flow_id,
            flow_version_id=prepared.version_id,
            version=prepared.number,
            inputs=prepared.inputs,
            options=options,
            runner_id=self.runners.id,
        )
        request = RunRequest(
            ctx,
            execution.id,
            prepared.inputs,
            given=carried.given,
            substitutes=carried.substitutes,
            breakpoints=breakpoints,
        )
        recorder = JournalRecorder(self.journal, ctx.tenant_slug, execution.id)
        recorder.event(
            "execution_started",
            None,
            {
                "flow_id": str(execution.flow_id) if execution.flow_id else None,
                "version": execution.version,
                "inputs": prepared.inputs,
                **options,
            },
        )
        announce(recorder, prepared.plan, carried.given)
        self._spawn(execution.id, self._drive(ctx, execution, prepared, request, recorder))
        return execution

    def _spawn(self, execution_id: uuid.UUID, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"execution {execution_id}")
        self._tasks[execution_id] = task
        # Only this task's entry: a paused run may be continued by a new task before the old one is gone.
        task.add_done_callback(
            lambda done: self._tasks.pop(execution_id) if self._tasks.get(execution_id) is done else None
        )

    async def wait(self, ctx: TenantContext, execution_id: uuid.UUID, timeout_s: float) -> ExecutionRecord:
        """The execution once it has ended or paused, or as it stands after `timeout_s`."""
        task = self._tasks.get(execution_id)
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
        else:
            await until_paused_or_ended(self.store, self.bus, ctx, execution_id, timeout_s)
        return await self.store.get(ctx, execution_id)

    # -- watching and stopping -------------------------------------------------------------

    async def get(self, ctx: TenantContext, execution_id: uuid.UUID) -> ExecutionRecord:
        return await self.store.get(ctx, execution_id)

    async def list(
        self,
        ctx: TenantContext,
        *,
        flow_id: uuid.UUID | None = None,
        status: str | None = None,
        limit: int = 50,
        before: datetime | None = None,
        before_id: uuid.UUID | None = None,
        parent_execution_id: uuid.UUID | None = None,
    ) -> ExecutionPage:
        """Runs newest first; pass the previous page's `next_before` and `next_before_id` for the next page.

        `parent_execution_id`: only the runs that run's subflow nodes started.
        """
        return await self.store.list(
            ctx,
            flow_id=flow_id,
            status=status,
            limit=limit,
            before=before,
            before_id=before_id,
            parent_execution_id=parent_execution_id,
        )

    async def events(
        self, ctx: TenantContext, execution_id: uuid.UUID, *, after_seq: int = 0, limit: int = 500
    ) -> builtins.list[EventRecord]:
        return await self.store.events(ctx, execution_id, after_seq=after_seq, limit=limit)

    async def cancel(self, ctx: TenantContext, execution_id: uuid.UUID) -> ExecutionRecord:
        """Cancel a running execution (running nodes are stopped within a second); returns its record."""
        ctx.require(Role.EDITOR, "cancel runs")
        execution = await self.store.get(ctx, execution_id)
        if execution.status in FINAL:
            raise Conflict(f"execution {execution_id} has already ended ({execution.status}); nothing to cancel")
        if execution.status == "waiting" and await self._take(ctx, execution_id):
            await self._stop(ctx, execution_id)
            return await self.store.get(ctx, execution_id)
        task = self._tasks.get(execution_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 5)
        else:
            # Another process runs it (or ran it and died: the start-up sweep marks those interrupted).
            message = {"type": "cancel", "execution_id": str(execution_id), "tenant": ctx.tenant_slug}
            async with self.bus.subscribe(channel(execution_id)) as messages:
                await self.bus.publish(CONTROL_CHANNEL, message)
                await until_final(messages, 5)
        return await self.store.get(ctx, execution_id)

    async def _listen(self) -> None:
        """Cancel requests and answers (wake) from other processes, for runs of this one."""
        while True:
            try:
                async with self.bus.subscribe(CONTROL_CHANNEL) as messages:
                    self._control_ready.set()
                    async for message in messages:
                        with contextlib.suppress(ValueError, TypeError):
                            execution_id = uuid.UUID(str(message.get("execution_id")))
                            if message.get("type") == "wake":
                                await self._deliver(execution_id)
                            elif message.get("type") == "cancel" and (task := self._tasks.get(execution_id)):
                                task.cancel()
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus went away: listen again after a pause, never give up
                log.exception("execution control channel failed; listening again in 1 s")
                await asyncio.sleep(1)

    # -- running -----------------------------------------------------------------------------

    async def _drive(
        self,
        ctx: TenantContext,
        execution: ExecutionRecord,
        prepared: Prepared,
        request: RunRequest,
        recorder: JournalRecorder,
    ) -> None:
        """Run an execution until it ends or pauses with nobody's answer pending; store how it stopped.

        Re-raises cancellation."""
        try:
            while True:
                before = {node_id for node_id, state in request.given.items() if state.status == "waiting"}
                request.inbox = Inbox()
                self._inboxes[execution.id] = (ctx, request.inbox)
                try:
                    result = await self.engine.run(prepared.plan, request, recorder)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug in the engine: the run fails, saying so, and the service goes on
                    log.exception("execution %s failed in the engine", execution.id)
                    bug = f"internal error: {type(exc).__name__}"
                    await self._finish(recorder, execution.id, "failed", error=bug)
                    return
                finally:
                    self._inboxes.pop(execution.id, None)
                if result.status != "waiting":
                    await self._finish(
                        recorder, execution.id, result.status, outputs=result.outputs, error=result.error
                    )
                    return
                if not await self._pause(ctx, execution.id, prepared, recorder, result, before):
                    return
                # Someone answered while the run went on: take the run back and continue.
                if not await self._take(ctx, execution.id):
                    return  # another process took it first
                record = await self.store.get(ctx, execution.id)
                request = resumed_request(ctx, record, prepared.pins(), recorder)
        except asyncio.CancelledError:
            # Shielded: a second cancellation must not leave the run half-recorded.
            if self._closing:
                stop = self._stop(ctx, execution.id, "interrupted", "the server stopped while it ran", recorder)
            else:
                stop = self._stop(ctx, execution.id, recorder=recorder)
            await asyncio.shield(stop)
            raise

    async def _stop(
        self,
        ctx: TenantContext,
        execution_id: uuid.UUID,
        status: str = "cancelled",
        error: str = "cancelled",
        recorder: JournalRecorder | None = None,
    ) -> None:
        """End a run that was cancelled, paused or not (or stopped with the server), its waiting nodes too."""
        await self.journal.flush()
        record = await self.store.get(ctx, execution_id)
        if record.status in FINAL:
            return  # ended meanwhile (cancelled while it paused)
        recorder = recorder or JournalRecorder(self.journal, ctx.tenant_slug, execution_id, record.last_seq)
        cancel_waiting(record, recorder)
        await self._store_end(recorder, execution_id, status, None, error)

    async def _pause(
        self,
        ctx: TenantContext,
        execution_id: uuid.UUID,
        prepared: Prepared,
        recorder: JournalRecorder,
        result: RunResult,
        before: set[str],
    ) -> bool:
        """Store the pause (events first, so a process that takes the run over numbers on from them).

        Whether answers came in meanwhile (then the run continues here, if it can take it back)."""
        waiting = {node_id: state for node_id, state in result.states.items() if state.status == "waiting"}
        summary = [
            {"node_id": node_id, "reason": state.flags.get("waiting", {}).get("reason")}
            for node_id, state in waiting.items()
        ]
        recorder.event("execution_waiting", None, {"nodes": summary})
        await self.journal.flush()
        await self.store.move(ctx.tenant_slug, execution_id, "running", "waiting", runner_id=self.runners.id)
        fresh = {node_id: waiting[node_id] for node_id in waiting.keys() - before}
        await self.pauses.arm(ctx, execution_id, prepared, fresh)
        record = await self.store.get(ctx, execution_id)
        return any(run.status in {"answered", "released"} for run in record.node_runs)

    async def wake(self, ctx: TenantContext, execution_id: uuid.UUID) -> None:
        """Answers were stored for a run's waiting nodes: continue it here if it is paused.

        A run that goes on (other branches still run) gets them at once from the process running
        it; whatever is missed there is found when that run would pause, so nothing is lost."""
        if self._closing:
            return
        if not await self._take(ctx, execution_id):
            if not await self._deliver(execution_id):
                await self.bus.publish(CONTROL_CHANNEL, {"type": "wake", "execution_id": str(execution_id)})
            return
        try:
            record = await self.store.get(ctx, execution_id)
            if record.flow_id is None or record.version is None:
                raise Conflict(f"execution {execution_id} has no flow version any more")
            prepared = await self.prepare(ctx, record.flow_id, record.inputs, record.version)
        except Exception as exc:  # the flow changed under the run (deleted, a tool gone): end it, saying why
            record = await self.store.get(ctx, execution_id)
            recorder = JournalRecorder(self.journal, ctx.tenant_slug, execution_id, record.last_seq)
            cancel_waiting(record, recorder)
            await self._finish(recorder, execution_id, "failed", error=f"could not resume: {exc}")
            return
        recorder = JournalRecorder(self.journal, ctx.tenant_slug, execution_id, record.last_seq)
        request = resumed_request(ctx, record, prepared.pins(), recorder)
        self._spawn(execution_id, self._drive(ctx, record, prepared, request, recorder))

    async def _deliver(self, execution_id: uuid.UUID) -> bool:
        """Hand the stored answers to the run if this process runs it; whether it does."""
        entry = self._inboxes.get(execution_id)
        if entry is None:
            return False
        ctx, inbox = entry
        answers, step = answers_of(await self.store.get(ctx, execution_id))
        if not step:  # stepping changes how the run goes on: that waits until it pauses
            inbox.deliver(answers)
        return True

    async def _take(self, ctx: TenantContext, execution_id: uuid.UUID) -> bool:
        """Take a paused run over for this process (exactly one process gets it)."""
        return await self.store.move(ctx.tenant_slug, execution_id, "waiting", "running", runner_id=self.runners.id)

    async def _finish(
        self,
        recorder: JournalRecorder,
        execution_id: uuid.UUID,
        status: str,
        *,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Node runs and events first, then the final status, then the final event (a client seeing it can read all).

        Shielded: a cancellation arriving meanwhile does not leave the run half-recorded."""
        await asyncio.shield(self._store_end(recorder, execution_id, status, outputs, error))

    async def _store_end(
        self,
        recorder: JournalRecorder,
        execution_id: uuid.UUID,
        status: str,
        outputs: dict[str, Any] | None,
        error: str | None,
    ) -> None:
        await self.journal.flush()
        await self.store.finish(recorder.tenant_slug, execution_id, status, outputs=outputs, error=error)
        data: dict[str, Any] = {"status": status}
        if outputs is not None:
            data["outputs"] = outputs
        if error is not None:
            data["error"] = error
        recorder.event(f"execution_{status}", None, data)
        await self.journal.flush()
        await self.pauses.disarm(recorder.tenant_slug, execution_id)

    def follow(
        self, ctx: TenantContext, execution_id: uuid.UUID, *, after_seq: int = 0
    ) -> AsyncIterator[EventRecord | dict[str, Any]]:
        """Every event after `after_seq`, stored ones first, then live ones, each once; ends after the final one.

        Yields `EventRecord`s; a `{"type": "heartbeat"}` dict when nothing happened for 15 s."""
        ctx.require(Role.VIEWER, "watch runs")
        return follow(self.store, self.bus, ctx, execution_id, after_seq=after_seq)
