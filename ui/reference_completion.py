"""As-you-type completion of references in the node properties' template and CEL fields.

Typing `{{` (and the start of a name) at the end of a template field opens a list of what can
be referred to there: the flow's inputs (`inputs.topic`) and the outputs of the nodes upstream
(`nodes.write.output`); picking one completes the reference to `{{ nodes.write.output }}`. In a
CEL field, typing `inputs` or `nodes` (and a dot and more) does the same without the braces.
The list narrows as the person types and closes when nothing matches, on Escape, or when the
reference is complete. The field keeps the focus while it is open, so typing goes on
undisturbed; the *Insert* buttons under the field offer the same references to the keyboard.

It reads the end of the text: a reference typed in the middle of a text is not completed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from nicegui import events, ui
from nicegui.elements.mixins.value_element import ValueElement

from ui.records import tag

TEMPLATE_TAIL = re.compile(r"\{\{\s*([\w.]*)$")
CEL_TAIL = re.compile(r"(?:^|[^\w.])((?:inputs|nodes)(?:\.[\w.]*)?)$")
MAX_SHOWN = 12


class ReferenceCompletion:
    """A list of references under `control` that opens as a reference is typed at the end of its text."""

    def __init__(self, control: ValueElement[str], names: Sequence[str], *, cel: bool, testid: str) -> None:
        self.control = control
        self.names = list(names)
        self.cel = cel
        self.testid = testid
        self.menu = tag(ui.menu(), f"{testid}-completion")
        # Anchored under the field, opened only from here, and never taking the focus from the field.
        self.menu.props(f'no-focus no-parent-event target="#{control.html_id}" anchor="bottom left" self="top left"')
        control.on_value_change(self._typed)
        control.on("keydown.escape", lambda: self.menu.close())

    def matches(self, text: str) -> tuple[re.Match[str] | None, list[str]]:
        """The reference being typed at the end of `text`, and the names that would complete it."""
        found = (CEL_TAIL if self.cel else TEMPLATE_TAIL).search(text)
        if found is None:
            return None, []
        typed = found.group(1)
        return found, [name for name in self.names if name.startswith(typed) and name != typed]

    def _typed(self, event: events.ValueChangeEventArguments[str]) -> None:
        found, choices = self.matches(str(event.value or ""))
        if found is None or not choices:
            self.menu.close()
            return
        self.menu.clear()
        with self.menu, ui.list().props("dense").classes("min-w-48"):
            for name in choices[:MAX_SHOWN]:
                shown = name if self.cel else f"{{{{ {name} }}}}"
                item = ui.item(shown, on_click=lambda _, name=name: self.pick(name)).classes("font-mono text-sm")
                tag(item, f"{self.testid}-complete-{name}")
        self.menu.open()

    def pick(self, name: str) -> None:
        """Complete the reference being typed to `name`."""
        text = str(self.control.value or "")
        found, _ = self.matches(text)
        if found is None:
            return
        start, reference = (found.start(1), name) if self.cel else (found.start(), f"{{{{ {name} }}}}")
        completed = text[:start] + reference
        self.menu.close()
        self.control.set_value(completed)
