"""One form for every editor: a NiceGUI form rendered from a pydantic model's JSON schema.

    form = ModelForm(AgentSpec, value=agent, on_submit=save, testid="agent",
                     fields={"provider_id": FieldOptions(choices=provider_names)})

Each property gets a control (`ui.form_fields.widget_for` says which): strings an input
(a textarea past a `Line`'s length, a password field for secrets), numbers `ui.number`,
booleans a switch, enums and `choices` a select, arrays of strings chips, arrays of objects
repeated groups, nested objects a fieldset, string maps rows of name + value, anything else
JSON. Submitting validates with the model itself and shows every problem under its field at
once; what fits no field, and any other `CoreError` of `on_submit`, goes to the box at the
top of the form (role=alert), never to a toast. Test ids: `<testid>-<dotted field>` on each
control, `<testid>-<field>-error` under groups and switches, `<testid>-error` for the box,
`<testid>-submit`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import suppress
from typing import Any, Generic, TypeVar

from nicegui import background_tasks, ui
from nicegui.elements.mixins.text_element import TextElement
from pydantic import BaseModel, ValidationError

from core.errors import CoreError, InvalidInput, Problem, problems_of
from executor.errors import ExecutorError
from ui.form_fields import (
    EMPTY,
    MAX_DEPTH,
    ErrorText,
    FieldOptions,
    FieldSpec,
    FormContext,
    FormField,
    HiddenField,
    ValueField,
    describe,
    label_of,
    plain,
    unwrap,
    widget_for,
)

__all__ = ["FieldOptions", "ModelForm"]

M = TypeVar("M", bound=BaseModel)
FIELDSET = "w-full flex flex-col gap-2 border border-slate-300 rounded-md px-3 pb-3"
LEGEND = "px-1 text-sm font-medium"


def build_field(
    ctx: FormContext, name: str, path: str, node: Mapping[str, Any], required: bool, depth: int
) -> FormField:
    """The field for one property of a schema."""
    options = ctx.options_for(path)
    schema, nullable = unwrap(node, ctx.defs)
    label = options.label or label_of(name, node.get("title"))
    spec = FieldSpec(name, path, schema, label, required and not nullable, nullable, options)
    if options.hidden:
        return HiddenField(spec, ctx)
    widget = widget_for(spec, ctx.defs)
    if widget in ("group", "list", "keyvalue") and depth >= MAX_DEPTH:
        widget = "json"
    if widget == "group":
        return GroupField(spec, ctx, depth)
    if widget == "list":
        return ListField(spec, ctx, depth)
    if widget == "keyvalue":
        return KeyValueField(spec, ctx)
    return ValueField(spec, ctx, widget)


def _blank(value: Any) -> bool:
    return value is None or value is False or value == [] or value == {}


class GroupField(FormField):
    """A nested object: a fieldset of its fields. Unframed, the form's root (its problems go to the form)."""

    def __init__(self, spec: FieldSpec, ctx: FormContext, depth: int, *, framed: bool = True) -> None:
        super().__init__(spec, ctx)
        self.children: dict[str, FormField] = {}
        self.error_text: ErrorText | None = None
        required = set(spec.schema.get("required", []))
        self.element = ui.element("fieldset").classes(FIELDSET) if framed else ui.column().classes("w-full gap-3 p-0")
        with self.element:
            if framed:
                ctx.tag(self.element, spec.path)
                TextElement(tag="legend", text=spec.shown_label).classes(LEGEND)
                self._help(self.element)
                self.error_text = ErrorText(f"{ctx.testid}-{spec.path}-error")
            for name, node in spec.schema.get("properties", {}).items():
                path = f"{spec.path}.{name}" if spec.path else name
                if path not in ctx.exclude:
                    self.children[name] = build_field(ctx, name, path, node, name in required, depth + 1)

    def raw(self) -> dict[str, Any]:
        return {name: child.raw() for name, child in self.children.items()}

    def set_raw(self, value: Any) -> None:
        value = plain(value)
        if not isinstance(value, Mapping):
            return  # None: keep the defaults
        for name, member in value.items():
            if name in self.children:
                self.children[name].set_raw(member)

    def data(self, problems: list[Problem]) -> Any:
        out: dict[str, Any] = {}
        for name, child in self.children.items():
            value = child.data(problems)
            if value is EMPTY:
                if child.spec.nullable:
                    out[name] = None
                continue  # the model's default applies (or it says the field is required)
            out[name] = value
        if self.spec.nullable and all(_blank(value) for value in out.values()):
            return EMPTY
        return out

    def show(self, rest: list[str], message: str) -> bool:
        child = self.children.get(rest[0]) if rest else None
        if child is not None and child.show(rest[1:], message):
            return True
        if self.error_text is None:
            return False
        self.error_text.add(f"{describe(rest)}: {message}" if rest else message)
        return True

    def clear(self) -> None:
        if self.error_text is not None:
            self.error_text.clear()
        for child in self.children.values():
            child.clear()


