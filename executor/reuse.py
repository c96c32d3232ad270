"""What a new run takes over from an earlier one: run from a node, overrides, retry.

Both start from the earlier execution's stored node runs. A node run is *reusable* when it
reached a state downstream nodes can build on: completed, skipped, or failed with
`on_error: continue`.

- Run from node X (`from_node`): X and every node downstream of it run; every other node
  keeps its earlier state. An upstream node that has none, or an unusable one, is an
  error naming it (run from that node instead); a node that is neither upstream nor
  downstream of X and has nothing to reuse is left out of the run (skipped).
- Retry: a node keeps its earlier state when it is reusable, its definition is the same
  in the version that runs now, and every node feeding it keeps its state too; the rest
  runs again (the failed nodes and what depends on them).
- Overrides replace a node's output for one run: a node that would not run is given the
  override as its output; a node that would run emits it instead (`node_pinned`).
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.context import TenantContext
from core.errors import InvalidInput
from core.executions import ExecutionRecord, ExecutionStore, NodeRunRecord
from executor.document import FlowDocument
from executor.engine import NodeState, Recorder, Substitute
from executor.plan import Plan
from executor.recorder import state_of

#: Node-run statuses a later run can build on (failed only with `on_error: continue`).
_REUSABLE = frozenset({"completed", "skipped"})


@dataclass
class Carried:
    """The states a new run starts from, and the outputs it substitutes when their nodes become ready."""

    given: dict[str, NodeState] = field(default_factory=dict)
    substitutes: dict[str, Substitute] = field(default_factory=dict)


def reusable(run: NodeRunRecord | None) -> bool:
    """Whether downstream nodes can build on this node run."""
    if run is None:
        return False
    return run.status in _REUSABLE or (run.status == "failed" and bool(run.flags.get("continued")))


def downstream(plan: Plan, node_id: str) -> set[str]:
    """`node_id` and every node reachable from it."""
    seen = {node_id}
    queue = deque([node_id])
    while queue:
        for edge in plan.nodes[queue.popleft()].outgoing:
            if edge.target not in seen:
                seen.add(edge.target)
                queue.append(edge.target)
    return seen


def upstream(plan: Plan, targets: Collection[str]) -> set[str]:
    """Every node from which one of `targets` can be reached (the targets not included)."""
    seen: set[str] = set()
    queue = deque(targets)
    while queue:
        for edge in plan.nodes[queue.popleft()].incoming:
            if edge.source not in seen:
                seen.add(edge.source)
                queue.append(edge.source)
    return seen - set(targets)


def run_from(
    plan: Plan,
    runs: Mapping[str, NodeRunRecord],
    from_node: str,
    *,
    source: uuid.UUID,
    overrides: Mapping[str, Any],
) -> Carried:
    """The states for running `from_node` and what depends on it, reusing `source`'s other outputs."""
    if from_node not in plan.nodes:
        raise InvalidInput(f"node '{from_node}' is not in this version of the flow", field="from_node")
    rerun = downstream(plan, from_node)
    needed = upstream(plan, rerun)
    carried = Carried()
    missing: list[str] = []
    for node_id in plan.order:
        if node_id in rerun:
            if node_id in overrides:
                carried.substitutes[node_id] = Substitute(overrides[node_id], "override")
            continue
        if node_id in overrides:
            carried.given[node_id] = _overridden(plan, node_id, overrides[node_id])
        elif reusable(runs.get(node_id)):
            carried.given[node_id] = _reused(runs[node_id], source)
        elif node_id in needed:
            missing.append(node_id)
        else:
            carried.given[node_id] = _left_out(from_node)
    if missing:
        first = missing[0]
        state = runs[first].status if first in runs else "never ran"
        listed = ", ".join(f"'{node_id}'" for node_id in missing)
        raise InvalidInput(
            f"execution {source} has no usable output for upstream node(s) {listed} (node '{first}': {state}); "
            f"run from '{first}' instead, or give its output in overrides",
            field="from_node",
        )
    return carried


def retry(
    plan: Plan,
    runs: Mapping[str, NodeRunRecord],
    *,
    source: uuid.UUID,
    changed: Collection[str],
    overrides: Mapping[str, Any],
) -> Carried:
    """The states for retrying `source`: what succeeded is kept, failed nodes and what they feed run again."""
    carried = Carried()
    for node_id in _topological(plan):
        node = plan.nodes[node_id]
        if node_id in overrides:
            carried.substitutes[node_id] = Substitute(overrides[node_id], "override")
            continue
        feeders_kept = all(edge.source in carried.given for edge in node.incoming)
        if feeders_kept and node_id not in changed and reusable(runs.get(node_id)):
            carried.given[node_id] = _reused(runs[node_id], source)
    return carried


