"""User-supplied text: the rules every string from a person or a program meets, in one place.

Every string that arrives from outside (request bodies, path and query parameters, form
fields, JSON documents) is checked here before it reaches a service or the database:

- never NUL, other C0 controls or DEL (PostgreSQL refuses NUL; terminals and logs misread
  the rest); tab, newline and carriage return only in multi-line kinds (`Text`, `Code`);
- never a lone surrogate (not Unicode: UTF-8 cannot encode it, so databases refuse it);
- in names (`Name`, `Line`), no C1 controls and no bidirectional overrides or isolates,
  which can make a name display as something else (spoofing in the UI);
- a length cap for every kind, and caps on list sizes and JSON depth (`check_json`), which
  also refuses NaN and Infinity (Python's decoder takes them; JSON and PostgreSQL do not).

Use the `Annotated` kinds in pydantic models (a violation is a validation error naming the
field), or `check_text` / `check_json` where a plain value arrives (an `InvalidInput`
naming the field).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, StringConstraints

from core.errors import InvalidInput

TextKind = Literal["name", "line", "text", "code", "secret"]

#: Longest value of each kind, in characters.
MAX_LENGTH: dict[TextKind, int] = {
    "name": 200,
    "line": 2000,
    "text": 20_000,
    "code": 256 * 1024,
    "secret": 4096,
}
#: JSON documents from users: how deep, how many members per object or array, how long a string.
MAX_JSON_DEPTH = 32
MAX_JSON_ITEMS = 1000
MAX_JSON_STRING = 256 * 1024

_C0_EXCEPT_WHITESPACE = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_SURROGATES = "\ud800-\udfff"
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_C1 = "\x80-\x9f"

_FORBIDDEN: dict[TextKind, re.Pattern[str]] = {
    "name": re.compile(f"[\x00-\x1f\x7f{_C1}{_SURROGATES}{_BIDI_CONTROLS}\u2028\u2029]"),
    "line": re.compile(f"[\x00-\x1f\x7f{_C1}{_SURROGATES}{_BIDI_CONTROLS}\u2028\u2029]"),
    "secret": re.compile(f"[\x00-\x1f\x7f{_SURROGATES}]"),
    "text": re.compile(f"[{_C0_EXCEPT_WHITESPACE}{_SURROGATES}]"),
    "code": re.compile(f"[{_C0_EXCEPT_WHITESPACE}{_SURROGATES}]"),
}
_ALLOWED_WHITESPACE: dict[TextKind, str] = {"text": "tab, newline", "code": "tab, newline"}


def _describe(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "a NUL character (U+0000)"
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X}), which is not text"
    if char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        return f"a bidirectional control character (U+{code:04X}), which can disguise how it displays"
    return f"a control character (U+{code:04X})"


def text_problem(value: str, kind: TextKind, *, max_length: int | None = None) -> str | None:
    """Why `value` is not acceptable text of `kind`, or None if it is."""
    limit = max_length if max_length is not None else MAX_LENGTH[kind]
    if len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are allowed"
    bad = _FORBIDDEN[kind].search(value)
    if bad is None:
        return None
    allowed = _ALLOWED_WHITESPACE.get(kind)
    hint = f" (only {allowed} are allowed as control characters)" if allowed else ""
    return f"contains {_describe(bad.group())} at position {bad.start()}{hint}; remove it"


def check_text(value: str, field: str, kind: TextKind = "name", *, max_length: int | None = None) -> str:
    """`value` if it is acceptable text of `kind`, else `InvalidInput` naming `field`."""
    problem = text_problem(value, kind, max_length=max_length)
    if problem is not None:
        raise InvalidInput(f"{field} {problem}", field=field)
    return value


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a decoded JSON value is not acceptable from a user (too deep, too big, bad text), or None.

    Walks without recursion, so a hostile document cannot exhaust the stack here."""
    pending: list[tuple[Any, str, int]] = [(value, "", 0)]
    while pending:
        item, path, depth = pending.pop()
        at = f" at {path}" if path else ""
        if depth > max_depth:
            return f"is nested more than {max_depth} levels deep{at}"
        if isinstance(item, float) and not math.isfinite(item):
            return f"holds {item}, which is not a JSON number{at}; send a finite number"
        if isinstance(item, str):
            problem = text_problem(item, "code", max_length=MAX_JSON_STRING)
            if problem is not None:
                return f"{problem.removesuffix('; remove it')}{at}"
        elif isinstance(item, dict):
            if len(item) > MAX_JSON_ITEMS:
                return f"has {len(item)} members{at}; at most {MAX_JSON_ITEMS} are allowed"
            for key, member in item.items():
                name = f"{path}.{key}" if path else str(key)
                problem = text_problem(str(key), "line", max_length=MAX_LENGTH["name"])
                if problem is not None:
                    return f"has a member name that {problem.removesuffix('; remove it')}{at}"
                pending.append((member, name[:200], depth + 1))
        elif isinstance(item, list | tuple):
            if len(item) > MAX_JSON_ITEMS:
                return f"has {len(item)} items{at}; at most {MAX_JSON_ITEMS} are allowed"
            pending.extend((member, f"{path}[{index}]"[:200], depth + 1) for index, member in enumerate(item))
    return None


def check_json(value: Any, field: str) -> Any:
    """`value` if it is an acceptable JSON document from a user, else `InvalidInput` naming `field`."""
    problem = json_problem(value)
    if problem is not None:
        raise InvalidInput(f"{field} {problem}", field=field)
    return value


def _validator(kind: TextKind, max_length: int | None = None) -> Callable[[str], str]:
    def validate(value: str) -> str:
        problem = text_problem(value, kind, max_length=max_length)
        if problem is not None:
            raise ValueError(problem)
        return value

    return validate


def _json_validator(value: Any) -> Any:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def text(kind: TextKind, max_length: int | None = None) -> Any:
    """An `Annotated[str, ...]` of `kind` for pydantic models, capped at `max_length` characters."""
    limit = max_length if max_length is not None else MAX_LENGTH[kind]
    return Annotated[str, StringConstraints(max_length=limit), AfterValidator(_validator(kind, limit))]


#: One line that people read as a name (tenant, provider, API key, display names).
Name = Annotated[str, StringConstraints(max_length=MAX_LENGTH["name"]), AfterValidator(_validator("name"))]
#: One line of another kind (email addresses, URLs, tokens, model ids).
Line = Annotated[str, StringConstraints(max_length=MAX_LENGTH["line"]), AfterValidator(_validator("line"))]
#: Prose on several lines (descriptions, prompts).
Text = Annotated[str, StringConstraints(max_length=MAX_LENGTH["text"]), AfterValidator(_validator("text"))]
#: Source code.
Code = Annotated[str, StringConstraints(max_length=MAX_LENGTH["code"]), AfterValidator(_validator("code"))]
#: Passwords and keys: anything printable, never a control character.
Secret = Annotated[str, StringConstraints(max_length=MAX_LENGTH["secret"]), AfterValidator(_validator("secret"))]
#: A JSON object from a user (tool input, parameters, schemas): depth, sizes and strings checked.
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_validator)]
