"""The fields of a `ui.forms.ModelForm`: reading a property's JSON schema, and the single controls.

`unwrap` reads a property's schema (`$ref`, `X | None`), `widget_for` picks its control.
The field classes (the groups live in `ui.forms`, which builds them all with `build_field`):

    FormField
    ├── ValueField      one control: input, password, textarea, code, JSON, number, switch, select, chips
    ├── HiddenField     carries a value through without showing it
    └── (ui.forms) GroupField, ListField, KeyValueField

Every field knows its raw value (as typed), the data it submits (`EMPTY` when nothing was
typed, so the parent sends None or leaves the model's default) and how to show a problem
under itself; a problem deeper than a field can route (`models.3`) is shown with its rest
(`item 4: ...`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement
from nicegui.elements.mixins.value_element import ValueElement
from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python

from core.errors import Problem
from core.text import MAX_LENGTH

Widget = Literal["input", "textarea", "code", "password", "switch", "number", "select", "chips", "json", "keyvalue"]
#: Strings longer than a `core.text.Line` (which forbids newlines) get a textarea.
LONG_TEXT = MAX_LENGTH["line"]
#: A select with more options than this gets a filter input.
SEARCHABLE_OVER = 8
#: Nested objects deeper than this are edited as JSON (guards recursive models).
MAX_DEPTH = 6


class _Empty:
    def __repr__(self) -> str:
        return "EMPTY"


#: What a field submits when nothing was typed: its parent sends None (nullable) or leaves the key out.
EMPTY: Any = _Empty()


@dataclass(frozen=True)
class FieldOptions:
    """Per-field overrides of what the schema says, keyed by dotted field name (`steps.name` for list items)."""

    label: str | None = None
    help: str | None = None
    #: value -> label; renders a select (a multiple one for arrays).
    choices: Mapping[Any, str] | Callable[[], Mapping[Any, str]] | None = None
    widget: Widget | None = None
    hidden: bool = False
    read_only: bool = False
    placeholder: str | None = None
    #: Called with the field's element once it is rendered, to put something after it.
    after: Callable[[ui.element], None] | None = None


@dataclass
class FormContext:
    """What every field of one form shares."""

    testid: str
    defs: Mapping[str, Any]
    options: Mapping[str, FieldOptions]
    exclude: frozenset[str]
    read_only: bool
    submit: Callable[[], Awaitable[None]]
    changed: Callable[[], None]
    #: Controls showing a problem in their error slot, in the order shown (the first gets the focus).
    errored: list[ui.element] = field(default_factory=list)

    def options_for(self, path: str) -> FieldOptions:
        generic = ".".join(part for part in path.split(".") if not part.isdigit())
        return self.options.get(path) or self.options.get(generic) or FieldOptions()

    def tag(self, element: ui.element, path: str) -> None:
        """Give `element` its test id (`<form>-<path>`), as a prop for browsers and a marker for `user.find`."""
        testid = f"{self.testid}-{path}"
        element.props["data-testid"] = testid
        element.mark(testid)


def resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """`node` with `$ref` and single-member `allOf` replaced by what they point to (its own keys win)."""
    current = dict(node)
    while True:
        ref = current.pop("$ref", None)
        if isinstance(ref, str):
            current = {**defs.get(ref.rsplit("/", 1)[-1], {}), **current}
            continue
        all_of = current.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            current.pop("allOf")
            current = {**all_of[0], **current}
            continue
        return current


def unwrap(node: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema of a property without its `null` alternative, and whether null is allowed."""
    schema = resolve(node, defs)
    for key in ("anyOf", "oneOf"):
        alternatives = schema.get(key)
        if not isinstance(alternatives, list):
            continue
        others = [a for a in alternatives if resolve(a, defs).get("type") != "null"]
        nullable = len(others) < len(alternatives)
        rest = {k: v for k, v in schema.items() if k != key}
        if len(others) == 1:
            return {**resolve(others[0], defs), **rest}, nullable
        return {**rest, key: others}, nullable
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        others = [t for t in kind if t != "null"]
        return {**schema, "type": others[0] if len(others) == 1 else others}, True
    return schema, False


def humanize(name: str) -> str:
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def label_of(name: str, title: Any) -> str:
    """The schema's title, unless it is pydantic's automatic one (`Max Iter`): then `Max iter`."""
    if not isinstance(title, str) or not title or title == name.replace("_", " ").title():
        return humanize(name)
    return title


def plain(value: Any) -> Any:
    """A value as a control holds it: ids and enums as their text; secrets are never put in the page."""
    if isinstance(value, SecretStr):
        return None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True)
    if isinstance(value, str | int | float | bool | dict | list) or value is None:
        return value
    return str(value)


def describe(rest: list[str]) -> str:
    """Where below a field a problem is (`['3']` -> `item 4`)."""
    return ", ".join(f"item {int(part) + 1}" if part.isdigit() else part for part in rest)


