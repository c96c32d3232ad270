"""The shell in a real browser: navigation, dark mode, and accessibility and style checks of every page.

The accessibility check runs axe-core (npm, pinned in package-lock.json, installed by
`make jsdeps`; its own bundled `axe.min.js` is injected from node_modules, nothing is
fetched) on every page a member can open, signed out and signed in, and fails on any
serious or critical violation, naming the rule, the page and the elements. The same visits check
that every class on the page has CSS (the Tailwind utilities are compiled ahead of time, see
tests/e2e/styles.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import ROOT, Account, LiveApp
from tests.e2e.styles import unstyled_classes

pytestmark = pytest.mark.e2e

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}

SIGNED_OUT_PAGES = ["/", "/login", "/signup", "/no/such/page"]
WORKSPACE_PAGES = [
    "/flows",
    "/runs",
    "/inbox",
    "/crews",
    "/crews/new",
    "/agents",
    "/agents/new",
    "/tasks",
    "/tasks/new",
    "/tools",
    "/tools/new?kind=python",
    "/providers",
    "/members",
    "/api-keys",
    "/workspaces",
    "/",
    "/no/such/page",
]


def settle(page: Page) -> None:
    """Wait until NiceGUI has rendered the page (its heading is there) and the network is quiet."""
    expect(page.get_by_test_id("page-title").first).to_be_visible()
    page.wait_for_load_state("networkidle")


def violations(page: Page) -> list[dict[str, Any]]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make jsdeps` (npm ci)")
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' ' + n.html.slice(0, 160)),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in BLOCKING]


def check_pages(page: Page, base_url: str, paths: list[str]) -> list[str]:
    problems: list[str] = []
    for path in paths:
        page.goto(f"{base_url}{path}")
        settle(page)
        for violation in violations(page):
            problems.append(
                f"{path}: {violation['impact']} {violation['id']} ({violation['help']}) at {violation['targets']}"
            )
        if missing := unstyled_classes(page):
            problems.append(f"{path}: classes with no CSS (missing from ui/tailwind.css's sources?): {missing}")
    return problems


def record_pages(base_url: str, page: Page) -> list[str]:
    """The editor pages of the example records every new workspace has, found by following the lists' links."""
    paths: list[str] = []
    for listing, prefix in (("/crews", "/crews/"), ("/agents", "/agents/"), ("/tasks", "/tasks/")):
        page.goto(f"{base_url}{listing}")
        settle(page)
        links = page.locator(f"a[href^='{prefix}']").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        record = next((href for href in links if href and href != f"{prefix}new"), None)
        assert record is not None, f"no record link on {listing}"
        paths.append(record)
    return paths


def test_every_page_passes_axe_and_has_css_for_every_class(
    live_app: LiveApp, browser: Browser, page: Page, sign_up: Callable[..., Account]
) -> None:
    visitor = browser.new_context()
    try:
        problems = check_pages(visitor.new_page(), live_app.base_url, SIGNED_OUT_PAGES)
    finally:
        visitor.close()
    sign_up(page)
    problems += check_pages(page, live_app.base_url, WORKSPACE_PAGES)
    problems += check_pages(page, live_app.base_url, record_pages(live_app.base_url, page))
    assert not problems, "accessibility violations or unstyled classes:\n" + "\n".join(problems)


def test_the_navigation_highlights_the_current_page(
    live_app: LiveApp, page: Page, sign_up: Callable[..., Account]
) -> None:
    sign_up(page)
    for target in ("/flows", "/crews", "/tools", "/members"):
        page.goto(f"{live_app.base_url}{target}")
        settle(page)
        current = page.locator('[data-testid="nav"] [aria-current="page"]')
        expect(current).to_have_count(1)
        expect(current).to_have_attribute("href", target)
    # A record's page belongs to its list.
    page.goto(f"{live_app.base_url}/agents/new")
    settle(page)
    expect(page.locator('[data-testid="nav"] [aria-current="page"]')).to_have_attribute("href", "/agents")
    # The entries lead where they say.
    page.get_by_test_id("nav-runs").click()
    page.wait_for_url(re.compile(r".*/runs$"))
    expect(page.get_by_test_id("nav-runs")).to_have_attribute("aria-current", "page")


def body_is_dark(page: Page) -> bool:
    return bool(page.evaluate("document.body.classList.contains('body--dark')"))


def test_dark_mode_follows_the_browser_and_the_toggle(live_app: LiveApp, browser: Browser) -> None:
    for scheme, dark in (("dark", True), ("light", False)):
        context = browser.new_context(color_scheme=scheme)
        try:
            page = context.new_page()
            page.goto(f"{live_app.base_url}/login")
            settle(page)
            expect(page.locator("body")).to_have_class(re.compile("body--dark" if dark else "body--light"))
        finally:
            context.close()
    # The toggle wins over the browser's preference, and is remembered on the next page.
    context = browser.new_context(color_scheme="light")
    try:
        page = context.new_page()
        page.goto(f"{live_app.base_url}/login")
        settle(page)
        assert not body_is_dark(page)
        page.get_by_test_id("appearance").click()
        page.get_by_test_id("appearance-dark").click()
        expect(page.locator("body")).to_have_class(re.compile("body--dark"))
        page.goto(f"{live_app.base_url}/signup")
        settle(page)
        expect(page.locator("body")).to_have_class(re.compile("body--dark"))
        page.get_by_test_id("appearance").click()
        page.get_by_test_id("appearance-auto").click()
        expect(page.locator("body")).to_have_class(re.compile("body--light"))
    finally:
        context.close()
