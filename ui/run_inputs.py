"""The form a run's inputs are asked with, made from the flow's declared inputs (flow page and editor).

model = inputs_model(document.inputs)      # a pydantic model: names, types, required, defaults
form = inputs_form(document.inputs, on_submit=start, submit_label="Run")
inputs = input_values(form_model_instance)  # {name: value}, left-out optional ones omitted
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from executor.document import FlowInputSpec
from ui.forms import FieldOptions, ModelForm

_INPUT_TYPES: dict[str, Any] = {
    "string": str,
    "number": float,
    "integer": int,
    "boolean": bool,
    "object": dict[str, Any],
    "array": list[Any],
}


def inputs_model(specs: list[FlowInputSpec]) -> type[BaseModel]:
    """A pydantic model of a flow's declared inputs: names, types, required, defaults and descriptions.

    Fields are named `f0`, `f1`, ... with the input's name as alias, so an input may be called
    anything a template allows (`json`, `_x`) without clashing with pydantic's own attributes."""
    fields: dict[str, Any] = {}
    for index, spec in enumerate(specs):
        kind = _INPUT_TYPES[spec.type]
        about = spec.description or None
        if spec.required and spec.default is None:
            fields[f"f{index}"] = (kind, Field(..., alias=spec.name, description=about))
        elif spec.required:
            fields[f"f{index}"] = (kind, Field(default=spec.default, alias=spec.name, description=about))
        else:
            fields[f"f{index}"] = (kind | None, Field(default=spec.default, alias=spec.name, description=about))
    config = ConfigDict(extra="forbid", populate_by_name=True)
    model: type[BaseModel] = create_model("RunInputs", __config__=config, **fields)
    return model


def inputs_form(
    specs: list[FlowInputSpec],
    *,
    on_submit: Callable[[BaseModel], Awaitable[Any]],
    submit_label: str = "Run",
    testid: str = "run",
    value: dict[str, Any] | None = None,
) -> ModelForm[BaseModel]:
    """The Run form of a flow: one field per input (objects and arrays as JSON)."""
    wide = {spec.name: FieldOptions(widget="json") for spec in specs if spec.type in ("object", "array")}
    return ModelForm(
        inputs_model(specs), value=value, on_submit=on_submit, submit_label=submit_label, fields=wide, testid=testid
    )


def input_values(values: BaseModel) -> dict[str, Any]:
    """The inputs to start a run with: left-out optional inputs take the flow's default (nested nulls stay)."""
    return {k: v for k, v in values.model_dump(mode="json", by_alias=True).items() if v is not None}
