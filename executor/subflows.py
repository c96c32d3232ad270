"""Subflow runs: a subflow node runs another saved flow as a child execution, inline (the engine's `SubflowPort`).

The child is an `executions` row of its own (`parent_execution_id`, `parent_node_id`), driven by
the execution service's own loop, so it is journalled, listed and traced like any run. It runs
inside its parent's node, which cannot wait: a child that pauses (a human node, a breakpoint) is
stopped and fails the node, saying why. Nesting deeper than `MAX_SUBFLOW_DEPTH` fails too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from core.context import TenantContext
from core.errors import InvalidInput
from core.executions import ExecutionRecord, ExecutionStore
from executor.engine import RunRequest
from executor.errors import FlowInvalid, NodeFailed
from executor.ports import Runners
from executor.recorder import JournalPort, JournalRecorder
from executor.versions import Prepared

MAX_SUBFLOW_DEPTH = 8

Prepare = Callable[[TenantContext, uuid.UUID, Mapping[str, Any], int], Awaitable[Prepared]]
Drive = Callable[[TenantContext, ExecutionRecord, Prepared, RunRequest, JournalRecorder], Awaitable[None]]
Take = Callable[[TenantContext, uuid.UUID], Awaitable[bool]]
Stop = Callable[[TenantContext, uuid.UUID], Awaitable[None]]


class ChildRuns:
    """Runs subflows for the engine, with the execution service's prepare, drive, take-over and stop."""

    def __init__(
        self,
        *,
        store: ExecutionStore,
        journal: JournalPort,
        runners: Runners,
        prepare: Prepare,
        drive: Drive,
        take: Take,
        stop: Stop,
    ) -> None:
        self.store = store
        self.journal = journal
        self.runners = runners
        self._prepare = prepare
        self._drive = drive
        self._take = take
        self._stop = stop

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
            prepared = await self._prepare(ctx, flow_id, inputs, version)
        except FlowInvalid as exc:
            raise NodeFailed(f"flow {flow_id} version {version} is not valid: {exc}") from exc
        except InvalidInput as exc:
            raise NodeFailed(f"the subflow's inputs are wrong: {exc}") from exc
        child = await self.store.create(
            ctx,
            flow_id=flow_id,
            flow_version_id=prepared.version_id,
            version=version,
            inputs=prepared.inputs,
            options={"depth": depth},
            parent_execution_id=parent_execution,
            parent_node_id=parent_node,
            runner_id=self.runners.id,
        )
        recorder = JournalRecorder(self.journal, ctx.tenant_slug, child.id)
        recorder.event(
            "execution_started", None, {"flow_id": str(flow_id), "version": version, "inputs": prepared.inputs}
        )
        await self._drive(ctx, child, prepared, RunRequest(ctx, child.id, prepared.inputs), recorder)
        ended = await self.store.get(ctx, child.id)
        if ended.status == "waiting" and await self._take(ctx, child.id):
            # A subflow runs inside its parent's node, which cannot wait for days: the child ends here.
            await self._stop(ctx, child.id)
            raise NodeFailed(
                f"subflow execution {child.id} paused (a human node or a breakpoint); "
                "pauses work only in the flow a run starts with, not inside a subflow"
            )
        if ended.status != "completed":
            raise NodeFailed(f"subflow execution {child.id} {ended.status}: {ended.error or 'no detail'}")
        return dict(ended.outputs)
