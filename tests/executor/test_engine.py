"""The engine alone: concurrency bounds, starting from given states, join and skip rules, events in order."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from core.context import Role, TenantContext
from executor.document import parse_document
from executor.engine import Engine, NodeState, RunRequest, TenantSlots
from executor.nodes.base import NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.nodes.condition import ConditionNode
from executor.plan import Plan
from executor.ports import NodeServices
from executor.registry import Registry
from tests.executor.conftest import edge, node


class SleepData(NodeData):
    seconds: float = Field(default=0.05, ge=0)


@dataclass
class Gauge:
    """How many sleep nodes run at once, at most, and which ran."""

    running: int = 0
    peak: int = 0
    ran: list[str] = field(default_factory=list)


class SleepNode(NodeType[SleepData]):
    """Test-only: sleeps, counting how many of its kind run at once; outputs the sum of its inputs + 1."""

    type = "sleep"
    data_model = SleepData
    meta = NodeMeta(label="Sleep", category="Test", icon="bedtime", help="Sleeps.")
    gauge = Gauge()

    async def run(self, data: SleepData, ctx: NodeContext) -> NodeOutcome:
        gauge = self.gauge
        gauge.running += 1
        gauge.peak = max(gauge.peak, gauge.running)
        gauge.ran.append(ctx.node_id)
        try:
            await asyncio.sleep(data.seconds)
        finally:
            gauge.running -= 1
        upstream = [value["output"] for value in ctx.scope["nodes"].values() if isinstance(value["output"], int)]
        return NodeOutcome(output=max(upstream, default=0) + 1)


REGISTRY = Registry({"sleep": SleepNode(), "condition": ConditionNode()})


class Events:
    """An honest recorder: keeps what the engine reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []
        self.runs: dict[str, NodeState] = {}
        self.changed = asyncio.Condition()

    def event(self, type: str, node_id: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.events.append((type, node_id, data or {}))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def node_run(self, node_id: str, node_type: str, state: NodeState) -> None:
        self.runs[node_id] = state

    def of(self, kind: str) -> list[str | None]:
        return [node_id for type_, node_id, _ in self.events if type_ == kind]


def plan(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> Plan:
    raw = {"schema": "crewcanvas.flow/v1", "nodes": nodes, "edges": edges, "inputs": []}
    return Plan.build(parse_document(raw), REGISTRY)


def tenant(slug: str = "acme") -> TenantContext:
    return TenantContext(uuid.uuid4(), slug, uuid.uuid4(), Role.EDITOR)


def engine(**options: Any) -> Engine:
    unused: Any = None  # sleep nodes call no service
    return Engine(NodeServices(llm=unused, tools=unused, subflows=unused), **options)


def fan_out(width: int, seconds: float = 0.05) -> Plan:
    nodes = [node("src", "sleep", seconds=0)] + [node(f"n{i}", "sleep", seconds=seconds) for i in range(width)]
    return plan(nodes, [edge("src", f"n{i}") for i in range(width)])


async def test_ready_nodes_run_concurrently_up_to_the_bound_per_execution() -> None:
    SleepNode.gauge = Gauge()
    result = await engine(max_concurrency=3).run(fan_out(10), RunRequest(tenant(), uuid.uuid4(), {}), Events())
    assert result.status == "completed"
    assert SleepNode.gauge.peak == 3


async def test_runs_of_one_tenant_share_the_tenant_bound_and_other_tenants_do_not() -> None:
    SleepNode.gauge = Gauge()
    shared = engine(max_concurrency=10, tenant_slots=TenantSlots(4))
    acme = tenant("acme")
    runs = [shared.run(fan_out(6), RunRequest(acme, uuid.uuid4(), {}), Events()) for _ in range(2)]
    await asyncio.gather(*runs)
    assert SleepNode.gauge.peak == 4
    SleepNode.gauge = Gauge()
    others = [shared.run(fan_out(4), RunRequest(tenant(f"t{i}"), uuid.uuid4(), {}), Events()) for i in range(2)]
    await asyncio.gather(*others)
    assert SleepNode.gauge.peak == 8


async def test_a_run_can_start_from_given_upstream_outputs_without_running_them() -> None:
    SleepNode.gauge = Gauge()
    chain = plan(
        [node("a", "sleep", seconds=0), node("b", "sleep", seconds=0), node("c", "sleep", seconds=0)],
        [edge("a", "b"), edge("b", "c")],
    )
    given = {"a": NodeState(status="completed", output=41)}
    events = Events()
    result = await engine().run(chain, RunRequest(tenant(), uuid.uuid4(), {}, given=given), events)
    assert result.status == "completed"
    assert SleepNode.gauge.ran == ["b", "c"]
    assert result.states["b"].output == 42
    assert result.states["c"].output == 43
    assert events.of("node_started") == ["b", "c"]


async def test_skips_travel_down_an_untaken_branch_until_a_join_with_a_taken_one() -> None:
    flow = plan(
        [
            node("c", "condition", expression="false"),
            node("t1", "sleep", seconds=0),
            node("t2", "sleep", seconds=0),
            node("f1", "sleep", seconds=0),
            node("join", "sleep", seconds=0),
        ],
        [edge("c", "t1", "true"), edge("t1", "t2"), edge("c", "f1", "false"), edge("t2", "join"), edge("f1", "join")],
    )
    events = Events()
    result = await engine().run(flow, RunRequest(tenant(), uuid.uuid4(), {}), events)
    assert result.status == "completed"
    assert events.of("node_skipped") == ["t1", "t2"]
    assert result.states["join"].status == "completed"


async def test_cancelling_the_run_cancels_running_nodes_and_records_them() -> None:
    events = Events()
    task = asyncio.create_task(engine().run(fan_out(3, seconds=30), RunRequest(tenant(), uuid.uuid4(), {}), events))
    async with asyncio.timeout(10), events.changed:
        await events.changed.wait_for(lambda: len(events.of("node_started")) == 4)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the run was not cancelled")
    assert {events.runs[f"n{i}"].status for i in range(3)} == {"cancelled"}
    assert events.runs["src"].status == "completed"
