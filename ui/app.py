"""Register every page of the UI."""

from __future__ import annotations

from core.services import Services
from ui.pages import home


def install_ui(services: Services) -> None:
    home.register(services)
