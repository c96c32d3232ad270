"""Small dialogs shared by the pages: ask before something that cannot be undone.

Their controls carry test ids (also as markers, for the simulated user's `find(marker=...)`).
"""

from __future__ import annotations

from typing import TypeVar

from nicegui import ui

E = TypeVar("E", bound=ui.element)


async def confirm(question: str, *, detail: str = "", action: str = "Delete", testid: str = "confirm-delete") -> bool:
    """Ask before something that cannot be undone; True only when the user clicks `action`."""
    with ui.dialog() as dialog, _card(question):
        ui.label(question).classes("font-medium")
        if detail:
            ui.label(detail).classes("text-slate-600")
        with ui.row().classes("w-full justify-end"):
            _tag(ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat"), "confirm-cancel")
            _tag(ui.button(action, color="negative", on_click=lambda: dialog.submit(True)), testid)
    answer = await dialog
    dialog.delete()
    return answer is True


async def confirm_typed(
    question: str, *, expected: str, detail: str = "", action: str = "Delete", testid: str = "confirm-delete"
) -> bool:
    """Ask before destroying something big: `action` is enabled only once `expected` is typed exactly."""
    with ui.dialog() as dialog, _card(question).classes("min-w-96"):
        ui.label(question).classes("font-medium")
        if detail:
            ui.label(detail).classes("text-slate-600")
        typed = _tag(ui.input(f"Type '{expected}' to confirm").classes("w-full"), f"{testid}-typed")
        with ui.row().classes("w-full justify-end"):
            _tag(ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat"), "confirm-cancel")
            go = _tag(
                ui.button(action, color="negative", on_click=lambda: dialog.submit(typed.value == expected)), testid
            )
            go.bind_enabled_from(typed, "value", backward=lambda value: value == expected)
    typed.on("keydown.enter", lambda: dialog.submit(True) if typed.value == expected else None)
    answer = await dialog
    dialog.delete()
    return answer is True


def _card(question: str) -> ui.card:
    """The dialog's card, named by its question for screen readers."""
    card = ui.card().props("role=alertdialog")
    card.props["aria-label"] = question  # set directly: the question may hold quotes (an email, a name)
    return card


def _tag(element: E, testid: str) -> E:
    element.props["data-testid"] = testid
    element.mark(testid)
    return element
