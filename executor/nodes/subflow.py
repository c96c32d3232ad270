"""The `subflow` node: another saved flow at a pinned version, once or once per item of a list."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from core.errors import CoreError
from core.text import JsonObject, Text
from executor.document import Identifier
from executor.errors import ExecutorError, NodeFailed, TemplateError
from executor.nodes.base import Catalog, NodeContext, NodeData, NodeMeta, NodeOutcome, NodeType, ReferenceKind
from executor.nodes.condition import cel_type
from executor.registry import register
from executor.templates import templates_in

#: Most items one node may fan out over.
MAX_ITEMS = 10_000


class SubflowData(NodeData):
    """Which flow and version to run, with which inputs, and whether once per item."""

    flow_id: uuid.UUID = Field(description="The flow to run.")
    version: int = Field(ge=1, description="Its version: pinned, so later edits of that flow do not change this one.")
    inputs: JsonObject = Field(
        default_factory=dict, description="The child flow's inputs by name: values or templates."
    )
    for_each: Text | None = Field(
        default=None,
        description="A template giving a list, e.g. {{ nodes.search.output.items }}: the flow runs once per item.",
    )
    item_input: Identifier = Field(default="item", description="The child flow's input that receives each item.")
    concurrency: int = Field(default=4, ge=1, le=32, description="With for_each: how many items run at once.")


@register
class SubflowNode(NodeType[SubflowData]):
    """Runs the child flow; outputs its outputs, or with `for_each` the list of them in item order."""

    type = "subflow"
    data_model = SubflowData
    meta = NodeMeta(
        label="Subflow",
        category="Flow",
        icon="account_tree",
        help="Runs another flow at a pinned version, once or once for each item of a list.",
    )

    def templates(self, data: SubflowData) -> dict[str, str]:
        found = templates_in(data.inputs, "inputs")
        if data.for_each is not None:
            found["for_each"] = data.for_each
        return found

    def references(self, data: SubflowData) -> list[tuple[ReferenceKind, str, str]]:
        return [("flow", str(data.flow_id), "flow_id")]

    def check(self, data: SubflowData, catalog: Catalog) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        versions = catalog.flows.get(str(data.flow_id))
        if versions is not None and data.version not in versions:
            have = ", ".join(str(v) for v in sorted(versions)) or "none"
            problems.append(("version", f"the flow has no version {data.version}; its versions are: {have}"))
        if data.for_each is not None and data.item_input in data.inputs:
            problems.append(
                (
                    f"inputs.{data.item_input}",
                    f"'{data.item_input}' receives each item of for_each; remove it from the inputs "
                    "or choose another item input",
                )
            )
        return problems

    async def run(self, data: SubflowData, ctx: NodeContext) -> NodeOutcome:
        inputs = _render(data.inputs, ctx, "the inputs")
        if data.for_each is None:
            return NodeOutcome(output=await _call(data, ctx, inputs))
        items = _render(data.for_each, ctx, "for_each")
        if not isinstance(items, list):
            raise NodeFailed(f"for_each gave {cel_type(items)}, not a list; make it a single {{{{ ... }}}} of a list")
        if len(items) > MAX_ITEMS:
            raise NodeFailed(f"for_each gave {len(items)} items; at most {MAX_ITEMS} are allowed")
        return NodeOutcome(output=await _fan_out(data, ctx, inputs, items))


def _render(value: Any, ctx: NodeContext, what: str) -> Any:
    try:
        return ctx.render_value(value)
    except TemplateError as exc:
        raise NodeFailed(f"{what} could not be rendered: {exc}") from exc


async def _call(data: SubflowData, ctx: NodeContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return await ctx.services.subflows.run_subflow(
            ctx.tenant,
            data.flow_id,
            data.version,
            inputs,
            parent_execution=ctx.execution_id,
            parent_node=ctx.node_id,
        )
    except (CoreError, ExecutorError) as exc:
        raise NodeFailed(f"the subflow failed: {exc}") from exc


class _ItemFailed(Exception):
    def __init__(self, index: int, error: NodeFailed) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


async def _fan_out(
    data: SubflowData, ctx: NodeContext, inputs: Mapping[str, Any], items: list[Any]
) -> list[dict[str, Any]]:
    """One child run per item, `concurrency` at a time; results in item order; the first failure cancels the rest."""
    bound = asyncio.Semaphore(data.concurrency)
    failed = asyncio.Event()

    async def one(index: int, item: Any) -> dict[str, Any]:
        async with bound:
            # A failing run frees its slot before its task can be cancelled: the waiting
            # item that gets the slot must not start a child flow nobody will wait for.
            if failed.is_set():
                return {}
            try:
                return await _call(data, ctx, {**inputs, data.item_input: item})
            except NodeFailed as exc:
                failed.set()
                raise _ItemFailed(index, exc) from exc

    tasks = [
        asyncio.create_task(one(index, item), name=f"{ctx.node_id} item {index}") for index, item in enumerate(items)
    ]
    try:
        return await asyncio.gather(*tasks)
    except _ItemFailed as failed:
        raise NodeFailed(f"item {failed.index} failed: {failed.error}") from failed.error
    finally:
        for task in tasks:
            task.cancel()
        # Wait until the cancelled runs have finished, so none outlives this node.
        await asyncio.gather(*tasks, return_exceptions=True)
