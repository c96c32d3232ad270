"""Saved tools as CrewAI tools: the arguments schema from the tool's JSON schema, every run in the sandbox.

A CrewAI agent sees an ordinary `BaseTool`; its `_run` hands the call to `ToolPort.run_saved`
(the sandbox, through `core.tools.ToolService`) on the event loop by way of the crew's
`CrewGuard`. Tool code never runs in this process.
"""

from __future__ import annotations

import json
import types
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from core.context import TenantContext
from executor.crewai.runtime import CrewGuard
from executor.ports import ToolPort

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}


def _python_type(schema: Mapping[str, Any]) -> Any:
    """A Python annotation for one JSON schema (the common subset CrewAI's tool calling needs)."""
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return Literal[tuple(schema["enum"])]
    kind = schema.get("type")
    if isinstance(kind, list):
        members = [_python_type({**schema, "type": one}) for one in kind]
        union = members[0]
        for member in members[1:]:
            union = union | member
        return union
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        items = schema.get("items")
        return types.GenericAlias(list, (_python_type(items) if isinstance(items, Mapping) else Any,))
    if kind == "object":
        return dict[str, Any]
    return Any


def args_model(name: str, schema: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model of a tool's keyword arguments, built from its JSON schema."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for prop, spec in (properties or {}).items():
        spec = spec if isinstance(spec, Mapping) else {}
        annotation = _python_type(spec)
        description = str(spec.get("description") or "")
        if prop in required:
            fields[prop] = (annotation, Field(description=description))
        else:
            fields[prop] = (annotation | None, Field(default=spec.get("default"), description=description))
    model_name = "".join(part.capitalize() for part in name.split("_")) + "Args"
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)


def sandbox_tool(
    tool: Any,
    *,
    tools: ToolPort,
    ctx: TenantContext,
    guard: CrewGuard,
) -> Any:
    """A CrewAI `BaseTool` for a saved tool (`tool` has id, name, description, input_schema)."""
    from crewai.tools import BaseTool

    schema: Mapping[str, Any] = tool.input_schema or {}
    required = set(schema.get("required") or [])
    tool_id: uuid.UUID = tool.id

    class SandboxTool(BaseTool):
        def _run(self, **arguments: Any) -> str:
            # CrewAI makes optional arguments required-but-nullable: a None means "not given".
            given = {key: value for key, value in arguments.items() if value is not None or key in required}
            output = guard.run(tools.run_saved(ctx, tool_id, given))
            return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, default=str)

    return SandboxTool(
        name=tool.name,
        description=tool.description or f"Runs the tool {tool.name}.",
        args_schema=args_model(tool.name, schema),
    )
