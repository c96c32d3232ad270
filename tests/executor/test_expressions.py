"""CEL expressions: plain Python results, readable errors, and what an expression refers to."""

from __future__ import annotations

import pytest

from executor.errors import TemplateError
from executor.expressions import compile_expression, evaluate, expression_references

SCOPE = {
    "inputs": {"threshold": 2, "name": "ada"},
    "nodes": {
        "score": {"output": {"value": 3, "ratio": 0.5, "tags": ["x", "y"], "label": "urgent"}},
        "my-id": {"output": True},
    },
}


def test_a_comparison_gives_a_python_bool() -> None:
    result = evaluate("nodes.score.output.value > inputs.threshold", SCOPE)
    assert result is True


def test_results_are_plain_python_types() -> None:
    assert type(evaluate("nodes.score.output.value + 1", SCOPE)) is int
    assert type(evaluate("nodes.score.output.ratio * 2.0", SCOPE)) is float
    assert type(evaluate("inputs.name + '!'", SCOPE)) is str
    tags = evaluate("nodes.score.output.tags", SCOPE)
    assert tags == ["x", "y"]
    assert type(tags) is list
    assert all(type(tag) is str for tag in tags)
    mapping = evaluate("{'ok': true, 'n': 1}", SCOPE)
    assert mapping == {"ok": True, "n": 1}
    assert type(mapping) is dict
    assert type(mapping["ok"]) is bool
    assert evaluate("null", SCOPE) is None


def test_quoted_keys_reach_hyphenated_node_ids() -> None:
    assert evaluate('nodes["my-id"].output', SCOPE) is True


def test_macros_work_on_lists() -> None:
    assert evaluate("nodes.score.output.tags.exists(t, t == 'y')", SCOPE) is True
    assert evaluate("nodes.score.output.tags.map(t, t + t)", SCOPE) == ["xx", "yy"]


def test_a_missing_key_is_a_template_error_naming_it() -> None:
    with pytest.raises(TemplateError, match="'priority'"):
        evaluate("nodes.score.output.priority == 1", SCOPE)


def test_an_undeclared_name_is_a_template_error_naming_it() -> None:
    with pytest.raises(TemplateError, match="undeclared reference to 'score'"):
        evaluate("score > 1", SCOPE)


def test_a_type_mismatch_names_the_operator_and_types() -> None:
    with pytest.raises(TemplateError, match=r"'\+' applied to '\(string, int\)'"):
        evaluate("inputs.name + 1", SCOPE)


def test_division_by_zero_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="division by zero"):
        evaluate("nodes.score.output.value / 0", SCOPE)


def test_a_syntax_error_says_where() -> None:
    with pytest.raises(TemplateError, match=r"does not parse at line 1, column \d+ \(near '=='\)"):
        compile_expression("nodes.score ==")


def test_an_empty_expression_is_refused() -> None:
    with pytest.raises(TemplateError, match="empty"):
        compile_expression("   ")


def test_compiled_expressions_are_cached() -> None:
    assert compile_expression("inputs.threshold > 0") is compile_expression("inputs.threshold > 0")


def test_expression_references_lists_nodes_inputs_and_unknown_names() -> None:
    source = 'nodes.score.output.value > inputs.threshold && nodes["my-id"].output && other.flag'
    assert expression_references(source) == {
        ("nodes", "score"),
        ("nodes", "my-id"),
        ("inputs", "threshold"),
        ("unknown", "other"),
    }


def test_expression_references_ignores_string_literals_macro_variables_and_type_names() -> None:
    source = "nodes.a.output.tags.all(t, t != 'nodes.fake') && type(inputs.n) == int && size(\"inputs.x\") > 0"
    assert expression_references(source) == {("nodes", "a"), ("inputs", "n")}


def test_expression_references_reports_syntax_errors() -> None:
    with pytest.raises(TemplateError):
        expression_references("nodes.a.output ==")
