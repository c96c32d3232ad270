"""CrewCanvas's look: brand colours with WCAG AA contrast, and light / dark / follow-the-browser.

Every colour below keeps 4.5:1 or more against what it sits on: white text on the primary
indigo (7.6:1), indigo links on white (7.6:1), the lighter indigo used for links and flat
buttons on the dark background (7.9:1 on #121212). Quasar's own default primary (#1976d2)
gave 4.6:1 and NiceGUI's (#5898d4) 3.06:1.

The choice between light, dark and automatic (the browser's `prefers-color-scheme`) is kept
in the browser's NiceGUI user storage; automatic is the default.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from nicegui import app, ui

Appearance = Literal["auto", "light", "dark"]
APPEARANCE_KEY = "appearance"
APPEARANCES: dict[Appearance, tuple[str, str]] = {
    "auto": ("Follow the browser", "brightness_auto"),
    "light": ("Light", "light_mode"),
    "dark": ("Dark", "dark_mode"),
}

BRAND = {
    "primary": "#4338ca",  # indigo 700
    "secondary": "#0f766e",  # teal 700
    "accent": "#6d28d9",  # violet 700
    "positive": "#15803d",  # green 700
    "negative": "#b91c1c",  # red 700
    "info": "#0369a1",  # sky 700
    "warning": "#b45309",  # amber 700
}

CSS = """
a.nicegui-link { color: var(--q-primary); }
.body--dark a.nicegui-link,
.body--dark .q-btn--flat.text-primary, .body--dark .q-btn--outline.text-primary,
.body--dark .text-primary { color: #a5b4fc !important; }
.body--dark .text-slate-500, .body--dark .text-slate-600, .body--dark .text-gray-500,
.body--dark .text-gray-600 { color: #cbd5e1 !important; }
.body--dark .bg-white { background: #1d1d1d !important; }
.cc-nav .q-item.cc-current { background: rgba(67, 56, 202, 0.12); color: #312e81; font-weight: 600; }
.body--dark .cc-nav .q-item.cc-current { background: rgba(165, 180, 252, 0.16); color: #e0e7ff; }
.cc-field-help { color: #475569; }
.body--dark .cc-field-help { color: #cbd5e1; }
.cc-full-screen .q-page { display: flex; flex-direction: column; }
.cc-full-screen .nicegui-content { flex: 1 1 0; min-height: 0; padding: 0; overflow: hidden; }
.cc-palette-item:hover, .cc-palette-item:focus-visible { background: rgba(67, 56, 202, 0.08); }
.body--dark .cc-palette-item:hover,
.body--dark .cc-palette-item:focus-visible { background: rgba(165, 180, 252, 0.14); }
"""


STYLES = Path(__file__).parent / "elements" / "dist" / "tailwind.css"
STYLES_URL = "/_crewcanvas/tailwind.css"

# What every process serving these pages passes to `ui.run` (the app, the canvas test app, the bench):
# Quasar's strings and <html lang> in English, ten seconds to reconnect, and no in-browser Tailwind
# compiler (the classes come prebuilt, see `serve_styles`).
RUN_OPTIONS: dict[str, Any] = {"language": "en-US", "reconnect_timeout": 10, "tailwind": False}


def serve_styles() -> None:
    """Serve the Tailwind utilities built by `make jsbuild` and link them from every page.

    NiceGUI's runtime Tailwind compiler rescans the document on every class change; built ahead of
    time (`ui/tailwind.css`), the CSS is one cached file and costs the browser nothing later. The
    address carries the file's hash, so a new build is never read from an old cache.
    """
    if not STYLES.is_file():
        raise RuntimeError(f"{STYLES} is missing: build the UI's assets with `make jsbuild`")
    version = hashlib.sha256(STYLES.read_bytes()).hexdigest()[:12]
    app.add_static_file(local_file=STYLES, url_path=STYLES_URL, max_cache_age=365 * 24 * 3600)
    ui.add_head_html(f'<link rel="stylesheet" href="{STYLES_URL}?v={version}">', shared=True)


def appearance() -> Appearance:
    """The look this browser chose (automatic unless it picked one)."""
    value = app.storage.user.get(APPEARANCE_KEY, "auto")
    return value if value in APPEARANCES else "auto"


def dark_value(choice: Appearance) -> bool | None:
    """What `ui.dark_mode` takes: None follows the browser."""
    return {"auto": None, "light": False, "dark": True}[choice]


def apply_theme() -> ui.dark_mode:
    """Colours and CSS for this page, and its dark mode element set to the browser's choice."""
    ui.colors(**BRAND)
    ui.add_css(CSS)
    return ui.dark_mode(dark_value(appearance()))


def appearance_menu(dark: ui.dark_mode) -> None:
    """An icon button in the header that picks light, dark or automatic."""

    def choose(choice: Appearance) -> None:
        app.storage.user[APPEARANCE_KEY] = choice
        dark.set_value(dark_value(choice))
        button.props(f"icon={APPEARANCES[choice][1]}")

    current = appearance()
    with (
        ui.button(icon=APPEARANCES[current][1]).props(
            'flat round color=white aria-label="Appearance: light, dark or follow the browser" data-testid="appearance"'
        ) as button,
        ui.menu().props('data-testid="appearance-menu"'),
    ):
        for choice, (label, icon) in APPEARANCES.items():
            item = ui.menu_item(on_click=lambda c=choice: choose(c)).props(f'data-testid="appearance-{choice}"')
            with item, ui.row().classes("items-center gap-2 no-wrap"):
                ui.icon(icon)
                ui.label(label)
