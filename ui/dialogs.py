"""Small dialogs shared by the pages."""

from __future__ import annotations

from nicegui import ui


async def confirm(question: str, *, detail: str = "", action: str = "Delete", testid: str = "confirm-delete") -> bool:
    """Ask before something that cannot be undone; True only when the user clicks `action`."""
    with ui.dialog() as dialog, ui.card():
        ui.label(question)
        if detail:
            ui.label(detail).classes("text-slate-600")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props('flat data-testid="confirm-cancel"')
            ui.button(action, color="negative", on_click=lambda: dialog.submit(True)).props(f'data-testid="{testid}"')
    answer = await dialog
    dialog.delete()
    return answer is True
