"""What every node type is: its data model, handles, runner and display metadata.

A node type is one subclass of `NodeType` in its own module under `executor/nodes/`,
registered with `@register` (see `executor/registry.py`). The engine, the validator and
the editor know only this base class; a type adds behaviour through the hooks below
(`output_handles`, `templates`, `expressions`, `references`, `check`, `run`), never by
being named here.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.context import TenantContext
from core.text import Line
from executor.errors import NodeFailed

if TYPE_CHECKING:
    from executor.ports import NodeServices

ReferenceKind = Literal["provider", "tool", "flow", "crew", "agent"]


class RetryPolicy(BaseModel):
    """How often a failing node is tried, and how long to wait between tries (doubling)."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=1, ge=1, le=10, description="Tries in all, the first included.")
    backoff_s: float = Field(default=1.0, ge=0, le=300, description="Wait before the second try; doubles after.")


class NodeData(BaseModel):
    """Fields every node has; each type's data model extends this one."""

    model_config = ConfigDict(extra="forbid")

    label: Line = Field(default="", description="Shown on the canvas instead of the node id.")
    timeout_s: float | None = Field(default=None, gt=0, le=86_400, description="Fail the node after this long.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    on_error: Literal["fail", "continue"] = Field(
        default="fail",
        description="fail: the execution fails; continue: the error becomes the node's output and the flow goes on.",
    )


@dataclass(frozen=True, slots=True)
class Handle:
    """A named connection point: inputs on the left of a node, outputs on the right."""

    name: str
    label: str = ""
    required: bool = False  # an input handle that must be connected


@dataclass(frozen=True, slots=True)
class NodeMeta:
    """How the palette and the property form present a type."""

    label: str
    category: str
    icon: str
    help: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a tenant has, by id, for checking references (built by the caller before validating)."""

    providers: frozenset[str] = frozenset()
    tools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # id -> {"name", "input_schema"}
    flows: Mapping[str, frozenset[int]] = field(default_factory=dict)  # id -> its versions
    # id -> {"name", "placeholders", "inputs" (defaults), "problems" (messages)}
    crews: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    agents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # id -> {"name", "placeholders"}


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """What a runner produced: its output and, for branching types, which output handles it took."""

    output: Any = None
    taken: frozenset[str] | None = None  # None: every output handle
    wait: dict[str, Any] | None = None  # set: the node waits (for a person), with what it shows them (JSON)


@dataclass
class NodeUsage:
    """LLM tokens and cost a node spent (summed over its calls)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    def add(self, prompt_tokens: int, completion_tokens: int, cost_usd: float | None) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        if cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost_usd


@dataclass
class NodeContext:
    """Everything a runner may use; plain data plus the services of `executor.ports`."""

    tenant: TenantContext
    execution_id: uuid.UUID
    node_id: str
    attempt: int
    scope: Mapping[str, Any]  # {"inputs": {...}, "nodes": {node_id: {"output": ...}}} of upstream nodes
    services: NodeServices
    emit: Callable[[str, dict[str, Any]], None]  # extra events under this node (e.g. "token")
    render: Callable[[str], str]  # a template against `scope`
    render_value: Callable[[Any], Any]  # every template inside a JSON value; "{{ x }}" alone keeps x's type
    evaluate: Callable[[str], Any]  # a CEL expression against `scope`
    usage: NodeUsage = field(default_factory=NodeUsage)
    upstream: Mapping[str, Any] = field(default_factory=dict)  # outputs of the nodes with an edge into this one


D = TypeVar("D", bound=NodeData)
DataModel = type[NodeData]  # named outside `NodeType`, whose `type` attribute shadows the builtin


class NodeType(ABC, Generic[D]):
    """One kind of node. Subclasses set the class attributes and implement `run`."""

    type: ClassVar[str]
    version: ClassVar[int] = 1
    data_model: ClassVar[DataModel]
    meta: ClassVar[NodeMeta]
    inputs: ClassVar[tuple[Handle, ...]] = (Handle("in"),)
    outputs: ClassVar[tuple[Handle, ...]] = (Handle("out"),)

    def parse(self, data: Mapping[str, Any]) -> D:
        """The node's data as this type's model (raises pydantic's `ValidationError`)."""
        return self.data_model.model_validate(data)  # type: ignore[return-value]  # data_model is D's class

    def output_handles(self, data: D) -> tuple[Handle, ...]:
        """The output handles of one node; types whose handles depend on their data override this."""
        return self.outputs

    def templates(self, data: D) -> dict[str, str]:
        """Jinja templates in the data, by field name (`prompt`, `arguments.city`): checked and pre-compiled."""
        return {}

    def expressions(self, data: D) -> dict[str, str]:
        """CEL expressions in the data, by field name: checked and pre-compiled."""
        return {}

    def references(self, data: D) -> list[tuple[ReferenceKind, str, str]]:
        """Saved things the node uses, as (kind, id, field): checked against the `Catalog`."""
        return []

    def result_key(self, data: D) -> str | None:
        """The key under which this node's output becomes one of the execution's outputs (None: it does not)."""
        return None

    def handles_of(self, data: D, output: Any) -> frozenset[str] | None:
        """The output handles a given output takes (a pinned or overriding one); None: every handle."""
        return None

    def answer(self, data: D, waiting: Mapping[str, Any], response: Mapping[str, Any]) -> NodeOutcome:
        """The outcome of a person's response to this node's wait (`waiting` is what `run` asked with).

        Raise `NodeFailed` when the response ends the node (a rejection)."""
        raise NodeFailed(f"a {self.type} node does not take responses")

    def check(self, data: D, catalog: Catalog) -> list[tuple[str, str]]:
        """Type-specific problems as (field, message), beyond what the model and the hooks above catch."""
        return []

    @abstractmethod
    async def run(self, data: D, ctx: NodeContext) -> NodeOutcome:
        """Do the node's work; raise `NodeFailed` with a message for the user when it cannot."""