class _Rows(FormField):
    """A fieldset of rows with Add and Remove (the rows are rebuilt from the raw values on each)."""

    def __init__(self, spec: FieldSpec, ctx: FormContext) -> None:
        super().__init__(spec, ctx)
        self.locked = ctx.read_only or spec.read_only
        with ui.element("fieldset").classes(FIELDSET) as self.element:
            ctx.tag(self.element, spec.path)
            TextElement(tag="legend", text=spec.shown_label).classes(LEGEND)
            self._help(self.element)
            self.error_text = ErrorText(f"{ctx.testid}-{spec.path}-error")
            self.box = ui.column().classes("w-full gap-2 p-0")
            self.add_button: ui.button | None = None
            if not self.locked:
                self.add_button = ui.button("Add", icon="add", on_click=self._add).props("flat no-caps")
                self.add_button.props["aria-label"] = f"Add to {spec.label}"
                ctx.tag(self.add_button, f"{spec.path}-add")

    def _remove_button(self, index: int, what: str) -> None:
        if self.locked:
            return
        button = ui.button(icon="delete", on_click=lambda: self._remove(index)).props("flat round")
        button.props["aria-label"] = f"Remove {what}"
        self.ctx.tag(button, f"{self.spec.path}.{index}-remove")

    @abstractmethod
    def _add(self) -> None:
        """Append an empty row (lists: an item; maps: a name and value)."""

    @abstractmethod
    def _remove(self, index: int) -> None:
        """Drop row `index`."""

    def _edited(self) -> None:
        self.clear()
        self.ctx.changed()


class ListField(_Rows):
    """An array of objects: one fieldset per item."""

    def __init__(self, spec: FieldSpec, ctx: FormContext, depth: int) -> None:
        super().__init__(spec, ctx)
        self.depth = depth
        self.item_schema = unwrap(spec.schema.get("items", {}), ctx.defs)[0]
        self.items: list[GroupField] = []
        self.set_raw(spec.schema.get("default"))

    def _render(self, values: list[Any]) -> None:
        self.box.clear()
        self.items = []
        with self.box:
            for index, value in enumerate(values):
                path = f"{self.spec.path}.{index}"
                label = f"{self.spec.label}: item {index + 1}"
                item = FieldSpec(str(index), path, self.item_schema, label, False, False, self.ctx.options_for(path))
                with ui.row().classes("w-full items-start no-wrap gap-1"):
                    group = GroupField(item, self.ctx, self.depth + 1)
                    group.set_raw(value)
                    self._remove_button(index, label)
                self.items.append(group)
        most = self.spec.schema.get("maxItems")
        if self.add_button is not None:
            self.add_button.set_enabled(most is None or len(values) < most)

    def raw(self) -> list[dict[str, Any]]:
        return [item.raw() for item in self.items]

    def set_raw(self, value: Any) -> None:
        self._render(list(value or []))

    def _add(self) -> None:
        self._render([*self.raw(), {}])
        self._edited()

    def _remove(self, index: int) -> None:
        values = self.raw()
        del values[index]
        self._render(values)
        self._edited()

    def data(self, problems: list[Problem]) -> Any:
        values = [item.data(problems) for item in self.items]
        return EMPTY if not values and self.spec.nullable else values

    def show(self, rest: list[str], message: str) -> bool:
        if rest and rest[0].isdigit() and int(rest[0]) < len(self.items):
            return self.items[int(rest[0])].show(rest[1:], message)
        self.error_text.add(f"{describe(rest)}: {message}" if rest else message)
        return True

    def clear(self) -> None:
        self.error_text.clear()
        for item in self.items:
            item.clear()


