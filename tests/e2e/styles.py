"""Is every class on a page styled? The check behind the prebuilt Tailwind CSS (ui/tailwind.css).

The pages' Tailwind utilities are compiled ahead of time from the classes ui/ spells out; a class
put together at run time (an f-string, a colour name NiceGUI turns into `bg-...`) would reach the
page with no CSS and nothing else would notice. `unstyled_classes` lists the classes of the page's
elements that no rule of any style sheet (layers, media queries and imports included) names,
leaving out the markers Quasar, CodeMirror, Vue Flow, NiceGUI and our own elements set for their
scripts and tests.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page

# Classes set as markers, never styled by a rule of their own (Tailwind's utilities have none of these shapes).
MARKERS = re.compile(
    r"^(q-|cm-|ͼ|nicegui-|vue-flow__|cc-)"
    r"|^(no-touch|notranslate|nodrag|nopan|nowheel|zoomable|pannable|draggable|selectable|connectable\w*"
    r"|connectionindicator|source|target|selected|animated|dragging|inactive)$"
)

UNSTYLED = r"""() => {
    const styled = new Set();
    const visit = (rules) => {
        for (const rule of rules) {
            if (rule.selectorText) {
                for (const match of rule.selectorText.matchAll(/\.((?:\\.|[\w-])+)/g)) {
                    styled.add(match[1].replace(/\\(.)/g, '$1'));
                }
            }
            if (rule.styleSheet) visit(rule.styleSheet.cssRules);
            if (rule.cssRules) visit(rule.cssRules);
        }
    };
    for (const sheet of document.styleSheets) visit(sheet.cssRules);
    const used = new Set();
    for (const element of document.querySelectorAll('[class]')) {
        for (const name of element.classList) used.add(name);
    }
    return [...used].filter((name) => !styled.has(name)).sort();
}"""


def unstyled_classes(page: Page) -> list[str]:
    """The page's classes that no style sheet has a rule for, markers left out."""
    found: list[str] = page.evaluate(UNSTYLED)
    return [name for name in found if not MARKERS.match(name)]