def substitutes(overrides: Mapping[str, Any], pins: Mapping[str, Any]) -> dict[str, Substitute]:
    """Outputs emitted instead of running: overrides first, then pinned outputs (when pins are used)."""
    result = {node_id: Substitute(output, "pin") for node_id, output in pins.items()}
    result.update({node_id: Substitute(output, "override") for node_id, output in overrides.items()})
    return result


def announce(recorder: Recorder, plan: Plan, given: Mapping[str, NodeState]) -> None:
    """Record the states a new run starts from, as events and node runs of its own."""
    for node_id in plan.order:
        state = given.get(node_id)
        if state is None:
            continue
        node_type = plan.nodes[node_id].type.type
        flags = state.flags
        if state.status == "skipped":
            recorder.event("node_skipped", node_id, {"reason": flags.get("left_out") or "skipped in the earlier run"})
        elif flags.get("overridden"):
            handles = sorted(state.taken) if state.taken is not None else None
            recorder.event("node_pinned", node_id, {"output": state.output, "source": "override", "handles": handles})
        else:
            handles = sorted(state.taken) if state.taken is not None else None
            data = {"output": state.output, "handles": handles, "reused_from": flags.get("reused_from")}
            recorder.event("node_completed", node_id, data)
        recorder.node_run(node_id, node_type, state)


def _reused(run: NodeRunRecord, source: uuid.UUID) -> NodeState:
    state = state_of(run)
    state.flags = {key: value for key, value in state.flags.items() if key not in {"waiting", "reused_from"}}
    state.flags["reused_from"] = str(source)
    return state


def _overridden(plan: Plan, node_id: str, output: Any) -> NodeState:
    node = plan.nodes[node_id]
    now = datetime.now(UTC)
    return NodeState(
        status="completed",
        output=output,
        taken=node.type.handles_of(node.data, output),
        started_at=now,
        finished_at=now,
        flags={"overridden": True},
    )


def _left_out(from_node: str) -> NodeState:
    now = datetime.now(UTC)
    reason = f"not part of this run (it started from '{from_node}' and this node is not upstream of it)"
    return NodeState(status="skipped", started_at=now, finished_at=now, flags={"left_out": reason})


def _topological(plan: Plan) -> list[str]:
    """Node ids with every node after the nodes that feed it (document order among equals)."""
    pending = {node_id: len({edge.source for edge in plan.nodes[node_id].incoming}) for node_id in plan.order}
    ready = deque(node_id for node_id in plan.order if pending[node_id] == 0)
    order: list[str] = []
    while ready:
        node_id = ready.popleft()
        order.append(node_id)
        for target in dict.fromkeys(edge.target for edge in plan.nodes[node_id].outgoing):
            pending[target] -= 1
            if pending[target] == 0:
                ready.append(target)
    return order


def changed_nodes(before: FlowDocument, after: FlowDocument) -> set[str]:
    """Nodes of `after` that are new or whose type, data or pinned output differ from `before`."""
    old = {node.id: (node.type, node.data, node.pinned_output) for node in before.nodes}
    return {node.id for node in after.nodes if old.get(node.id) != (node.type, node.data, node.pinned_output)}


def check_named(plan: Plan, from_node: str | None, overrides: Mapping[str, Any], breakpoints: Collection[str]) -> None:
    """Every node the options name must be in the version that runs."""
    named = [("from_node", from_node)] if from_node else []
    named += [(f"overrides.{node_id}", node_id) for node_id in overrides]
    named += [(f"breakpoints.{index}", node_id) for index, node_id in enumerate(breakpoints)]
    for field_name, node_id in named:
        if node_id not in plan.nodes:
            raise InvalidInput(f"node '{node_id}' is not in this version of the flow", field=field_name)


async def source_run(
    store: ExecutionStore, ctx: TenantContext, flow_id: uuid.UUID, execution_id: uuid.UUID | None
) -> ExecutionRecord:
    """The earlier run whose outputs a run from a node reuses: the one named, or the flow's latest."""
    if execution_id is None:
        page = await store.list(ctx, flow_id=flow_id, limit=1)
        if not page.items:
            raise InvalidInput(
                "this flow has no earlier run to reuse outputs from; run the whole flow first", field="from_node"
            )
        execution_id = page.items[0].id
    source = await store.get(ctx, execution_id)
    if source.flow_id != flow_id:
        raise InvalidInput(f"execution {execution_id} is a run of another flow", field="reuse_execution")
    return source


@dataclass(frozen=True)
class RunOptions:
    """How a run starts: from a node reusing an earlier run, with overrides, pins and breakpoints."""

    from_node: str | None = None
    reuse_execution: uuid.UUID | None = None  # the earlier run; the flow's latest when `from_node` is given alone
    overrides: Mapping[str, Any] = field(default_factory=dict)  # node id -> output used instead of running it
    use_pins: bool = False
    breakpoints: tuple[str, ...] = ()
