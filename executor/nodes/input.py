"""The `input` node: where a flow starts; its output is the run's inputs."""

from __future__ import annotations

from typing import Any, ClassVar

from executor.nodes.base import Handle, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.registry import register


class InputData(NodeData):
    """An input node has only the common fields; the inputs themselves are declared on the flow."""


@register
class InputNode(NodeType[InputData]):
    """Outputs the flow's inputs, so nodes after it can start from them."""

    type = "input"
    data_model = InputData
    meta = NodeMeta(
        label="Input",
        category="Flow",
        icon="login",
        help="Where the flow starts: its output is the inputs the run was started with.",
    )
    inputs: ClassVar[tuple[Handle, ...]] = ()

    async def run(self, data: InputData, ctx: NodeContext) -> NodeOutcome:
        inputs: dict[str, Any] = dict(ctx.scope.get("inputs") or {})
        return NodeOutcome(output=inputs)
