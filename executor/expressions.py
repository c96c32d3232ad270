"""CEL expressions in node data (conditions, router cases), evaluated with cel-python.

An expression sees the same scope as a template: `nodes.<id>.output` and `inputs.<name>`,
e.g. `nodes.classify.output.label == "urgent" && inputs.priority > 2`. Results come back as
plain Python values (bool, int, float, str, list, dict, None), never celpy's wrapper types.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELSyntaxError, CELUnsupportedError

from executor.errors import TemplateError

#: The names an expression may use at the top level.
SCOPE_NAMES = frozenset({"nodes", "inputs"})

# Names CEL itself defines: type identifiers usable as values (`type(x) == int`).
_CEL_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "google"}
)
# Macros whose first argument names a variable bound inside the call: `list.exists(x, x > 1)`.
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_STRING_QUOTES = ('"""', "'''", '"', "'")

_OVERLOAD = re.compile(r"found no matching overload for Token\('RULE', '\w+'\) applied to '\([^)]*\)'")
_RULE_TOKEN = re.compile(r"Token\('RULE', '(\w+)'\)")
_CEL_CLASS = re.compile(r"<class '(?:celpy\.celtypes\.)?(\w+)'>")
_OPERATORS = {
    "relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=", "relation_eq": "==",
    "relation_ne": "!=", "relation_in": "in", "addition_add": "+", "addition_sub": "-", "multiplication_mul": "*",
    "multiplication_div": "/", "multiplication_mod": "%", "unary_not": "!", "unary_neg": "-",
}  # fmt: skip
_TYPE_NAMES = {
    "BoolType": "bool", "IntType": "int", "UintType": "uint", "DoubleType": "double", "StringType": "string",
    "BytesType": "bytes", "ListType": "list", "MapType": "map", "NoneType": "null", "TimestampType": "timestamp",
    "DurationType": "duration", "TypeType": "type",
}  # fmt: skip

# One environment for the process: it holds only the parser; programs carry no state between calls.
_ENV = celpy.Environment()


@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> lark.Tree:
    if not source.strip():
        raise TemplateError("the expression is empty; write a CEL expression such as nodes.check.output.ok")
    try:
        return _ENV.compile(source)
    except CELParseError as exc:
        raise TemplateError(f"the expression does not parse{_position(source, exc)}; check the CEL syntax") from exc


def _position(source: str, exc: CELParseError) -> str:
    if exc.line is None or exc.column is None:
        return ""
    lines = source.splitlines() or [""]
    text = lines[min(max(exc.line, 1), len(lines)) - 1]
    near = text[max(exc.column - 1, 0) :].strip()[:30]
    where = f" at line {exc.line}, column {exc.column}"
    return f"{where} (near {near!r})" if near else f"{where} (it ends too early)"


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> celpy.Runner:
    """The compiled program for `source` (cached); `TemplateError` when it is not valid CEL."""
    tree = _parse(source)
    try:
        return _ENV.program(tree)
    except (CELSyntaxError, CELUnsupportedError) as exc:
        raise TemplateError(f"the expression cannot be compiled: {exc}") from exc


