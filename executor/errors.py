"""Errors the flow engine raises.

ExecutorError
├── FlowInvalid            the flow document does not validate; `problems` name node and field
├── UnknownNodeType        a node's type is not in the registry
├── NodeFailed             a node's runner failed (the message says why; never a secret)
│   └── NodeTimedOut       a node ran past its timeout
└── TemplateError          a template or expression could not be rendered or evaluated
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlowProblem:
    """One thing wrong with a flow: which node (None for the flow as a whole), which field, why."""

    node_id: str | None
    field: str
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"node_id": self.node_id, "field": self.field, "message": self.message}


class ExecutorError(Exception):
    """Root of every error the engine raises."""


class FlowInvalid(ExecutorError):
    """The flow does not validate; `problems` lists every problem found."""

    def __init__(self, problems: list[FlowProblem]) -> None:
        first = "; ".join(
            f"node '{p.node_id}': {p.field}: {p.message}" if p.node_id else f"{p.field}: {p.message}"
            for p in problems[:3]
        )
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"the flow is not valid: {first}{more}")
        self.problems = problems


class UnknownNodeType(ExecutorError):
    """A node names a type the registry does not know."""


class NodeFailed(ExecutorError):
    """A node's runner failed; the message is shown to the user and stored in the node run."""


class NodeTimedOut(NodeFailed):
    """A node ran past its timeout."""


class TemplateError(ExecutorError):
    """A template or expression failed to compile, render or evaluate."""
