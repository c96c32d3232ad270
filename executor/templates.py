"""Jinja templates in node data: `{{ nodes.<id>.output }}` and `{{ inputs.<name> }}`, rendered in a sandbox.

Templates run in Jinja's `SandboxedEnvironment` (no attribute tricks into Python internals),
with `StrictUndefined` (a misspelt name is an error, never an empty string) and without
HTML escaping (the text goes to models and tools, not browsers). Dicts and lists render
as JSON, so `{{ nodes.fetch.output }}` of an object gives the object as JSON text.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2 import nodes as ast
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from executor.errors import TemplateError

#: The names a template may use at the top level.
SCOPE_NAMES = frozenset({"nodes", "inputs"})

# Largest size a template may ask for: `{{ 'x' * 10**9 }}`, `'x'.ljust(10**9)` or a format width
# of 10**9 would otherwise allocate gigabytes inside the worker before any timeout fires.
_MAX_SIZE = 1_000_000
_MAX_EXPONENT = 1000
#: Longest text a template may render (loops can multiply output past any single value's bound).
MAX_OUTPUT = 10_000_000
_FORMAT_SIZES = re.compile(r"%[-+ #0]*(\d+)?(?:\.(\d+))?|\{[^{}]*:[^{}]*?(\d+)(?:\.(\d+))?[^{}]*\}")
# Built-in filters whose arguments say how much to allocate.
_SIZED_FILTERS = ("center", "indent", "format", "batch", "slice")
_MARKERS = ("{{", "{%", "{#")
_SINGLE_EXPRESSION = re.compile(r"\A\{\{-?(?P<body>.*?)-?\}\}\Z", re.DOTALL)


class _Undefined(StrictUndefined):
    """`StrictUndefined` whose message says which name or key is missing and what exists instead."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        owner = self._undefined_obj
        if isinstance(owner, Undefined) or owner is missing:
            return f"{name!r} is not defined; templates can use nodes.<id>.output and inputs.<name>"
        if isinstance(owner, Mapping):
            keys = ", ".join(sorted(str(key) for key in owner)[:20]) or "none"
            return f"there is no {name!r} (the keys there are: {keys})"
        return f"a {type(owner).__name__} value has no {name!r}"


