"""Home: what this installation runs on."""

from __future__ import annotations

from nicegui import ui

from core.services import Services
from ui.layout import frame


def register(services: Services) -> None:
    @ui.page("/")
    async def home() -> None:
        with frame("Home"):
            ui.label("Design, run and watch multi-agent AI workflows.").classes("text-slate-600")
            report = await services.health()
            with ui.card().classes("w-full"):
                ui.label("Backends").classes("text-lg font-medium")
                with ui.grid(columns=2).classes("gap-x-8").props('data-testid="backends"'):
                    for concern, backend in report["backends"].items():
                        ui.label(concern.replace("_", " "))
                        ui.label(backend).classes("font-mono")
                ui.label(f"Status: {report['status']}").classes("mt-2").props('data-testid="status"')
