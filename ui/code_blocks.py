"""Read-only code on a page (JSON of inputs and outputs, YAML exports), with a copy button that says what it copies.

NiceGUI's `ui.code` has an icon-only copy button, which a screen reader announces as a bare
"button" (axe: button-name), and a scroller a keyboard cannot reach: every block here names both after
what it shows and makes the scroller focusable.

    json_block(record.outputs, label="outputs").classes("w-full")
"""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def code_block(text: str, *, label: str, language: str = "json") -> ui.code:
    """`text` as a code block whose copy button is named "Copy the <label>"."""
    code = ui.code(text, language=language)
    code.copy_button.props["aria-label"] = f"Copy the {label}"
    # Long lines scroll sideways: the scroller takes the focus so a keyboard can scroll it (axe:
    # scrollable-region-focusable), and says what it holds.
    code.markdown.props["tabindex"] = "0"
    code.markdown.props["role"] = "region"
    code.markdown.props["aria-label"] = label[0].upper() + label[1:]
    return code


def json_block(value: Any, *, label: str) -> ui.code:
    """`value` as indented JSON (see `code_block`)."""
    return code_block(pretty(value), label=label)
