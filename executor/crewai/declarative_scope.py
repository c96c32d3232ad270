"""How a flow's templates and CEL read in `crewai.flow/v1`: names, roots and paths (see `declarative`).

`Scope` is what the node mappers of `executor.crewai.declarative` share while one flow is
exported: each node's method name, the event of each branch, the records the nodes name,
and the notes so far. It moves templates and CEL from CrewCanvas's scope to CrewAI's:
`{{ nodes.<id>.output.x }}` becomes `${outputs.<method>.x}`, `{{ inputs.<name> }}` becomes
`${state.<name>}`; what cannot move raises `NoMapping` with the reason.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, TemplateSyntaxError
from jinja2 import nodes as jinja
from pydantic import BaseModel

from executor.crewai.project import ProviderInfo, llm_name
from executor.document import FlowDocument

if TYPE_CHECKING:
    from core.crews import CrewBundle

METHOD = re.compile(r"[^A-Za-z0-9_]")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CEL_RESERVED = re.compile(
    r"^(as|break|const|continue|else|false|for|function|if|import|in|let|loop|namespace|null|package|return|true|var"
    r"|void|while)$"
)
# CEL as CrewCanvas writes it: string literals are copied as they are; `nodes.<id>.output`,
# `nodes["<id>"].output` and `inputs` are the roots to rename.
CEL_TOKEN = re.compile(
    r"""
    (?P<string>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?<![\w.])nodes\s*(?:\.\s*(?P<id>[A-Za-z_][A-Za-z0-9_]*)|\[\s*(?P<quote>["'])(?P<qid>[^"'\\]*)(?P=quote)\s*\])
      \s*\.\s*output\b
  | (?P<inputs>(?<![\w.])inputs\b)
  | (?P<other>[\s\S])
    """,
    re.VERBOSE,
)


class DeclarativeNote(BaseModel):
    """Something that maps only partly (`node_id` null: the flow as a whole)."""

    node_id: str | None
    message: str


@dataclass(frozen=True)
class References:
    """The records a flow's nodes name, by id (as text): crews, saved agents, tools, providers."""

    crews: Mapping[str, CrewBundle] = field(default_factory=dict)
    agents: Mapping[str, Any] = field(default_factory=dict)  # AgentSpec-like
    tools: Mapping[str, Any] = field(default_factory=dict)  # ToolView-like
    providers: Mapping[str, ProviderInfo] = field(default_factory=dict)
    default_provider_id: uuid.UUID | None = None

    def llm(self, provider_id: Any, model: str | None) -> str | None:
        chosen = str(provider_id) if provider_id else str(self.default_provider_id or "")
        return llm_name(self.providers.get(chosen), model)


class NoMapping(Exception):
    """This node (or one of its fields) has no crewai.flow/v1 equivalent; the message says why."""


@dataclass
class Scope:
    """What the node mappers share: method names, branch events, references, and the notes so far."""

    document: FlowDocument
    references: References
    methods: dict[str, str]  # node id -> method
    events: dict[tuple[str, str], str]  # (node id, handle) -> event name
    incoming: dict[str, list[tuple[str, str]]]  # node id -> [(source id, source handle)]
    notes: list[DeclarativeNote] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    # Nodes whose output here is the agent's answer as text, where crewai's action gives the agent's
    # result object: reading them reads its `raw`.
    answers: set[str] = field(default_factory=set)

    def output_of(self, node_id: str) -> str:
        return f"outputs.{self.methods[node_id]}" + (".raw" if node_id in self.answers else "")

    def note(self, node_id: str | None, message: str) -> None:
        self.notes.append(DeclarativeNote(node_id=node_id, message=message))

    def template(self, source: str, where: str) -> str:
        """A CrewCanvas template as a crewai template (`${...}` with outputs/state roots)."""
        if "${" in source:
            raise NoMapping(f"{where} contains '${{', which crewai.flow/v1 would read as an expression")
        if not any(marker in source for marker in ("{{", "{%", "{#")):
            return source
        parts: list[str] = []
        for literal, path in self._segments(source, where):
            parts.append(literal if path is None else "${" + path + "}")
        return "".join(parts)

    def expression(self, source: str, where: str) -> str:
        """A CrewCanvas template as one CEL expression: the path itself, or text joined with `string(...)`."""
        segments = list(self._segments(source, where)) if source else [("", None)]
        if len(segments) == 1 and segments[0][1] is not None:
            return str(segments[0][1])
        return " + ".join(json.dumps(text) if path is None else f"string({path})" for text, path in segments) or '""'

    def _segments(self, source: str, where: str) -> list[tuple[str, str | None]]:
        try:
            body = Environment().parse(source).body  # noqa: S701  # parsed only, never rendered
        except TemplateSyntaxError as exc:
            raise NoMapping(f"{where} is not a valid template: {exc.message}") from exc
        segments: list[tuple[str, str | None]] = []
        for statement in body:
            if not isinstance(statement, jinja.Output):
                raise NoMapping(f"{where} uses {{% %}} statements, which crewai templates do not have")
            for part in statement.nodes:
                if isinstance(part, jinja.TemplateData):
                    segments.append((part.data, None))
                else:
                    segments.append(("", self._path(part, where)))
        return segments

    def _path(self, expression: jinja.Node, where: str) -> str:
        steps: list[str | int] = []
        while isinstance(expression, jinja.Getattr | jinja.Getitem):
            if isinstance(expression, jinja.Getattr):
                steps.append(expression.attr)
            elif isinstance(expression.arg, jinja.Const) and isinstance(expression.arg.value, str | int):
                steps.append(expression.arg.value)
            else:
                raise NoMapping(f"{where} indexes with a computed key, which does not map")
            expression = expression.node
        steps.reverse()
        root = expression.name if isinstance(expression, jinja.Name) else None
        if root == "inputs" and steps:
            return "state" + accessors(steps)
        if root == "nodes" and steps and str(steps[0]) not in self.methods:
            raise NoMapping(f"{where} reads node '{steps[0]}', which the flow does not have")
        if root == "nodes" and len(steps) >= 2 and steps[1] == "output":
            return self.output_of(str(steps[0])) + accessors(steps[2:])
        if root == "nodes":
            raise NoMapping(f"{where} reads a node's value other than nodes.<id>.output, which does not map")
        raise NoMapping(f"{where} uses filters, calls or operators; only nodes.<id>.output and inputs.<name> map")

    def cel(self, source: str, where: str) -> str:
        """A CrewCanvas CEL expression with its roots renamed (`nodes.<id>.output` -> `outputs.<method>`)."""
        result: list[str] = []
        for match in CEL_TOKEN.finditer(source):
            if match.group("string") is not None or match.group("other") is not None:
                result.append(match.group(0))
            elif match.group("inputs") is not None:
                result.append("state")
            else:
                node_id = match.group("id") or match.group("qid")
                if node_id not in self.methods:
                    raise NoMapping(f"{where} reads node '{node_id}', which the flow does not have")
                result.append(self.output_of(node_id))
        return "".join(result)

    def upstream_output(self, node_id: str) -> str:
        sources = {source for source, _handle in self.incoming.get(node_id, [])}
        if len(sources) != 1:
            raise NoMapping("reviews 'the node upstream', but it has no single node upstream; set its value")
        return self.output_of(next(iter(sources)))


def accessors(steps: list[str | int]) -> str:
    out = []
    for step in steps:
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif IDENT.match(step) and not CEL_RESERVED.match(step):
            out.append(f".{step}")
        else:
            out.append(f"[{json.dumps(step)}]")
    return "".join(out)
