"""A `ModelForm` with the page's own checks and editors, for forms the model alone cannot describe.

    form = CheckedForm(ProviderDraft, checks=lambda values: [...], on_submit=save, testid="provider")
    form.attach("code", ErrorText("tool-code-error"))   # problems of `code` go under the page's own editor

`checks(values)` runs before the model validates and returns the problems that depend on
other fields or on the workspace (a base URL some kinds need, a limit above the operator's
maximum); they are shown together with the model's own, every one under its field. A
problem of an attached path (a field the page edits with its own control, e.g. CodeMirror
for code) is shown under that control instead of in the form's box.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from nicegui import ui
from pydantic import BaseModel

from core.errors import Problem
from ui.form_fields import describe
from ui.forms import ModelForm

M = TypeVar("M", bound=BaseModel)
Checks = Callable[[dict[str, Any]], list[Problem]]


class ProblemSlot(Protocol):
    """Where the problems of one field the page edits itself are shown."""

    def add(self, message: str) -> None: ...

    def clear(self) -> None: ...


class ControlSlot:  # `ui.form_fields.ErrorText` is the slot for a control without one (CodeMirror)
    """Problems in a Quasar control's own error slot (`ui.number`, `ui.input`)."""

    def __init__(self, control: ui.number | ui.input) -> None:
        self.control = control
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        if message not in self.messages:
            self.messages.append(message)
        self.control.error = "; ".join(self.messages)

    def clear(self) -> None:
        self.messages = []
        self.control.error = None


class CheckedForm(ModelForm[M]):
    """`ModelForm` plus page checks and page-made controls; see the module docstring."""

    def __init__(self, model: type[M], *, checks: Checks | None = None, **kwargs: Any) -> None:
        self._checks = checks
        self._slots: dict[str, ProblemSlot] = {}
        super().__init__(model, **kwargs)

    def attach(self, path: str, slot: ProblemSlot) -> None:
        """Show the problems of `path` (and below it) in `slot`."""
        self._slots[path] = slot

    def validate(self) -> M | None:
        extra = self._checks(self.values()) if self._checks is not None else []
        model = super().validate()  # clears, then shows the model's problems
        if extra:
            self.show_problems(extra)
            return None
        return model

    def show_problems(self, problems: Iterable[Problem], *, focus: bool = True) -> None:
        rest: list[Problem] = []
        for problem in problems:
            slot, below = self._slot_for(problem.field)
            if slot is None:
                rest.append(problem)
            else:
                slot.add(f"{describe(below)}: {problem.message}" if below else problem.message)
        super().show_problems(rest, focus=focus)

    def clear_problems(self) -> None:
        super().clear_problems()
        for slot in self._slots.values():
            slot.clear()

    def _slot_for(self, field: str) -> tuple[ProblemSlot | None, list[str]]:
        parts = [part for part in field.split(".") if part]
        for length in range(len(parts), 0, -1):
            slot = self._slots.get(".".join(parts[:length]))
            if slot is not None:
                return slot, parts[length:]
        return None, []


def problems_in(found: Mapping[str, str | None]) -> list[Problem]:
    """`{field: problem or None}` as a list of problems (None: that field is fine)."""
    return [Problem(field, message) for field, message in found.items() if message]
