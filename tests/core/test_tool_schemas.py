"""Tool input schemas: checked on save, inputs checked before a run, nothing fetched, no regex blow-ups."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from core.errors import InvalidInput
from core.tool_schemas import check_input_schema, example_input, parse_input, validate_input


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback that records every path asked of it."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def test_a_remote_ref_is_never_fetched(listener: tuple[str, list[str]]) -> None:
    url, seen = listener
    schema = check_input_schema(obj(name={"$ref": f"{url}/name.json"}))
    with pytest.raises(InvalidInput, match="not inside the schema"):
        validate_input(schema, {"name": 42})
    assert seen == []


def test_local_refs_resolve() -> None:
    schema = check_input_schema({**obj(city={"$ref": "#/$defs/city"}), "$defs": {"city": {"type": "string"}}})
    assert validate_input(schema, {"city": "Oslo"}) == {"city": "Oslo"}
    with pytest.raises(InvalidInput, match="input field 'city': 3 is not of type 'string'"):
        validate_input(schema, {"city": 3})


@pytest.mark.timeout(30)  # a backtracking engine would hang here for hours
def test_patterns_match_in_linear_time() -> None:
    schema = check_input_schema(obj(word={"type": "string", "pattern": "^(a+)+$"}))
    with pytest.raises(InvalidInput, match="does not match"):
        validate_input(schema, {"word": "a" * 5000 + "!"})
    assert validate_input(schema, {"word": "aaaa"}) == {"word": "aaaa"}


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ([], "must be a JSON object"),
        ({"properties": {}}, '"type": "object"'),
        (obj(a={"type": "string", "pattern": "(?<=x)a"}), "lookarounds and backreferences"),
        ({**obj(), "patternProperties": {"^x": {}}}, "patternProperties"),
        (obj(a={"minimum": "three"}), "properties/a/minimum"),
        (obj(a={"description": "x" * 70_000}), "keep it under"),
        (obj(a={"default": float("nan")}), "not plain JSON"),
    ],
)
def test_unusable_schemas_are_refused_with_the_reason(schema: Any, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        check_input_schema(schema)


def test_deeply_nested_schemas_are_refused() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = obj(inner=schema)
    with pytest.raises(InvalidInput, match="deeper than"):
        check_input_schema(schema)


def test_formats_are_checked_but_regex_format_is_not_compiled() -> None:
    schema = check_input_schema(obj(mail={"format": "email"}, expr={"format": "regex"}))
    with pytest.raises(InvalidInput, match="input field 'mail'"):
        validate_input(schema, {"mail": "not-an-address"})
    assert validate_input(schema, {"mail": "a@example.org", "expr": "(unclosed"})["expr"] == "(unclosed"


def test_input_text_must_be_a_json_object() -> None:
    assert parse_input('{"a": 1}') == {"a": 1}
    assert parse_input("") == {}
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_input("{'a': 1}")
    with pytest.raises(InvalidInput, match="got list"):
        parse_input("[1]")


def test_example_input_fills_required_fields_from_defaults_examples_and_types() -> None:
    schema = {
        **obj(
            city={"type": "string", "examples": ["Oslo"]},
            days={"type": "integer", "default": 3},
            unit={"enum": ["c", "f"]},
            verbose={"type": "boolean"},
            note={"type": "string"},
        ),
        "required": ["city", "days", "unit", "verbose"],
    }
    assert example_input(schema) == {"city": "Oslo", "days": 3, "unit": "c", "verbose": False}
    assert example_input(obj(q={"type": "string"})) == {"q": ""}  # nothing required: every property
    assert example_input({"type": "object"}) == {}
