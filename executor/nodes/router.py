"""The `router` node: CEL cases tried in order; the first true one names the handle taken."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from executor.document import Identifier
from executor.nodes.base import Handle, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType
from executor.nodes.condition import Expression, decide
from executor.registry import register

DEFAULT = "default"


class RouterCase(BaseModel):
    """One route: its handle's name and the CEL expression that selects it."""

    model_config = ConfigDict(extra="forbid")

    name: Identifier
    expression: Expression


class RouterData(NodeData):
    """The cases, tried in order."""

    cases: list[RouterCase] = Field(min_length=1, max_length=50, description="Tried in order; the first true wins.")

    @field_validator("cases")
    @classmethod
    def _names_are_distinct(cls, cases: list[RouterCase]) -> list[RouterCase]:
        seen: set[str] = set()
        for case in cases:
            if case.name == DEFAULT:
                raise ValueError(f"'{DEFAULT}' is the route taken when no case matches; name the case otherwise")
            if case.name in seen:
                raise ValueError(f"two cases are named '{case.name}'; give each case its own name")
            seen.add(case.name)
        return cases


@register
class RouterNode(NodeType[RouterData]):
    """Takes the handle of the first case whose expression is true, else `default`."""

    type = "router"
    data_model = RouterData
    meta = NodeMeta(
        label="Router",
        category="Logic",
        icon="alt_route",
        help="Sends the flow down the first route whose CEL expression is true, else down 'default'.",
    )
    # One handle per case comes from the data (`output_handles`); `default` is always there.
    outputs: ClassVar[tuple[Handle, ...]] = (Handle(DEFAULT, "Default"),)

    def output_handles(self, data: RouterData) -> tuple[Handle, ...]:
        return (*(Handle(case.name) for case in data.cases), Handle(DEFAULT, "Default"))

    def expressions(self, data: RouterData) -> dict[str, str]:
        return {f"cases.{index}.expression": case.expression for index, case in enumerate(data.cases)}

    def handles_of(self, data: RouterData, output: Any) -> frozenset[str] | None:
        route = output.get("route") if isinstance(output, dict) else output
        names = {case.name for case in data.cases}
        return frozenset({route if isinstance(route, str) and route in names else DEFAULT})

    async def run(self, data: RouterData, ctx: NodeContext) -> NodeOutcome:
        for case in data.cases:
            if decide(ctx, case.expression, f"case '{case.name}'"):
                return NodeOutcome(output={"route": case.name}, taken=frozenset({case.name}))
        return NodeOutcome(output={"route": DEFAULT}, taken=frozenset({DEFAULT}))
