"""The `output` node: one named result of the flow, rendered from a template."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from core.text import Text
from executor.document import Identifier
from executor.errors import NodeFailed, TemplateError
from executor.nodes.base import Handle, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.registry import register


class OutputData(NodeData):
    """What the flow returns under `name`."""

    value: Text = Field(
        default="",
        description="A template such as {{ nodes.summarise.output }}; exactly one {{ ... }} keeps the value's type.",
    )
    name: Identifier = Field(default="result", description="The key of this value in the execution's outputs.")


@register
class OutputNode(NodeType[OutputData]):
    """Renders `value`; the engine gathers output nodes' outputs into the execution's outputs by `name`."""

    type = "output"
    data_model = OutputData
    meta = NodeMeta(
        label="Output",
        category="Flow",
        icon="logout",
        help="A result of the flow: renders a template and returns it under a name.",
    )
    outputs: ClassVar[tuple[Handle, ...]] = ()

    def result_key(self, data: OutputData) -> str | None:
        return data.name

    def templates(self, data: OutputData) -> dict[str, str]:
        return {"value": data.value}

    async def run(self, data: OutputData, ctx: NodeContext) -> NodeOutcome:
        try:
            return NodeOutcome(output=ctx.render_value(data.value))
        except TemplateError as exc:
            raise NodeFailed(f"value: {exc}") from exc
