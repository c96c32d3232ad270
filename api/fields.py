"""Field types the routers share, built on `core.text`'s rules for user-supplied text."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator, StringConstraints

from core.text import TextKind, text_problem

#: What a tenant slug looks like (the rule itself lives in `db/slugs.py`; reserved names are refused there).
SLUG_PATTERN = r"^[a-z][a-z0-9_]{2,39}$"

#: A tenant slug in the path: malformed ones (NUL, spaces, upper case) are a 422 before any lookup.
SlugPath = Annotated[str, Path(pattern=SLUG_PATTERN, description="The tenant's slug.")]


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def text_rules(kind: TextKind, max_length: int) -> AfterValidator:
    """`core.text`'s rules for `kind` with a tighter length cap, for `Annotated[str, ...]` fields.

    (Capping `Line` & co. again with `Field(max_length=...)` would answer in pydantic's
    words for lists, "at most 200 items".)"""

    def check(value: str) -> str:
        problem = text_problem(value, kind, max_length=max_length)
        if problem is not None:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


#: An email address; surrounding whitespace (a pasted tab or newline) is dropped before the checks.
Email = Annotated[str, BeforeValidator(_strip), StringConstraints(max_length=320), text_rules("line", 320)]
#: A tenant slug in a body; its rules (and the message naming them) are core's.
Slug = Annotated[str, StringConstraints(max_length=64), text_rules("line", 64)]
#: A one-time token (refresh token, invitation token).
Token = Annotated[str, StringConstraints(max_length=200), text_rules("line", 200)]
#: A short line: an id or a name a program uses (tool call ids, stop words).
ShortLine = Annotated[str, StringConstraints(max_length=200), text_rules("line", 200)]
#: A role name: viewer, editor, admin or owner (core checks which).
RoleName = Annotated[str, StringConstraints(max_length=20), text_rules("line", 20)]
#: A password: any printable text, never a control character.
Password = Annotated[str, StringConstraints(max_length=1024), text_rules("secret", 1024)]