class KeyValueField(_Rows):
    """An object of strings (`dict[str, str]`): rows of name + value."""

    def __init__(self, spec: FieldSpec, ctx: FormContext) -> None:
        super().__init__(spec, ctx)
        self.rows: list[tuple[ui.input, ui.input]] = []
        self.flagged: list[ui.input] = []
        self.set_raw(spec.schema.get("default"))

    def _pairs(self) -> list[tuple[str, str]]:
        return [(key.value or "", value.value or "") for key, value in self.rows]

    def _render(self, pairs: list[tuple[str, str]]) -> None:
        self.box.clear()
        self.rows = []
        with self.box:
            for index, (key, value) in enumerate(pairs):
                what = f"{self.spec.label} {index + 1}"
                with ui.row().classes("w-full items-start no-wrap gap-2"):
                    name = ui.input("Name", value=key).classes("w-1/3")
                    text = ui.input("Value", value=value).classes("grow")
                    for control, part in ((name, "key"), (text, "value")):
                        control.props["aria-label"] = f"{what} {'name' if part == 'key' else 'value'}"
                        self.ctx.tag(control, f"{self.spec.path}.{index}.{part}")
                        if self.locked:
                            control.props["readonly"] = True
                        else:
                            control.on("keydown.enter", self.ctx.submit)
                        control.on_value_change(self._edited)
                    self._remove_button(index, what)
                self.rows.append((name, text))

    def raw(self) -> dict[str, str]:
        return {key: value for key, value in self._pairs() if key}

    def set_raw(self, value: Any) -> None:
        value = plain(value)
        items = value.items() if isinstance(value, Mapping) else []
        self._render([(str(key), "" if member is None else str(plain(member))) for key, member in items])

    def _add(self) -> None:
        self._render([*self._pairs(), ("", "")])
        self._edited()

    def _remove(self, index: int) -> None:
        pairs = self._pairs()
        del pairs[index]
        self._render(pairs)
        self._edited()

    def data(self, problems: list[Problem]) -> Any:
        out: dict[str, str] = {}
        for index, (key, value) in enumerate(self._pairs()):
            if not key and not value:
                continue
            if not key:
                problems.append(
                    Problem(self.spec.path, f"row {index + 1} has a value but no name; name it or remove it")
                )
            elif key in out:
                problems.append(Problem(self.spec.path, f"'{key}' is named twice; keep one of them"))
            else:
                out[key] = value
        return EMPTY if not out and self.spec.nullable else out

    def show(self, rest: list[str], message: str) -> bool:
        for key, value in self.rows:
            if rest and key.value == rest[0]:
                text = f"{describe(rest[1:])}: {message}" if rest[1:] else message
                value.error = f"{value.error}; {text}" if value.error else text
                value.props["aria-invalid"] = "true"
                self.flagged.append(value)
                self.ctx.errored.append(value)
                return True
        self.error_text.add(f"{'.'.join(rest)}: {message}" if rest else message)
        return True

    def clear(self) -> None:
        self.error_text.clear()
        for control in self.flagged:
            control.error = None
            control.props.pop("aria-invalid", None)
        self.flagged = []


