"""The `condition` node: a CEL expression chooses the `true` or the `false` handle."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, StringConstraints

from core.text import Text
from executor.errors import NodeFailed, TemplateError
from executor.nodes.base import Handle, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.registry import register

#: A CEL expression as node data.
Expression = Annotated[Text, StringConstraints(min_length=1)]


class ConditionData(NodeData):
    """The expression that decides."""

    expression: Expression = Field(description="CEL giving true or false, e.g. nodes.check.output.score > 0.5")


@register
class ConditionNode(NodeType[ConditionData]):
    """Evaluates the expression; only the nodes after the handle it chose run."""

    type = "condition"
    data_model = ConditionData
    meta = NodeMeta(
        label="Condition",
        category="Logic",
        icon="call_split",
        help="Continues on the true or the false branch, as a CEL expression decides.",
    )
    outputs: ClassVar[tuple[Handle, ...]] = (Handle("true", "True"), Handle("false", "False"))

    def expressions(self, data: ConditionData) -> dict[str, str]:
        return {"expression": data.expression}

    def handles_of(self, data: ConditionData, output: Any) -> frozenset[str] | None:
        result = output.get("result") if isinstance(output, dict) else output
        return frozenset({"true" if result is True else "false"})

    async def run(self, data: ConditionData, ctx: NodeContext) -> NodeOutcome:
        result = decide(ctx, data.expression, "the expression")
        return NodeOutcome(output={"result": result}, taken=frozenset({"true" if result else "false"}))


def decide(ctx: NodeContext, expression: str, what: str) -> bool:
    """Evaluate a CEL expression that must give a bool; `NodeFailed` saying what it gave otherwise."""
    try:
        value = ctx.evaluate(expression)
    except TemplateError as exc:
        raise NodeFailed(f"{what}: {exc}") from exc
    if not isinstance(value, bool):
        raise NodeFailed(
            f"{what} gave {cel_type(value)} ({_preview(value)}), not true or false; "
            "compare it to something, e.g. x == 'yes' or size(x) > 0"
        )
    return value


def cel_type(value: Any) -> str:
    """A value's type in CEL's words, with an article."""
    if value is None:
        return "null"
    names = {int: "an int", float: "a double", str: "a string", list: "a list", dict: "a map", bytes: "bytes"}
    return names.get(type(value), f"a {type(value).__name__}")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