def _finalize(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _check_sizes(values: Iterable[Any], what: str = "numbers passed to functions and filters") -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_SIZE:
            raise SecurityError(f"{what} may not be above {_MAX_SIZE} in templates")


def _check_format(template: str) -> None:
    for match in _FORMAT_SIZES.finditer(template):
        _check_sizes((int(number) for number in match.groups() if number), "format widths")


def _sized_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps jinja's pass_context markers, if any
    def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_sizes([*args, *kwargs.values()])
        if name == "format" and isinstance(value, str):
            _check_format(value)
        return function(value, *args, **kwargs)

    return guarded


class _Environment(SandboxedEnvironment):
    """The sandbox, with mapping keys before attributes, and bounds on the sizes a template can ask for."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters.update({name: _sized_filter(name, self.filters[name]) for name in _SIZED_FILTERS})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja tries attributes first, so `output.items` would be dict.items, not the
        # "items" key a node produced; flow data is JSON, where a key is always meant.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            _check_format(obj)
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # `__` names as in jinja's
        _check_sizes([*args, *kwargs.values()])
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "%":
            if isinstance(left, str):
                _check_format(left)
            return operator.mod(left, right)
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponents above {_MAX_EXPONENT} are not allowed in templates")
            return operator.pow(left, right)
        for sized, count in ((left, right), (right, left)):
            if isinstance(sized, str | list | tuple) and isinstance(count, int) and len(sized) * count > _MAX_SIZE:
                raise SecurityError(f"a template may not build values longer than {_MAX_SIZE} items by repetition")
        return operator.mul(left, right)


_ENV = _Environment(undefined=_Undefined, autoescape=False, finalize=_finalize, keep_trailing_newline=True)


@functools.lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    """The compiled template (cached by source); `TemplateError` when it does not parse."""
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"the template does not parse: {exc.message} (line {exc.lineno})") from exc


@functools.lru_cache(maxsize=4096)
def _compile_single(body: str) -> Any:
    try:
        return _ENV.compile_expression(body, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"the template does not parse: {exc.message}") from exc


def render(source: str, scope: Mapping[str, Any]) -> str:
    """`source` rendered against `scope` ({"nodes": ..., "inputs": ...}); `TemplateError` says what went wrong."""
    template = compile_template(source)
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(dict(scope)):
            size += len(part)
            if size > MAX_OUTPUT:
                raise TemplateError(f"the template renders more than {MAX_OUTPUT} characters; make it shorter")
            parts.append(part)
    except TemplateError:
        raise
    except Exception as exc:  # user templates can make filters and operators raise anything
        raise _render_error(exc) from exc
    return "".join(parts)


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Every string inside a JSON value rendered; a string that is exactly one `{{ ... }}` gives the value itself.

    `"{{ nodes.count.output.n }}"` gives the number, not its text, so tool arguments and
    subflow inputs keep their types.
    """
    if isinstance(value, str):
        return _render_string(value, scope)
    if isinstance(value, Mapping):
        return {key: render_value(member, scope) for key, member in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(member, scope) for member in value]
    return value


def _render_string(source: str, scope: Mapping[str, Any]) -> Any:
    if not any(marker in source for marker in _MARKERS):
        return source
    single = _SINGLE_EXPRESSION.match(source)
    if single is None or any(marker in single["body"] for marker in (*_MARKERS, "}}", "%}")):
        return render(source, scope)
    expression = _compile_single(single["body"])
    try:
        result = expression(**scope)
    except Exception as exc:  # as in `render`: any error of the user's expression becomes a TemplateError
        raise _render_error(exc) from exc
    if isinstance(result, Undefined):
        raise TemplateError(f"the template uses something undefined: {result._undefined_message}")
    return list(result) if isinstance(result, tuple) else result


def _render_error(exc: Exception) -> TemplateError:
    if isinstance(exc, UndefinedError):
        return TemplateError(f"the template uses something undefined: {exc}")
    if isinstance(exc, SecurityError):
        return TemplateError(f"the template tried something templates may not do: {exc}")
    return TemplateError(f"the template failed: {type(exc).__name__}: {exc}")


def template_references(source: str) -> set[tuple[str, str]]:
    """What a template uses: ("nodes", id), ("inputs", name), and ("unknown", name) for any other top-level name.

    Only constant keys count: `nodes[some_variable]` cannot be checked before running.
    `TemplateError` when the template does not parse.
    """
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"the template does not parse: {exc.message} (line {exc.lineno})") from exc
    found: set[tuple[str, str]] = set()
    for node in tree.find_all((ast.Getattr, ast.Getitem)):
        if isinstance(node, ast.Getattr):
            key: object = node.attr
        elif isinstance(node, ast.Getitem) and isinstance(node.arg, ast.Const):
            key = node.arg.value
        else:
            continue
        owner = node.node
        if not (isinstance(owner, ast.Name) and owner.ctx == "load" and owner.name in SCOPE_NAMES):
            continue
        if isinstance(key, str | int) and not isinstance(key, bool):
            found.add((owner.name, str(key)))
    # Loop variables, `{% set %}` names and Jinja's globals are declared; anything else is unknown.
    for name in find_undeclared_variables(tree) - SCOPE_NAMES:
        found.add(("unknown", name))
    return found


def templates_in(value: Any, field: str) -> dict[str, str]:
    """Every string holding template syntax inside a JSON value, by dotted field (`arguments.query`, `items.0`)."""
    found: dict[str, str] = {}
    pending: list[tuple[Any, str]] = [(value, field)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if any(marker in item for marker in _MARKERS):
                found[path] = item
        elif isinstance(item, Mapping):
            pending.extend((member, f"{path}.{key}") for key, member in item.items())
        elif isinstance(item, list | tuple):
            pending.extend((member, f"{path}.{index}") for index, member in enumerate(item))
    return dict(sorted(found.items()))