@dataclass
class FieldSpec:
    """One property of a schema, unwrapped, with what the page says about it."""

    name: str
    path: str
    schema: dict[str, Any]
    label: str
    required: bool
    nullable: bool
    options: FieldOptions

    @property
    def shown_label(self) -> str:
        return f"{self.label} *" if self.required else self.label

    @property
    def help(self) -> str | None:
        text = self.options.help if self.options.help is not None else self.schema.get("description")
        return text if isinstance(text, str) and text else None

    @property
    def read_only(self) -> bool:
        return self.options.read_only


class ErrorText:
    """Messages shown under a group (or at the top of a form): hidden while there are none; role=alert."""

    def __init__(self, testid: str, *, banner: bool = False) -> None:
        self.messages: list[str] = []
        self.label = ui.label().classes("whitespace-pre-line")
        banner_classes = "self-stretch bg-negative text-white rounded-md px-3 py-2"
        self.label.classes(banner_classes if banner else "text-negative text-sm")
        self.label.props["role"] = "alert"
        self.label.props["data-testid"] = testid
        self.label.mark(testid)
        self.label.set_visibility(False)

    def add(self, message: str) -> None:
        if message not in self.messages:
            self.messages.append(message)
        self.label.set_text("\n".join(self.messages))
        self.label.set_visibility(True)

    def clear(self) -> None:
        self.messages = []
        self.label.set_text("")
        self.label.set_visibility(False)


class FormField(ABC):
    """One property of the model as the user edits it (each kind of control implements the five methods)."""

    def __init__(self, spec: FieldSpec, ctx: FormContext) -> None:
        self.spec = spec
        self.ctx = ctx

    @abstractmethod
    def raw(self) -> Any:
        """The value as typed (what `ModelForm.values` shows)."""
        ...

    @abstractmethod
    def set_raw(self, value: Any) -> None: ...

    @abstractmethod
    def data(self, problems: list[Problem]) -> Any:
        """What to validate (EMPTY when nothing was typed); problems found before pydantic go to `problems`."""
        ...

    @abstractmethod
    def show(self, rest: list[str], message: str) -> bool:
        """Show a problem of this field (`rest`: where below it); False if there is nowhere to show it."""
        ...

    @abstractmethod
    def clear(self) -> None: ...

    def _help(self, control: ui.element) -> None:
        text = self.spec.help
        if text is not None:
            help_label = ui.label(text).classes("cc-field-help text-sm -mt-1")
            control.props["aria-describedby"] = help_label.html_id
        if self.spec.options.after is not None:
            self.spec.options.after(control)


class HiddenField(FormField):
    """A value the page keeps but does not show (FieldOptions.hidden)."""

    def __init__(self, spec: FieldSpec, ctx: FormContext) -> None:
        super().__init__(spec, ctx)
        self.value: Any = spec.schema.get("default")

    def raw(self) -> Any:
        return self.value

    def set_raw(self, value: Any) -> None:
        self.value = value

    def data(self, problems: list[Problem]) -> Any:
        return EMPTY if self.value is None else self.value

    def show(self, rest: list[str], message: str) -> bool:
        return False  # nothing to show it under: the form's box names the field

    def clear(self) -> None:
        return None


SINGLE_LINE = frozenset({"input", "password", "number"})


