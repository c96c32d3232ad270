"""The tools page in a real browser: write a Python tool, save it, try it, and see every way it can misbehave.

Tools run in the app's real sandbox (bwrap on this machine). Limits are small so each
misbehaving run ends within a second or two.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import Account, LiveApp, connected

RUN_TIMEOUT_MS = 30_000

SHOUT = '''\
def run(text: str, times: int = 1) -> dict:
    """Shout `text` a few times."""
    return {"shout": " ".join([text.upper()] * times)}
'''

MISBEHAVING = {
    "sleeps": "import time\ndef run(text, times):\n    while True:\n        time.sleep(0.1)\n",
    "spins": "def run(text, times):\n    while True:\n        pass\n",
    "hoards": "def run(text, times):\n    hoard = bytearray(4 * 1024 ** 3)\n    return len(hoard)\n",
    "floods": (
        "import sys\n"
        "def run(text, times):\n"
        "    for _ in range(64):\n"
        "        sys.stdout.write('x' * 65536)\n"
        "    return 'done'\n"
    ),
    "raises": (
        "def helper(text):\n"
        "    raise ValueError(f'cannot shout {text!r}')\n"
        "def run(text, times):\n"
        "    return helper(text)\n"
    ),
}


def set_code(page: Page, editor: Locator, code: str) -> None:
    """Replace a CodeMirror editor's text (inserted as one text input, so no auto-indent)."""
    content = editor.locator(".cm-content")
    content.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)
    expect(content).to_contain_text(code.splitlines()[0])


def run_tool(page: Page) -> Locator:
    page.get_by_test_id("run-tool").click()
    reason = page.get_by_test_id("run-result").get_by_test_id("result-reason")
    expect(reason).to_be_visible(timeout=RUN_TIMEOUT_MS)
    return reason


@pytest.fixture
def tool_page(page: Page, live_app: LiveApp, sign_up: Callable[..., Account]) -> Page:
    """Signed up, on a saved tool `shout` whose limits are small."""
    sign_up(page)
    page.goto(f"{live_app.base_url}/tools")
    expect(page.get_by_test_id("sandbox-unavailable")).to_have_count(0)
    expect(page.get_by_test_id("unsafe-banner")).to_have_count(0)
    page.get_by_test_id("new-python-tool").click()
    page.wait_for_url(re.compile(r"/tools/new"))
    connected(page)
    # As on the saved tool's page below: the first updates after the handshake carry the form's
    # defaults (name `new_tool`) and overwrite what was typed before they arrived.
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("tool-name").fill("shout")
    set_code(page, page.get_by_test_id("tool-code"), SHOUT)
    page.get_by_test_id("tool-limits.wall_seconds").fill("5")
    page.get_by_test_id("tool-limits.cpu_seconds").fill("1")
    page.get_by_test_id("tool-limits.memory_bytes").fill("128")
    page.get_by_test_id("tool-limits.output_bytes").fill("64")
    page.get_by_test_id("tool-submit").click()
    page.wait_for_url(re.compile(r"/tools/[0-9a-f-]{36}$"))
    expect(page.get_by_test_id("page-title")).to_have_text("shout")  # the saved tool's own page has loaded
    connected(page)
    # The page's first updates after the handshake carry the fields' stored values: typing before they
    # arrive is overwritten (seen on an idle machine, where they came a moment after the handshake).
    page.wait_for_load_state("networkidle")
    return page


def test_a_user_writes_saves_and_tries_a_tool(tool_page: Page, live_app: LiveApp) -> None:
    page = tool_page
    expect(page.get_by_test_id("tool-name")).to_have_value("shout")
    reason = run_tool(page)
    expect(reason).to_have_text("ok")
    result = page.get_by_test_id("run-result")
    expect(result.get_by_test_id("result-output")).to_contain_text('"shout": "HELLO HELLO"')
    expect(result.get_by_test_id("result-timings")).to_have_text(
        re.compile(r"^wall \d+\.\d{3} s · in tool \d+\.\d{3} s · CPU \d+\.\d{3} s · backend bwrap$")
    )
    page.goto(f"{live_app.base_url}/tools")
    expect(page.get_by_test_id("tool-list")).to_contain_text("shout")


@pytest.mark.parametrize(
    ("behaviour", "reason", "explained"),
    [
        ("sleeps", "timeout", "wall-clock limit of 5 s exceeded"),
        ("spins", "timeout", "CPU time limit of 1 s exceeded"),
        ("hoards", "memory", "memory limit of 128 MiB"),
        ("floods", "output_limit", "more than 65536 bytes of output"),
        ("raises", "crashed", "ValueError: cannot shout 'hello'"),
    ],
)
def test_a_misbehaving_tool_shows_why_it_was_stopped(
    tool_page: Page, behaviour: str, reason: str, explained: str
) -> None:
    page = tool_page
    set_code(page, page.get_by_test_id("tool-code"), MISBEHAVING[behaviour])
    shown = run_tool(page)
    expect(shown).to_have_text(reason)
    result = page.get_by_test_id("run-result")
    expect(result.get_by_test_id("result-error")).to_contain_text(explained)
    expect(result.get_by_test_id("result-timings")).to_contain_text("backend bwrap")
    expect(result.get_by_test_id("result-output")).to_have_count(0)
    if reason == "crashed":  # a readable traceback that points into the tool's own code
        error = result.get_by_test_id("result-error")
        expect(error).to_contain_text("Traceback")
        expect(error).to_contain_text("in helper")
    page.get_by_test_id("run-tool").click()  # the page stays usable after a bad run
    expect(result.get_by_test_id("result-reason")).to_have_text(reason, timeout=RUN_TIMEOUT_MS)


def test_a_control_character_in_the_editor_is_named_not_a_crash(tool_page: Page) -> None:
    """Text rules apply to the editor too: the save is refused with the field named, and the page stays usable."""
    page = tool_page
    page.get_by_test_id("tool-description").fill("shouts \x07loud")
    page.get_by_test_id("tool-description").press("Tab")  # leave the field, as a person would before saving
    page.get_by_test_id("tool-submit").click()
    # said under the description itself, not in a toast
    expect(page.get_by_text(re.compile(r"contains a control character \(U\+0007\)"))).to_be_visible()
    page.get_by_test_id("tool-description").fill("shouts loud")
    page.get_by_test_id("tool-submit").click()
    expect(page.get_by_text("Saved tool 'shout'")).to_be_visible()
