"""The rules for user-supplied text and JSON: what each kind refuses, and that the message names the field."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError

from core.errors import InvalidInput
from core.text import MAX_JSON_DEPTH, Code, JsonObject, Name, Text, check_json, check_text, text_problem


class Form(BaseModel):
    name: Name
    description: Text = ""
    code: Code = ""
    data: JsonObject = {}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a\x00b", "NUL"),
        ("a\x1bb", "control character (U+001B)"),
        ("a\x7fb", "control character (U+007F)"),
        ("a\tb", "control character (U+0009)"),
        ("a\nb", "control character (U+000A)"),
        ("invoice\u202efdp.exe", "bidirectional control character (U+202E)"),
        ("a\u2066b", "bidirectional control character (U+2066)"),
        ("a\ud800b", "lone surrogate"),
        ("x" * 201, "at most 200"),
    ],
    ids=repr,
)
def test_a_name_refuses(value: str, why: str) -> None:
    problem = text_problem(value, "name")
    assert problem is not None
    assert why in problem


@pytest.mark.parametrize(
    "value", ["Acme Labs", "Zo\u00eb\u2019s caf\u00e9 \u2013 \u21161", "مرحبا", "日本語チーム", "emoji 🚀"]
)
def test_a_name_accepts_ordinary_text_in_any_script(value: str) -> None:
    assert text_problem(value, "name") is None


def test_descriptions_and_code_keep_tabs_and_newlines_but_never_nul() -> None:
    source = "def run(x):\n\treturn x  # ok\r\n"
    assert text_problem(source, "code") is None
    assert text_problem("line one\nline two", "text") is None
    assert "NUL" in (text_problem("print(1)\x00", "code") or "")
    assert "U+000B" in (text_problem("a\x0bb", "text") or "")


def test_check_text_names_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"^display_name contains a NUL") as refused:
        check_text("Al\x00ice", "display_name")
    assert [(p.field, "NUL" in p.message) for p in refused.value.problems] == [("display_name", True)]


def test_a_pydantic_model_reports_every_bad_field_at_once() -> None:
    with pytest.raises(ValidationError) as refused:
        Form.model_validate({"name": "a\x00", "description": "\ud800", "code": "ok\n", "data": {"k": "v\x00"}})
    fields = {error["loc"][0] for error in refused.value.errors()}
    assert fields == {"name", "description", "data"}
    assert "a\x00" not in str(refused.value.errors(include_input=False))


def test_json_from_users_is_bounded_in_depth_size_and_text() -> None:
    deep: object = "leaf"
    for _ in range(MAX_JSON_DEPTH + 5):
        deep = {"k": deep}
    with pytest.raises(InvalidInput, match="nested more than 32 levels"):
        check_json(deep, "input")
    with pytest.raises(InvalidInput, match="at most 1000"):
        check_json({"items": list(range(1001))}, "input")
    with pytest.raises(InvalidInput, match=r"NUL.*at a\.b\[1\]"):
        check_json({"a": {"b": ["fine", "bad\x00"]}}, "input")
    for number in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(InvalidInput, match=r"not a JSON number at x\[0\]"):
            check_json({"x": [number]}, "input")
    with pytest.raises(InvalidInput, match="member name"):
        check_json({"bad\x00key": 1}, "input")
    ordinary = json.loads('{"query": "weather in Oslo", "days": 3, "tags": ["a", "b"], "opts": {"x": null}}')
    assert check_json(ordinary, "input") is ordinary


def test_a_hostile_depth_does_not_exhaust_the_stack() -> None:
    """The walk is iterative: 100,000 levels are refused with a message, not a RecursionError."""
    deep: object = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested more than"):
        check_json({"a": deep}, "input")
