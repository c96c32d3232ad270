"""Templates: rendering in the sandbox, native values, and what a template refers to."""

from __future__ import annotations

import pytest

from executor.errors import TemplateError
from executor.templates import compile_template, render, render_value, template_references, templates_in

SCOPE = {
    "inputs": {"topic": "otters", "limit": 3},
    "nodes": {
        "fetch": {"output": {"title": "Otters", "count": 2, "items": ["a", "b"]}},
        "my-id": {"output": "hyphenated"},
    },
}


def test_render_substitutes_node_outputs_and_inputs() -> None:
    text = render("{{ inputs.topic }}: {{ nodes.fetch.output.title }} / {{ nodes['my-id'].output }}", SCOPE)
    assert text == "otters: Otters / hyphenated"


def test_render_gives_dicts_and_lists_as_json() -> None:
    assert render("{{ nodes.fetch.output }}", SCOPE) == '{"title": "Otters", "count": 2, "items": ["a", "b"]}'
    assert render("{{ nodes.fetch.output.items }}", SCOPE) == '["a", "b"]'


def test_render_prefers_a_key_named_like_a_dict_method() -> None:
    assert render("{% for x in nodes.fetch.output.items %}{{ x }};{% endfor %}", SCOPE) == "a;b;"


def test_render_keeps_the_trailing_newline() -> None:
    assert render("{{ inputs.topic }}\n", SCOPE) == "otters\n"


def test_render_names_the_missing_key_and_what_exists() -> None:
    with pytest.raises(TemplateError, match=r"'summary'.*count, items, title"):
        render("{{ nodes.fetch.output.summary }}", SCOPE)


def test_render_refuses_an_undefined_top_level_name() -> None:
    with pytest.raises(TemplateError, match="'topic' is not defined"):
        render("{{ topic }}", SCOPE)


def test_render_refuses_access_to_python_internals() -> None:
    with pytest.raises(TemplateError, match="may not do"):
        render("{{ inputs.topic.__class__.__mro__ }}", SCOPE)


def test_render_refuses_to_build_huge_strings() -> None:
    with pytest.raises(TemplateError, match="longer than"):
        render("{{ 'x' * 100000000 }}", SCOPE)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x'.ljust(10**9) }}",
        "{{ '%999999999s' % 'x' }}",
        "{{ '{:>999999999}'.format('x') }}",
        "{{ 'x' | center(10**9) }}",
        "{{ [1] | batch(10**9, 0) | list }}",
        "{{ 2 ** 100000 }}",
    ],
)
def test_render_refuses_to_allocate_huge_values(source: str) -> None:
    with pytest.raises(TemplateError, match="may not"):
        render(source, SCOPE)


def test_render_still_allows_ordinary_widths_and_formats() -> None:
    assert render(
        "{{ '%5.1f' % 3.14159 }}|{{ '{:>4}'.format(inputs.limit) }}|{{ inputs.topic | center(10) }}|", SCOPE
    ) == ("  3.1|   3|  otters  |")


def test_render_refuses_output_longer_than_the_limit() -> None:
    with pytest.raises(TemplateError, match="renders more than"):
        render("{% for i in range(20) %}{{ 'x' * 1000000 }}{% endfor %}", SCOPE)


def test_render_turns_runtime_errors_into_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ inputs.limit / 0 }}", SCOPE)


def test_a_syntax_error_is_a_template_error_with_its_line() -> None:
    with pytest.raises(TemplateError, match=r"does not parse.*line 2"):
        compile_template("fine\n{{ nodes. }}")


def test_compiled_templates_are_cached() -> None:
    assert compile_template("{{ inputs.topic }}!") is compile_template("{{ inputs.topic }}!")


def test_render_value_gives_the_native_value_of_a_single_expression() -> None:
    assert render_value("{{ nodes.fetch.output.count }}", SCOPE) == 2
    assert render_value("{{ nodes.fetch.output.items }}", SCOPE) == ["a", "b"]
    assert render_value("{{- inputs.limit -}}", SCOPE) == 3


def test_render_value_renders_text_around_expressions_as_a_string() -> None:
    assert render_value("count: {{ nodes.fetch.output.count }}", SCOPE) == "count: 2"
    assert render_value("{{ inputs.limit }}{{ inputs.limit }}", SCOPE) == "33"


def test_render_value_walks_json_structures_and_leaves_other_values_alone() -> None:
    value = {"q": "{{ inputs.topic }}", "n": ["{{ inputs.limit }}", 7, None], "flag": True, "plain": "no braces"}
    assert render_value(value, SCOPE) == {"q": "otters", "n": [3, 7, None], "flag": True, "plain": "no braces"}


def test_render_value_refuses_an_undefined_single_expression() -> None:
    with pytest.raises(TemplateError, match="'missing'"):
        render_value("{{ nodes.fetch.output.missing }}", SCOPE)


def test_template_references_lists_nodes_inputs_and_unknown_names() -> None:
    source = "{{ nodes.fetch.output }} {{ nodes['my-id'].output }} {{ inputs.topic }} {{ mystery }}"
    assert template_references(source) == {
        ("nodes", "fetch"),
        ("nodes", "my-id"),
        ("inputs", "topic"),
        ("unknown", "mystery"),
    }


def test_template_references_ignores_loop_variables_set_names_and_globals() -> None:
    source = "{% set n = 2 %}{% for x in range(n) %}{{ loop.index }}{{ x }}{% endfor %}{{ inputs.topic }}"
    assert template_references(source) == {("inputs", "topic")}


def test_template_references_skips_keys_only_known_at_run_time() -> None:
    assert template_references("{{ nodes[inputs.which].output }}") == {("inputs", "which")}


def test_template_references_reports_syntax_errors() -> None:
    with pytest.raises(TemplateError):
        template_references("{% for %}")


def test_templates_in_finds_template_strings_by_dotted_path() -> None:
    value = {"city": "{{ inputs.city }}", "units": "metric", "extra": {"days": ["{{ inputs.days }}", 3]}}
    assert templates_in(value, "arguments") == {
        "arguments.city": "{{ inputs.city }}",
        "arguments.extra.days.0": "{{ inputs.days }}",
    }
