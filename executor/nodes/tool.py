"""The `tool` node: runs a saved tool in the sandbox with arguments rendered from templates."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from core.errors import CoreError
from core.text import JsonObject
from executor.errors import NodeFailed, TemplateError
from executor.nodes.base import Catalog, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType, ReferenceKind
from executor.registry import register
from executor.templates import templates_in


class ToolData(NodeData):
    """Which saved tool to run, and its arguments."""

    tool_id: uuid.UUID = Field(description="The saved tool to run.")
    arguments: JsonObject = Field(
        default_factory=dict,
        description='Arguments by name: values, or templates ("{{ nodes.a.output.city }}" keeps the type).',
    )


@register
class ToolNode(NodeType[ToolData]):
    """Renders the arguments and runs the tool; its output is the tool's output."""

    type = "tool"
    data_model = ToolData
    meta = NodeMeta(
        label="Tool",
        category="Tools",
        icon="build",
        help="Runs one of your saved tools in the sandbox and outputs what it returns.",
    )

    def templates(self, data: ToolData) -> dict[str, str]:
        return templates_in(data.arguments, "arguments")

    def references(self, data: ToolData) -> list[tuple[ReferenceKind, str, str]]:
        return [("tool", str(data.tool_id), "tool_id")]

    def check(self, data: ToolData, catalog: Catalog) -> list[tuple[str, str]]:
        tool = catalog.tools.get(str(data.tool_id))
        schema = tool.get("input_schema") if tool else None
        if not isinstance(schema, Mapping):
            return []
        name = str(tool.get("name") or data.tool_id) if tool else str(data.tool_id)
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        problems = [
            (f"arguments.{prop}", f"tool '{name}' needs the argument '{prop}'; add it")
            for prop in schema.get("required") or []
            if prop not in data.arguments
        ]
        if schema.get("additionalProperties") is False:
            known = ", ".join(properties) or "none"
            problems.extend(
                (f"arguments.{arg}", f"tool '{name}' takes no argument '{arg}'; its arguments are: {known}")
                for arg in data.arguments
                if arg not in properties
            )
        return problems

    async def run(self, data: ToolData, ctx: NodeContext) -> NodeOutcome:
        try:
            arguments: dict[str, Any] = ctx.render_value(data.arguments)
        except TemplateError as exc:
            raise NodeFailed(f"the arguments could not be rendered: {exc}") from exc
        try:
            output = await ctx.services.tools.run_saved(ctx.tenant, data.tool_id, arguments)
        except CoreError as exc:
            raise NodeFailed(str(exc)) from exc
        return NodeOutcome(output=output)
