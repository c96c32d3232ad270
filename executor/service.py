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
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput
from core.events import EventBus
from core.executions import (
    EventRecord,
    ExecutionPage,
    ExecutionRecord,
    ExecutionStore,
    NodeRunRecord,
    NodeRunSource,
)
from core.flow_store import FlowStore, VersionRecord
from executor.catalog import CatalogSource
from executor.document import FlowDocument, check_inputs, parse_document
from executor.engine import Engine, NodeState, Plan, RunRequest, TenantSlots
from executor.errors import FlowInvalid, NodeFailed
from executor.ports import LLMPort, NodeServices, ToolPort
from executor.registry import Registry
from executor.validation import validate_document

log = logging.getLogger(__name__)

FINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})
CONTROL_CHANNEL = "executions:control"
MAX_SUBFLOW_DEPTH = 8
#: How long a version's validation against the tenant's catalog is trusted before it is done again.
REVALIDATE_AFTER_S = 5.0


def channel(execution_id: uuid.UUID | str) -> str:
    """The bus channel of one execution's events."""
    return f"executions:{execution_id}"


class Runners(Protocol):
    """The app instances that run executions (`core.instances.InstanceRegistry` fits)."""

    id: uuid.UUID

    async def live(self) -> set[uuid.UUID]: ...

    async def reap(self) -> set[uuid.UUID]: ...


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
            flags={"continued": True} if state.continued else {},
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A flow version ready to run: its document, plan and checked inputs."""

    version: VersionRecord
    document: FlowDocument
    plan: Plan
    inputs: dict[str, Any]


class ExecutionService:
    """Starts, cancels, lists and recovers executions; also the engine's `SubflowPort`."""

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
        runners: Runners,
        tenant_slugs: Callable[[], Awaitable[builtins.list[str]]],
        max_concurrency: int = 8,
        tenant_concurrency: int = 32,
        sweep_every_s: float = 30.0,
    ) -> None:
        self.flows = flows
        self.store = store
        self.journal = journal
        self.bus = bus
        self.registry = registry
        self.catalog = catalog
        self.runners = runners
        self._tenant_slugs = tenant_slugs
        self._sweep_every_s = sweep_every_s
        self._sweeper: asyncio.Task[None] | None = None
        self.engine = Engine(
            NodeServices(llm=llm, tools=tools, subflows=self),
            max_concurrency=max_concurrency,
            tenant_slots=TenantSlots(tenant_concurrency),
        )
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Version id -> (document, plan, when it was last validated): versions never change.
        self._plans: OrderedDict[uuid.UUID, tuple[FlowDocument, Plan, float]] = OrderedDict()
        self._closing = False
        self._control: asyncio.Task[None] | None = None
        self._control_ready = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Interrupt runs of dead processes, then listen for cancel requests and sweep now and then."""
        await self.recover()
        self._control = asyncio.create_task(self._listen(), name="execution control")
        self._sweeper = asyncio.create_task(self._sweep(), name="execution sweep")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._control_ready.wait(), timeout=5)

    async def recover(self) -> int:
        """Runs whose process stopped (no heartbeat) become `interrupted`, their events and node runs kept."""
        live = await self.runners.live()
        count = await self.store.mark_interrupted(await self._tenant_slugs(), live_runners=live)
        if count:
            log.warning("marked %d execution(s) of stopped processes as interrupted", count)
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
        record = await self.flows.version(ctx, flow_id, version)
        document, plan = await self._plan(ctx, record)
        return Prepared(record, document, plan, check_inputs(document, inputs))

    async def start_run(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
    ) -> ExecutionRecord:
        """Start an execution of `flow_id` (its latest version unless `version`); returns once it is stored."""
        ctx.require(Role.EDITOR, "run flows")
        if self._closing:
            raise Conflict("the server is shutting down; start the run again in a moment")
        prepared = await self.prepare(ctx, flow_id, inputs or {}, version)
        execution = await self.store.create(
            ctx,
            flow_id=flow_id,
            flow_version_id=prepared.version.id,
            version=prepared.version.version,
            inputs=prepared.inputs,
            options={},
            runner_id=self.runners.id,
        )
        task = asyncio.create_task(self._execute(ctx, execution, prepared), name=f"execution {execution.id}")
        self._tasks[execution.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(execution.id, None))
        return execution

    async def wait(self, ctx: TenantContext, execution_id: uuid.UUID, timeout_s: float) -> ExecutionRecord:
        """The execution once it has ended, or as it stands after `timeout_s`."""
        task = self._tasks.get(execution_id)
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
        else:
            await self._wait_on_bus(ctx, execution_id, timeout_s)
        return await self.store.get(ctx, execution_id)

    async def _wait_on_bus(self, ctx: TenantContext, execution_id: uuid.UUID, timeout_s: float) -> None:
        async with self.bus.subscribe(channel(execution_id)) as messages:
            if (await self.store.get(ctx, execution_id)).status in FINAL:
                return
            await _until_final(messages, timeout_s)

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
    ) -> ExecutionPage:
        """Runs newest first; pass the previous page's `next_before` and `next_before_id` for the next page."""
        return await self.store.list(
            ctx, flow_id=flow_id, status=status, limit=limit, before=before, before_id=before_id
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
                await _until_final(messages, 5)
        return await self.store.get(ctx, execution_id)

    async def _listen(self) -> None:
        """Cancel requests from other processes, for runs of this one."""
        while True:
            try:
                async with self.bus.subscribe(CONTROL_CHANNEL) as messages:
                    self._control_ready.set()
                    async for message in messages:
                        if message.get("type") != "cancel":
                            continue
                        with contextlib.suppress(ValueError, TypeError):
                            task = self._tasks.get(uuid.UUID(str(message.get("execution_id"))))
                            if task is not None:
                                task.cancel()
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus went away: listen again after a pause, never give up
                log.exception("execution control channel failed; listening again in 1 s")
                await asyncio.sleep(1)

    # -- running -----------------------------------------------------------------------------

    async def _execute(self, ctx: TenantContext, execution: ExecutionRecord, prepared: Prepared) -> None:
        """Run one execution to its end and store how it ended; re-raises cancellation."""
        recorder = JournalRecorder(self.journal, ctx.tenant_slug, execution.id)
        recorder.event(
            "execution_started",
            None,
            {"flow_id": str(execution.flow_id), "version": execution.version, "inputs": prepared.inputs},
        )
        request = RunRequest(ctx, execution.id, prepared.inputs)
        try:
            result = await self.engine.run(prepared.plan, request, recorder)
        except asyncio.CancelledError:
            status = "interrupted" if self._closing else "cancelled"
            error = "the server stopped while it ran" if self._closing else "cancelled"
            await self._finish(recorder, execution.id, status, error=error)
            raise
        except Exception as exc:  # a bug in the engine: the run fails, saying so, and the service goes on
            log.exception("execution %s failed in the engine", execution.id)
            await self._finish(recorder, execution.id, "failed", error=f"internal error: {type(exc).__name__}")
            return
        await self._finish(recorder, execution.id, result.status, outputs=result.outputs, error=result.error)

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

    async def _plan(self, ctx: TenantContext, record: VersionRecord) -> tuple[FlowDocument, Plan]:
        """The version's document and plan, validated against what the tenant has now.

        A version is parsed and planned once; its validation (which reads the tenant's providers,
        tools and flows) is reused for `REVALIDATE_AFTER_S`, so a subflow run once per item of a
        long list does not read the whole catalog per item.
        """
        cached = self._plans.get(record.id)
        now = time.monotonic()
        if cached is not None:
            self._plans.move_to_end(record.id)
            document, plan, validated_at = cached
            if now - validated_at < REVALIDATE_AFTER_S:
                return document, plan
        else:
            document = parse_document(record.document)
            plan = None  # built once the document is known to be valid
        catalog, subflows = await self.catalog.load(ctx)
        problems = validate_document(
            document, self.registry, catalog, flow_id=str(record.flow_id), subflow_graph=subflows
        )
        if problems:
            raise FlowInvalid(problems)
        if plan is None:
            plan = Plan.build(document, self.registry)
        self._plans[record.id] = (document, plan, now)
        if len(self._plans) > 256:
            self._plans.popitem(last=False)
        return document, plan

    # -- SubflowPort -------------------------------------------------------------------------

    async def run_subflow(
        self,
        ctx: TenantContext,
        flow_id: uuid.UUID,
        version: int,
        inputs: Mapping[str, Any],
        *,
        parent_execution: uuid.UUID,
        parent_node: str,
    ) -> dict[str, Any]:
        """Run another flow as a child execution of `parent_execution`, inline; its outputs, or `NodeFailed`."""
        parent = await self.store.get(ctx, parent_execution)
        depth = int(parent.options.get("depth", 0)) + 1
        if depth > MAX_SUBFLOW_DEPTH:
            raise NodeFailed(f"subflows are nested more than {MAX_SUBFLOW_DEPTH} deep; is a flow calling itself?")
        try:
            prepared = await self.prepare(ctx, flow_id, inputs, version)
        except FlowInvalid as exc:
            raise NodeFailed(f"flow {flow_id} version {version} is not valid: {exc}") from exc
        except InvalidInput as exc:
            raise NodeFailed(f"the subflow's inputs are wrong: {exc}") from exc
        child = await self.store.create(
            ctx,
            flow_id=flow_id,
            flow_version_id=prepared.version.id,
            version=version,
            inputs=prepared.inputs,
            options={"depth": depth},
            parent_execution_id=parent_execution,
            parent_node_id=parent_node,
            runner_id=self.runners.id,
        )
        await self._execute(ctx, child, prepared)
        ended = await self.store.get(ctx, child.id)
        if ended.status != "completed":
            raise NodeFailed(f"subflow execution {child.id} {ended.status}: {ended.error or 'no detail'}")
        return dict(ended.outputs)

    async def follow(
        self, ctx: TenantContext, execution_id: uuid.UUID, *, after_seq: int = 0
    ) -> AsyncIterator[EventRecord | dict[str, Any]]:
        """Every event after `after_seq`, stored ones first, then live ones, each once; ends after the final one.

        Yields `EventRecord`s; a `{"type": "heartbeat"}` dict when nothing happened for 15 s.
        """
        ctx.require(Role.VIEWER, "watch runs")
        seen = after_seq
        async with self.bus.subscribe(channel(execution_id)) as messages:
            # Subscribed first, read second: nothing published in between can be missed.
            async for event in self._replay(ctx, execution_id, seen):
                seen = event.seq
                yield event
                if _is_final(event.type):
                    return
            if (await self.store.get(ctx, execution_id)).status in FINAL:
                # Ended with no final event stored (a process died mid-run and was swept): nothing more will come.
                return
            iterator = aiter(messages)
            while True:
                try:
                    message = await asyncio.wait_for(anext(iterator), timeout=15)
                except TimeoutError:
                    yield {"type": "heartbeat"}
                    if (await self.store.get(ctx, execution_id)).status in FINAL:
                        async for event in self._replay(ctx, execution_id, seen):
                            yield event
                        return
                    continue
                except StopAsyncIteration:
                    return
                if message.get("type") == "overflow" or int(message.get("seq", 0)) > seen + 1:
                    # Fell behind the bus, or missed a message: the store has everything, in order.
                    async for event in self._replay(ctx, execution_id, seen):
                        seen = event.seq
                        yield event
                        if _is_final(event.type):
                            return
                    continue
                seq = int(message.get("seq", 0))
                if seq <= seen:
                    continue
                event = _event_of(message)
                seen = event.seq
                yield event
                if _is_final(event.type):
                    return

    async def _replay(self, ctx: TenantContext, execution_id: uuid.UUID, after: int) -> AsyncIterator[EventRecord]:
        while True:
            stored = await self.store.events(ctx, execution_id, after_seq=after, limit=500)
            for event in stored:
                after = event.seq
                yield event
            if len(stored) < 500:
                return


async def _until_final(messages: AsyncIterator[dict[str, Any]], timeout_s: float) -> None:
    """Read bus messages until a run's final event, or for `timeout_s` at most."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            async for message in messages:
                if _is_final(str(message.get("type", ""))):
                    return


def _is_final(event_type: str) -> bool:
    return event_type.startswith("execution_") and event_type.removeprefix("execution_") in FINAL


def _event_of(message: Mapping[str, Any]) -> EventRecord:
    return EventRecord(
        execution_id=uuid.UUID(str(message["execution_id"])),
        seq=int(message["seq"]),
        ts=datetime.fromisoformat(str(message["ts"])),
        type=str(message["type"]),
        node_id=message.get("node_id"),
        data=dict(message.get("data") or {}),
    )