class ModelForm(Generic[M]):
    """A form for `model`, built from its JSON schema; submitting validates with the model and calls `on_submit`."""

    def __init__(
        self,
        model: type[M],
        *,
        value: M | Mapping[str, Any] | None = None,
        on_submit: Callable[[M], Awaitable[Any]] | None = None,
        submit_label: str = "Save",
        read_only: bool = False,
        fields: Mapping[str, FieldOptions] | None = None,
        exclude: Iterable[str] = (),
        testid: str = "form",
    ) -> None:
        self.model = model
        self.read_only = read_only
        self._on_submit = on_submit
        self._callbacks: list[Callable[[dict[str, Any]], Any]] = []
        self._busy = False
        self._quiet = 0
        schema = model.model_json_schema()
        self._ctx = FormContext(
            testid=testid,
            defs=schema.get("$defs", {}),
            options=dict(fields or {}),
            exclude=frozenset(exclude),
            read_only=read_only,
            submit=self.submit,
            changed=self._changed,
        )
        with ui.column().classes("w-full gap-3") as self.element:
            self.element.props["data-testid"] = testid
            self.element.mark(testid)
            self._box = ErrorText(f"{testid}-error", banner=True)
            root = FieldSpec("", "", schema, label_of("", schema.get("title")), False, False, FieldOptions())
            self._root = GroupField(root, self._ctx, 0, framed=False)
            self.submit_button: ui.button | None = None
            if not read_only:
                self.submit_button = ui.button(submit_label, on_click=self.submit)
                self._ctx.tag(self.submit_button, "submit")
        if value is not None:
            self._quiet += 1
            try:
                self._root.set_raw(value)
            finally:
                self._quiet -= 1

    def values(self) -> dict[str, Any]:
        """The values as typed, before validation (JSON fields as text; empty inputs as "" or None)."""
        return self._root.raw()

    def set_values(self, value: M | Mapping[str, Any]) -> None:
        """Put `value` (a model, or a mapping of some fields) into the form; other fields keep theirs."""
        self._quiet += 1
        try:
            self._root.set_raw(value)
        finally:
            self._quiet -= 1
        self._changed()

    def data(self) -> tuple[dict[str, Any], list[Problem]]:
        """The values as the model would get them (JSON fields parsed, empty ones None), not validated, and
        the problems found on the way (bad JSON): what an editor that stores as you type keeps."""
        problems: list[Problem] = []
        data = self._root.data(problems)
        return (data if isinstance(data, dict) else {}), problems

    def validate(self) -> M | None:
        """The model made from the form, or None after showing every problem under its field."""
        self.clear_problems()
        problems: list[Problem] = []
        data = self._root.data(problems)  # problems pydantic cannot see (bad JSON, unnamed rows)
        try:
            model = self.model.model_validate(data)
        except ValidationError as exc:
            known = [p.field for p in problems]
            problems += [p for p in problems_of(exc) if not any(_under(p.field, path) for path in known)]
            model = None
        if problems:
            self.show_problems(problems)
            return None
        return model

    async def submit(self) -> None:
        """Validate, then hand the model to `on_submit` (once at a time); show what it refuses."""
        if self._busy or self.read_only:
            return
        model = self.validate()
        if model is None or self._on_submit is None:
            return
        self._busy = True
        if self.submit_button is not None:
            self.submit_button.disable()
        try:
            await self._on_submit(model)
        except InvalidInput as exc:
            self.show_problems(exc.problems or [Problem("", str(exc))])
        except (CoreError, ExecutorError) as exc:  # e.g. an invalid flow: said in the box
            self._box.add(str(exc))
        finally:
            self._busy = False
            if self.submit_button is not None:
                self.submit_button.enable()

    def show_problems(self, problems: Iterable[Problem], *, focus: bool = True) -> None:
        """Show each problem under its field (dotted: `models.3`, `inputs.topic`); the rest in the form's box.
        The first invalid control gets the focus unless `focus` is False (problems found while typing)."""
        self._ctx.errored.clear()
        for problem in problems:
            parts = [part for part in problem.field.split(".") if part]
            if not (parts and self._root.show(parts, problem.message)):
                unnamed = problem.field in ("", "input")  # `problems_from` names a model-wide problem "input"
                self._box.add(problem.message if unnamed else f"{problem.field}: {problem.message}")
        if self._ctx.errored and focus:
            with suppress(RuntimeError):  # no client (e.g. called outside a page)
                self._ctx.errored[0].run_method("focus")

    def clear_problems(self) -> None:
        self._box.clear()
        self._root.clear()

    def on_change(self, callback: Callable[[dict[str, Any]], Any]) -> None:
        """Call `callback(values())` whenever a field changes (it may be async)."""
        self._callbacks.append(callback)

    def _changed(self) -> None:
        if self._quiet:
            return
        values = self.values()
        for callback in self._callbacks:
            result = callback(values)
            if isinstance(result, Awaitable):
                background_tasks.create(_awaited(result), name="form on_change")


async def _awaited(result: Awaitable[Any]) -> None:
    await result


def _under(field: str, path: str) -> bool:
    return field == path or field.startswith(path + ".")
