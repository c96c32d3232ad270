"""The graphs `bench/engine.py` measures, and the floor it measures them against.

Three shapes of trivial nodes (a chain of 100, a fan-out of 100 with its join, a chain of
1000), each as a flow document of `bench_add` nodes, and a bare asyncio topological runner
(in-degree counting, one task per ready node, nothing recorded): the floor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from executor.nodes.base import NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.registry import register

# -- the workloads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A graph shape: `chain` of `size` nodes, or `fanout` (source -> `size` parallel nodes -> join)."""

    name: str
    shape: str
    size: int
    after: dict[str, list[str]] = field(init=False, repr=False)  # node id -> its upstream nodes, in order

    def __post_init__(self) -> None:
        if self.shape == "chain":
            after = {f"n{i}": [f"n{i - 1}"] if i else [] for i in range(self.size)}
        else:
            parts = [f"p{i}" for i in range(self.size)]
            after = {"src": [], **{name: ["src"] for name in parts}, "join": parts}
        object.__setattr__(self, "after", after)

    @property
    def nodes(self) -> int:
        return len(self.after)

    @property
    def last(self) -> str:
        return next(reversed(self.after))

    @property
    def expected(self) -> int:
        """The last node's output: a chain counts to `size`; a join sums `size` twos, plus 1."""
        return self.size if self.shape == "chain" else self.size * 2 + 1

    def document(self) -> dict[str, Any]:
        """The flow document: one `bench_add` node per node, one edge per dependency."""
        edges = [(source, target) for target, sources in self.after.items() for source in sources]
        return {
            "schema": "crewcanvas.flow/v1",
            "nodes": [{"id": n, "type": BenchAdd.type, "data": {"after": a}} for n, a in self.after.items()],
            "edges": [{"id": f"e{i}", "source": s, "target": t} for i, (s, t) in enumerate(edges)],
        }


WORKLOADS = (
    Workload("chain-100", "chain", 100),
    Workload("fanout-100", "fanout", 100),
    Workload("chain-1000", "chain", 1000),
)


class BenchAddData(NodeData):
    """The upstream nodes whose outputs are summed."""

    after: list[str] = []


@register
class BenchAdd(NodeType[BenchAddData]):
    """A trivial node for this bench only: the sum of its upstream outputs, plus 1."""

    type = "bench_add"
    data_model = BenchAddData
    meta = NodeMeta(label="Bench add", category="Bench", icon="add", help="Sums its inputs and adds 1.")

    async def run(self, data: BenchAddData, ctx: NodeContext) -> NodeOutcome:
        nodes = ctx.scope["nodes"]
        return NodeOutcome(output=sum(nodes[source]["output"] for source in data.after) + 1)


# -- the floor --------------------------------------------------------------------------------


async def _add(total: int) -> int:
    return total + 1


async def floor_run(workload: Workload) -> int:
    """Run the graph with nothing but asyncio: in-degree counts, a task per ready node, no records."""
    successors: dict[str, list[str]] = {node_id: [] for node_id in workload.after}
    for node_id, sources in workload.after.items():
        for source in sources:
            successors[source].append(node_id)
    waiting = {node_id: len(sources) for node_id, sources in workload.after.items()}
    outputs: dict[str, int] = {}
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    tasks: set[asyncio.Task[None]] = set()

    async def node(node_id: str) -> None:
        outputs[node_id] = await _add(sum(outputs[source] for source in workload.after[node_id]))
        for successor in successors[node_id]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                spawn(successor)
        if len(outputs) == len(workload.after):
            finished.set_result(None)

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not finished.done():
            finished.set_exception(task.exception())  # type: ignore[arg-type]  # checked just above

    def spawn(node_id: str) -> None:
        task = asyncio.create_task(node(node_id))
        tasks.add(task)
        task.add_done_callback(done)

    for node_id, count in waiting.items():
        if count == 0:
            spawn(node_id)
    await finished
    return outputs[workload.last]
