"""Tool input schemas: check a JSON Schema when a tool is saved, check an input before it runs.

Schemas and inputs both come from tenants and are evaluated in the server process, so
evaluation is kept bounded and local:

* ``$ref`` resolves only inside the schema itself; nothing is ever fetched (jsonschema's
  default registry would download remote references).
* ``pattern`` is matched with RE2, which runs in linear time; Python's backtracking ``re``
  would let one crafted pattern stall the event loop. ``patternProperties`` is refused
  because jsonschema matches it with ``re`` in several keywords.
* The ``regex`` format is not checked (it would compile tenant text with ``re``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import Unresolvable

from core.errors import InvalidInput

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32

_SCHEMA_MAPS = ("properties", "$defs", "definitions", "dependentSchemas", "patternProperties")
_SCHEMA_VALUES = (
    "items",
    "additionalItems",
    "additionalProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_FORMATS = FormatChecker(formats=[name for name in FormatChecker.checkers if name != "regex"])


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    """`pattern` compiled by RE2 (quietly: its errors become `InvalidInput`, not log lines)."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidInput(
            f"input schema: pattern {pattern!r} cannot be used ({detail}); "
            "lookarounds and backreferences are not supported"
        ) from exc


def _re2_pattern(validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _subschemas(node: Any, depth: int = 0) -> Iterator[tuple[dict[str, Any], int]]:
    """Every schema object inside `node` (not the names or values of its data keywords)."""
    if isinstance(node, list):
        for item in node:
            yield from _subschemas(item, depth + 1)
        return
    if not isinstance(node, dict):
        return
    yield node, depth
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for item in value.values():
                yield from _subschemas(item, depth + 1)
        elif key in _SCHEMA_VALUES or key in _SCHEMA_LISTS:
            yield from _subschemas(value, depth + 1)


def _validator_class(schema: Mapping[str, Any]) -> type[Validator]:
    base = validators.validator_for(schema, default=Draft202012Validator)
    return validators.extend(base, {"pattern": _re2_pattern})


def check_input_schema(schema: Any) -> dict[str, Any]:
    """Return `schema` if it is a JSON Schema for an object of tool arguments, else `InvalidInput`."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"input schema must be a JSON object, got {type(schema).__name__}")
    try:
        size = len(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input schema is not plain JSON: {exc}") from exc
    if size > MAX_SCHEMA_BYTES:
        raise InvalidInput(f"input schema is {size} bytes; keep it under {MAX_SCHEMA_BYTES} bytes")
    if schema.get("type") != "object":
        raise InvalidInput('input schema must describe an object of arguments: set "type": "object" at the top')
    for node, depth in _subschemas(schema):
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidInput(f"input schema nests deeper than {MAX_SCHEMA_DEPTH} levels; flatten it")
        if "patternProperties" in node:
            raise InvalidInput("input schema: 'patternProperties' is not supported; list the properties by name")
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            _compiled(pattern)
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        raise InvalidInput(f"input schema is not a valid JSON Schema at {where}: {exc.message}") from exc
    return schema


def _field(error: ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    return f"input field '{path}'" if path else "input"


def validate_input(schema: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """Return `value` if it satisfies `schema`; otherwise `InvalidInput` naming the field."""
    if not isinstance(value, dict):
        raise InvalidInput(f"tool input must be a JSON object of arguments, got {type(value).__name__}")
    validator = _validator_class(schema)(schema, registry=Registry(), format_checker=_FORMATS)
    try:
        error = best_match(validator.iter_errors(value))
    except Unresolvable as exc:
        raise InvalidInput(
            f"input schema refers to {exc.ref!r}, which is not inside the schema; "
            "only local references ('#/$defs/...') are allowed"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput("input schema refers to itself without end; break the $ref cycle") from exc
    if error is not None:
        raise InvalidInput(f"{_field(error)}: {error.message}")
    return value


def parse_input(text: str) -> dict[str, Any]:
    """Parse the JSON text of a tool input, naming the problem if it is not a JSON object."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"tool input is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"tool input must be a JSON object of arguments, got {type(value).__name__}")
    return value


_PLACEHOLDERS: dict[str, Any] = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


def example_input(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A starting input for the Try-it box: each required property from its default, example or type."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    names = [name for name in required if name in properties] if isinstance(required, list) else []
    example: dict[str, Any] = {}
    for name in names or list(properties):
        prop = properties[name] if isinstance(properties[name], dict) else {}
        if "default" in prop:
            example[name] = prop["default"]
        elif isinstance(prop.get("examples"), list) and prop["examples"]:
            example[name] = prop["examples"][0]
        elif isinstance(prop.get("enum"), list) and prop["enum"]:
            example[name] = prop["enum"][0]
        else:
            kind = prop.get("type")
            example[name] = _PLACEHOLDERS.get(kind if isinstance(kind, str) else "string", "")
    return example


def json_schema_or_none(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pydantic field validator: `schema` unchanged when it is a valid JSON schema (or None), else `ValueError`."""
    if schema is not None:
        try:
            validators.validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"is not a valid JSON schema: {exc.message}") from exc
    return schema