def evaluate(source: str, scope: Mapping[str, Any]) -> Any:
    """`source` evaluated against `scope` ({"nodes": ..., "inputs": ...}) as a plain Python value.

    `TemplateError` when it does not compile, or fails (a missing key, a type mismatch, division by zero).
    """
    program = compile_expression(source)
    try:
        activation = {name: celpy.json_to_cel(value) for name, value in scope.items()}
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"the expression's data cannot be given to CEL: {exc}") from exc
    try:
        result = program.evaluate(activation)
    except CELEvalError as exc:
        raise TemplateError(f"the expression failed: {_eval_message(exc)}") from exc
    except (CELUnsupportedError, CELSyntaxError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # celpy lets some Python errors through from its operators; they are the expression's fault too
        raise TemplateError(f"the expression failed: {type(exc).__name__}: {exc}") from exc
    except RecursionError as exc:
        raise TemplateError("the expression is nested too deeply to evaluate") from exc
    return to_python(result)


def _eval_message(exc: CELEvalError) -> str:
    """celpy's message without the internals it embeds (activations, parser tokens, class reprs)."""
    message = str(exc.args[0]) if exc.args else "evaluation error"
    detail = exc.args[2] if len(exc.args) > 2 else None
    # "no such overload" buries the operator and operand types in reprs of nested errors
    parts = detail if isinstance(detail, tuple) else (detail,)
    overload = _OVERLOAD.search(" ".join([message, *(str(part) for part in parts if part is not None)]))
    if overload is not None:
        message = overload.group(0)
    elif exc.args[1:2] == (ZeroDivisionError,):
        message = "division by zero"
    elif isinstance(detail, tuple) and detail and all(isinstance(part, str) for part in detail):
        message = f"{message} ({'; '.join(detail)})"
    message = message.split(" (in activation", 1)[0]
    message = _RULE_TOKEN.sub(lambda match: repr(_OPERATORS.get(match[1], match[1])), message)
    message = _CEL_CLASS.sub(lambda match: _TYPE_NAMES.get(match[1], match[1]), message)
    return message if len(message) <= 300 else message[:297] + "..."


def to_python(value: Any) -> Any:
    """A celpy value as plain Python: bool, int, float, str, list, dict, None (timestamps and durations as text)."""
    # BoolType subclasses int, so it is tested first.
    if isinstance(value, celtypes.BoolType | bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, celtypes.MapType | dict):
        return {to_python(key): to_python(member) for key, member in value.items()}
    if isinstance(value, celtypes.ListType | list | tuple):
        return [to_python(member) for member in value]
    if value is None:
        return None
    if isinstance(value, celtypes.TimestampType | celtypes.DurationType):
        return str(value)
    if isinstance(value, type):  # `type(x)` gives the celtypes class
        return _TYPE_NAMES.get(value.__name__, value.__name__)
    return str(value)


def expression_references(source: str) -> set[tuple[str, str]]:
    """What an expression uses: ("nodes", id), ("inputs", name), and ("unknown", name) for other top-level names.

    Read from the parsed expression, so names inside string literals do not count and
    variables bound by macros (`items.exists(x, x > 1)`) are not unknown names.
    `TemplateError` when the expression does not parse.
    """
    tree = _parse(source)
    found: set[tuple[str, str]] = set()
    _collect(tree, frozenset(), found)
    return found


def _collect(tree: lark.Tree, bound: frozenset[str], found: set[tuple[str, str]]) -> None:
    """Walk one subtree, knowing which macro variables are bound here."""
    stack: list[tuple[lark.Tree, frozenset[str]]] = [(tree, bound)]
    while stack:
        node, names = stack.pop()
        rule = node.data
        if rule == "member_dot_arg":
            method = _token(node.children[1])
            args = _args(node.children[2] if len(node.children) > 2 else None)
            if method in _MACROS and len(args) >= 2:
                variable = _plain_ident(args[0])
                inner = names | {variable} if variable else names
                stack.append((node.children[0], names))
                stack.extend((arg, inner) for arg in args[1:])
                continue
        elif rule in ("member_dot", "member_index"):
            owner = _plain_ident(node.children[0])
            if owner in SCOPE_NAMES and owner not in names:
                key = _token(node.children[1]) if rule == "member_dot" else _string_literal(node.children[1])
                if key is not None:
                    found.add((owner, key))
                if rule == "member_index":
                    stack.append((node.children[1], names))
                continue
        elif rule == "ident":
            name = _token(node.children[0])
            if name and name not in SCOPE_NAMES and name not in _CEL_NAMES and name not in names:
                found.add(("unknown", name))
            continue
        stack.extend((child, names) for child in _subtrees(node))


def _subtrees(node: lark.Tree) -> Iterator[lark.Tree]:
    return (child for child in node.children if isinstance(child, lark.Tree))


def _token(child: Any) -> str | None:
    return str(child) if isinstance(child, lark.Token) else None


def _args(exprlist: Any) -> list[lark.Tree]:
    return list(_subtrees(exprlist)) if isinstance(exprlist, lark.Tree) else []


def _single_chain(node: lark.Tree) -> lark.Tree:
    """Descend through rules with one subtree child (expr -> conditionalor -> ... -> primary)."""
    while True:
        children = list(_subtrees(node))
        if len(children) != 1 or len(node.children) != 1:
            return node
        node = children[0]


def _plain_ident(node: Any) -> str | None:
    """The name if `node` is nothing but an identifier (`nodes`, `x`), else None."""
    if not isinstance(node, lark.Tree):
        return None
    leaf = _single_chain(node)
    if leaf.data == "ident":
        return _token(leaf.children[0])
    return None


def _string_literal(node: Any) -> str | None:
    """The text of a plain string literal (`"my-id"`), else None."""
    if not isinstance(node, lark.Tree):
        return None
    leaf = _single_chain(node)
    if leaf.data != "literal":
        return None
    text = _token(leaf.children[0])
    if text is None or text[:1] in "rRbB":
        return None
    for quote in _STRING_QUOTES:
        if text.startswith(quote) and text.endswith(quote) and len(text) >= 2 * len(quote):
            body = text[len(quote) : -len(quote)]
            return None if "\\" in body else body
    return None