class ValueField(FormField):
    """One control holding one value; its problems show in Quasar's error slot (a switch: a line below)."""

    def __init__(self, spec: FieldSpec, ctx: FormContext, widget: str) -> None:
        super().__init__(spec, ctx)
        self.widget = widget
        self.messages: list[str] = []
        self.multiple = spec.schema.get("type") == "array"
        self.integer = spec.schema.get("type") == "integer"
        self.control = self._control()
        ctx.tag(self.control, spec.path)
        self.error_text = None
        if not isinstance(self.control, ValidationElement):
            self.error_text = ErrorText(f"{ctx.testid}-{spec.path}-error")
        if spec.required and not isinstance(self.control, ui.select | ui.input_chips):
            # (a QSelect puts attributes on a plain div, where aria-required is not allowed; its label says " *")
            self.control.props["aria-required"] = "true"
        if spec.options.placeholder is not None:
            self.control.props["placeholder"] = spec.options.placeholder
        if ctx.read_only or spec.read_only:
            if isinstance(self.control, ui.switch):
                self.control.disable()
            else:
                self.control.props["readonly"] = True
        elif widget in SINGLE_LINE:
            self.control.on("keydown.enter", ctx.submit)
        self.set_raw(spec.schema.get("default"))
        self.control.on_value_change(self._edited)
        self._help(self.control)

    def _control(self) -> ValueElement[Any]:
        label, schema, widget = self.spec.shown_label, self.spec.schema, self.widget
        control: ValueElement[Any]
        if widget in ("input", "password"):
            secret = widget == "password"
            control = ui.input(label, password=secret, password_toggle_button=secret)
            if secret:
                control.props["autocomplete"] = "new-password"  # never the browser's saved login
        elif widget in ("textarea", "code", "json"):
            control = ui.textarea(label).props("autogrow")
            if widget != "textarea":
                control.classes("font-mono").props("spellcheck=false")
        elif widget == "number":
            step = 1 if self.integer else None
            control = ui.number(label, min=schema.get("minimum"), max=schema.get("maximum"), step=step)
        elif widget == "switch":
            control = ui.switch(label)
        elif widget == "select":
            choices = self._choices()
            control = ui.select(
                choices,
                label=label,
                multiple=self.multiple,
                with_input=len(choices) > SEARCHABLE_OVER,
                clearable=self.spec.nullable and not self.multiple,
            )
            if self.multiple:
                control.props("use-chips")
        elif widget == "chips":
            control = ui.input_chips(label, new_value_mode="add-unique")
        else:
            raise ValueError(f"field {self.spec.path!r}: no widget {widget!r}")
        return control.classes("w-full")

    def _choices(self) -> dict[Any, str]:
        choices = self.spec.options.choices
        if choices is not None:
            return {plain(value): text for value, text in (choices() if callable(choices) else choices).items()}
        schema = self.spec.schema
        if self.multiple:
            schema = unwrap(schema.get("items", {}), self.ctx.defs)[0]
        values = schema.get("enum") or ([schema["const"]] if "const" in schema else [])
        return {value: str(value) for value in values}

    def raw(self) -> Any:
        value = self.control.value
        if self.widget == "number":
            if value is None or value == "":
                return None
            return int(value) if self.integer and float(value).is_integer() else value
        if self.widget == "switch":
            return value
        if self.multiple or self.widget == "chips":
            return list(value or [])
        if self.widget == "select":
            return value
        return value or ""

    def set_raw(self, value: Any) -> None:
        value = plain(value)
        new: Any
        if self.widget == "json":
            if value is None or isinstance(value, str):
                new = value or ""
            else:
                new = json.dumps(to_jsonable_python(value), indent=2, ensure_ascii=False)
        elif self.widget == "number":
            new = None if value is None or value == "" else float(value) if isinstance(value, str) else value
        elif self.widget == "switch":
            new = None if value is None and self.spec.nullable else bool(value)
        elif self.widget == "chips":
            new = [str(plain(item)) for item in value or []]
        elif self.widget == "select":
            new = [plain(item) for item in value or []] if self.multiple else value
            self._offer(new if self.multiple else [new])
        else:
            new = "" if value is None else str(value)
        self.control.value = new

    def _offer(self, values: list[Any]) -> None:
        """Keep a value the choices lack (a deleted record, say) selectable instead of dropping it."""
        assert isinstance(self.control, ui.select)
        options = dict(self.control.options) if isinstance(self.control.options, dict) else {}
        missing = {value: str(value) for value in values if value is not None and value not in options}
        if missing:
            self.control.set_options({**options, **missing})

    def data(self, problems: list[Problem]) -> Any:
        value = self.raw()
        if self.widget == "json":
            return self._json(value, problems)
        if isinstance(value, list):
            return EMPTY if not value and self.spec.nullable else value
        return EMPTY if value is None or value == "" else value

    def _json(self, text: str, problems: list[Problem]) -> Any:
        if not text.strip():
            return EMPTY
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(self.spec.path, f"is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})")
            )
            return EMPTY
        if self.spec.schema.get("type") == "object" and not isinstance(value, dict):
            problems.append(Problem(self.spec.path, 'must be a JSON object, such as {"name": "value"}'))
            return EMPTY
        return value

    def show(self, rest: list[str], message: str) -> bool:
        text = f"{describe(rest)}: {message}" if rest else message
        if text not in self.messages:
            self.messages.append(text)
        if isinstance(self.control, ValidationElement):
            self.control.error = "; ".join(self.messages)
            self.control.props["aria-invalid"] = "true"  # Quasar shows the message but does not set it
            self.ctx.errored.append(self.control)
        elif self.error_text is not None:
            self.error_text.add(text)
        return True

    def clear(self) -> None:
        if not self.messages:
            return
        self.messages = []
        if isinstance(self.control, ValidationElement):
            self.control.error = None
            self.control.props.pop("aria-invalid", None)
        elif self.error_text is not None:
            self.error_text.clear()

    def _edited(self) -> None:
        self.clear()
        self.ctx.changed()


def widget_for(spec: FieldSpec, defs: Mapping[str, Any]) -> str:
    """Which control a property gets: FieldOptions first, then the schema's `ui` hint, then its type."""
    schema, options = spec.schema, spec.options
    if options.widget is not None:
        return options.widget
    hint = schema.get("ui")
    if isinstance(hint, str):
        return hint
    if options.choices is not None or "enum" in schema or "const" in schema:
        return "select"
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "password" or schema.get("writeOnly"):
            return "password"
        return "textarea" if schema.get("maxLength", 0) > LONG_TEXT else "input"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "switch"
    if kind == "array":
        items, _ = unwrap(schema.get("items", {}), defs)
        if items.get("type") == "object" and "properties" in items:
            return "list"
        return "select" if "enum" in items else "chips"
    if kind == "object":
        if "properties" in schema:
            return "group"
        values = schema.get("additionalProperties")
        if isinstance(values, Mapping) and unwrap(values, defs)[0].get("type") == "string":
            return "keyvalue"
    return "json"
