"""A code editor (NiceGUI's CodeMirror) that screen readers can name and that keeps AA contrast.

CodeMirror's default theme colours some tokens below 4.5:1, its editable area has no
accessible name, and its scroller cannot take focus; `code_editor` picks the VS Code themes
(light or dark, following the page's appearance) and `LABEL_SCRIPT` names each editor's
content after the `aria-label` given here, once CodeMirror has drawn it.
"""

from __future__ import annotations

import json

from nicegui import ui
from nicegui.elements.codemirror import CodeMirror

from ui.theme import appearance

LIGHT_THEME = "vscodeLight"
DARK_THEME = "vscodeDark"

# Runs in the browser: give every CodeMirror content area the name of its editor, and make its
# scroller focusable for keyboard users (axe: aria-input-field-name, scrollable-region-focusable).
LABEL_SCRIPT = """
<script>
(() => {
  const name = () => document.querySelectorAll('[data-code-label]').forEach((editor) => {
    const content = editor.querySelector('.cm-content');
    if (content && !content.getAttribute('aria-label')) {
      content.setAttribute('aria-label', editor.getAttribute('data-code-label'));
    }
    const scroller = editor.querySelector('.cm-scroller');
    if (scroller && scroller.getAttribute('tabindex') !== '0') scroller.setAttribute('tabindex', '0');
  });
  new MutationObserver(name).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
"""


def code_editor(value: str, *, language: str, label: str) -> CodeMirror:
    """A CodeMirror editor named `label` for assistive technology, in the theme of the page's appearance."""
    if not getattr(ui.context.client, "_code_labels", False):
        ui.add_body_html(LABEL_SCRIPT)
        ui.context.client._code_labels = True  # type: ignore[attr-defined]  # once per page
    theme = DARK_THEME if appearance() == "dark" else LIGHT_THEME
    editor = ui.codemirror(value, language=language, theme=theme)  # type: ignore[arg-type]  # both are in its list
    editor.props(f"data-code-label={json.dumps(label)}")
    return editor
