"""Browser tests: the real app in a subprocess, driven by Playwright with Debian's Chromium.

Fixtures (module scope, so sync Playwright's event loop does not outlive a module and
break later async tests):

- `live_app`: a `LiveApp` with `base_url`, the app's data dir and extra env; the app
  runs `main.py` on a free port with its own data dir (SQLite) and the `test` env.
- `browser`: one headless Chromium per module.
- `page`: a fresh browser context + page per test (own cookies, so own NiceGUI user);
  `other_page`: a second person's, beside it.
- `sign_up(page, email=..., password=..., workspace=...)`: the sign-up journey, returns
  the `Account` it created (email, password, tenant slug).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveApp:
    """A running CrewCanvas process."""

    base_url: str
    data_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_app(data_dir: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], LiveApp]:
    """Start `main.py` on a free port and wait until it serves; the caller stops it."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    # PYTEST_CURRENT_TEST would make NiceGUI's ui.run believe it runs inside a screen test.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            (
                "APP_",
                "DB_",
                "REDIS_",
                "MONGODB_",
                "SANDBOX_",
                "LLM_",
                "SECURITY_",
                "OIDC_",
                "AUTH_",
                "SMTP_",
                "PYTEST_",
                "NICEGUI_",
            )
        )
        and key not in {"DATABASE_URL", "MASTER_KEYS", "SECRET_KEY", "REDIS_URL", "MONGODB_URL"}
    }
    env.update(
        {
            "APP_ENV": "test",
            "APP_DATA_DIR": str(data_dir),
            "APP_PORT": str(port),
            "APP_BASE_URL": f"http://127.0.0.1:{port}",
            # Fast password hashing in the browser tests; Argon2 parameters are tested elsewhere.
            "AUTH_ARGON2_TIME_COST": "1",
            "AUTH_ARGON2_MEMORY_COST_KIB": "1024",
            "AUTH_ARGON2_PARALLELISM": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    log_path = data_dir / "app.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    app = LiveApp(base_url=f"http://127.0.0.1:{port}", data_dir=data_dir, log_path=log_path, env=env)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{app.log()[-4000:]}")
        try:
            # A static file, not `/`: building a page is not a readiness probe.
            if httpx.get(f"{app.base_url}/api/health", timeout=2).status_code == 200:
                return process, app
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_app(process)
    raise RuntimeError(f"the app did not answer within {STARTUP_TIMEOUT_S:.0f}s:\n{app.log()[-4000:]}")


def stop_app(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    process, app = start_app(tmp_path_factory.mktemp("app") / "data")
    try:
        yield app
    finally:
        stop_app(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make sysdeps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def person(browser: Browser) -> Iterator[Page]:
    """A page in a browser context of its own: own cookies, so its own NiceGUI user."""
    context = browser.new_context()
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from person(browser)


@pytest.fixture
def other_page(browser: Browser) -> Iterator[Page]:
    """A second person beside `page`."""
    yield from person(browser)


def connected(page: Page) -> None:
    """Wait until the page's NiceGUI socket has shaken hands: typing before that can be undone by the first sync."""
    page.wait_for_function("() => window.socket && window.socket.connected && window.did_handshake")


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    workspace: str
    tenant_slug: str


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def sign_up_in_browser(
    page: Page,
    base_url: str,
    *,
    email: str | None = None,
    password: str = "correct horse battery staple",
    workspace: str | None = None,
) -> Account:
    """The sign-up journey; ends signed in, on the page the app lands on."""
    email = email or f"{unique('user')}@example.com"
    workspace = workspace or unique("Team ")
    page.goto(f"{base_url}/signup")
    page.get_by_test_id("signup-email").fill(email)
    page.get_by_test_id("signup-password").fill(password)
    page.get_by_test_id("signup-workspace_name").fill(workspace)
    slug_box = page.get_by_test_id("signup-workspace_id")
    expect(slug_box).not_to_have_value("")  # suggested from the workspace name
    slug = slug_box.input_value()
    page.get_by_test_id("signup-submit").click()
    page.wait_for_url(lambda url: "/signup" not in url)
    expect(page.get_by_test_id("signed-in-as")).to_have_text(email)
    return Account(email=email, password=password, workspace=workspace, tenant_slug=slug)


@pytest.fixture
def sign_up(live_app: LiveApp) -> Callable[..., Account]:
    def run(page: Page, **kwargs: str) -> Account:
        return sign_up_in_browser(page, live_app.base_url, **kwargs)

    return run
