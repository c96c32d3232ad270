"""The providers page in a real browser: add an OpenAI-compatible provider, test it, keys only masked.

The app runs as a subprocess in the `test` environment, where tenants may not reach private
addresses; this module's app is started with `LLM_ALLOW_PRIVATE_ENDPOINTS=true`, as an
operator would set it, so a provider can point at the scripted server on loopback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import Account, LiveApp, start_app, stop_app
from tests.fixtures import llm_server as _scripted
from tests.fixtures.llm_server import Reply, ScriptedLLMServer

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

CANARY = "sk-canary-e2e-91c04d7a3f6b25e8cc33"
HINT = "sk-...cc33"
LLM_TIMEOUT_MS = 60_000  # the app imports LiteLLM (or loads the local model) on its first call


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The app with private endpoints allowed, one thread for the local model and no retries."""
    extra = {"LLM_ALLOW_PRIVATE_ENDPOINTS": "true", "LLM_LOCAL_THREADS": "1", "LLM_MAX_RETRIES": "0"}
    process, app = start_app(tmp_path_factory.mktemp("providers") / "data", extra)
    try:
        yield app
    finally:
        stop_app(process)


def row(page: Page, name: str) -> Locator:
    return page.get_by_test_id("provider-row").filter(has=page.get_by_test_id("provider-title").filter(has_text=name))


def add_scripted_provider(page: Page, server: ScriptedLLMServer, name: str = "scripted") -> Locator:
    page.get_by_test_id("add-provider").click()
    dialog = page.get_by_test_id("provider-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("provider-kind")).to_contain_text("OpenAI-compatible")
    dialog.get_by_test_id("provider-name").fill(name)
    models = dialog.get_by_test_id("provider-models")
    for model in ("m1", "m2"):  # model ids are chips: each is added with Enter
        models.fill(model)
        models.press("Enter")
        # The chip appears once the server has taken it (NiceGUI's chips loop back through the server);
        # an Enter before that would add to the old list and drop this one, so wait as a person would.
        expect(dialog.locator(".q-chip").filter(has_text=model)).to_be_visible()
    dialog.get_by_test_id("provider-base_url").fill(server.base_url)
    dialog.get_by_test_id("provider-api_key").fill(CANARY)
    dialog.get_by_test_id("provider-submit").click()
    expect(dialog).to_be_hidden()
    return row(page, name)


def test_an_admin_adds_and_tests_a_provider_and_sees_the_key_only_masked(
    page: Page, live_app: LiveApp, sign_up: Callable[..., Account], llm_server: ScriptedLLMServer
) -> None:
    sign_up(page)
    page.goto(f"{live_app.base_url}/providers")
    local = page.get_by_test_id("provider-row").filter(has_text="SmolLM2")
    expect(local).to_contain_text("cannot use tools")  # the bundled model, said plainly

    scripted = add_scripted_provider(page, llm_server)
    expect(scripted.get_by_test_id("provider-details")).to_contain_text(f"key: {HINT}")
    expect(scripted.get_by_test_id("provider-details")).to_contain_text(f"base URL: {llm_server.base_url}")
    expect(scripted.get_by_test_id("provider-state")).to_have_text("enabled")

    scripted.get_by_test_id("provider-test").click()
    expect(scripted.get_by_test_id("provider-test-result")).to_have_text(
        re.compile(r"^OK: m1 answered in \d+ ms$"), timeout=LLM_TIMEOUT_MS
    )
    assert llm_server.requests[-1].json["max_tokens"] == 1
    assert llm_server.requests[-1].headers["authorization"] == f"Bearer {CANARY}"

    llm_server.default = Reply.error(401, f"Incorrect API key provided: {CANARY}")
    scripted.get_by_test_id("provider-test").click()
    result = scripted.get_by_test_id("provider-test-result")
    expect(result).to_contain_text("Failed after", timeout=LLM_TIMEOUT_MS)
    expect(result).to_contain_text("Incorrect API key provided")
    expect(result).to_contain_text("HTTP 401")

    scripted.get_by_test_id("provider-edit").click()  # editing shows the hint, never the key
    dialog = page.get_by_test_id("provider-dialog")
    expect(dialog.get_by_test_id("provider-api_key")).to_have_value("")
    expect(dialog.get_by_test_id("provider-api_key")).to_have_attribute("placeholder", re.compile(re.escape(HINT)))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    assert CANARY not in page.content()
    page.reload()
    assert CANARY not in page.content()
    assert CANARY not in live_app.log()


def test_the_local_model_answers_the_test_offline(
    page: Page, live_app: LiveApp, sign_up: Callable[..., Account]
) -> None:
    sign_up(page)
    page.goto(f"{live_app.base_url}/providers")
    local = page.get_by_test_id("provider-row").filter(has_text="SmolLM2")
    local.get_by_test_id("provider-test").click()
    expect(local.get_by_test_id("provider-test-result")).to_have_text(
        re.compile(r"^OK: smollm2-135m-instruct answered in \d+ ms$"), timeout=LLM_TIMEOUT_MS
    )


def test_disable_enable_and_delete_with_confirmation(
    page: Page, live_app: LiveApp, sign_up: Callable[..., Account], llm_server: ScriptedLLMServer
) -> None:
    sign_up(page)
    page.goto(f"{live_app.base_url}/providers")
    scripted = add_scripted_provider(page, llm_server, name="vllm")
    scripted.get_by_test_id("provider-toggle").click()
    expect(scripted.get_by_test_id("provider-state")).to_have_text("disabled")
    scripted.get_by_test_id("provider-toggle").click()
    expect(scripted.get_by_test_id("provider-state")).to_have_text("enabled")

    scripted.get_by_test_id("provider-delete").click()
    page.get_by_role("button", name="Cancel").click()
    expect(scripted).to_be_visible()
    scripted.get_by_test_id("provider-delete").click()
    page.get_by_test_id("confirm-delete").click()
    expect(scripted).to_have_count(0)
    expect(page.get_by_test_id("provider-row")).to_have_count(1)  # the local model stays


def test_a_viewer_sees_providers_read_only(
    page: Page, live_app: LiveApp, sign_up: Callable[..., Account], llm_server: ScriptedLLMServer
) -> None:
    owner = sign_up(page)
    page.goto(f"{live_app.base_url}/providers")
    add_scripted_provider(page, llm_server)
    with httpx.Client(base_url=live_app.base_url) as api:
        login = api.post("/api/auth/login", json={"email": owner.email, "password": owner.password})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        token = api.post("/api/members/invites", headers=headers, json={"role": "viewer"}).json()["token"]
        viewer_email = f"viewer-{owner.tenant_slug}@example.com"
        joined = api.post(
            "/api/auth/signup", json={"email": viewer_email, "password": owner.password, "invite_token": token}
        )
        assert joined.status_code == 201, joined.text

    page.context.clear_cookies()
    page.goto(f"{live_app.base_url}/login?next=/providers")
    page.get_by_test_id("login-email").fill(viewer_email)
    page.get_by_test_id("login-password").fill(owner.password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r"/providers$"))
    expect(page.get_by_test_id("read-only-note")).to_contain_text("viewer")
    expect(row(page, "scripted").get_by_test_id("provider-details")).to_contain_text(HINT)
    expect(page.get_by_test_id("add-provider")).to_have_count(0)
    expect(page.get_by_test_id("provider-test")).to_have_count(0)
    expect(page.get_by_test_id("provider-delete")).to_have_count(0)
    assert CANARY not in page.content()


def test_the_local_model_comes_back_in_one_click(
    page: Page, live_app: LiveApp, sign_up: Callable[..., Account]
) -> None:
    sign_up(page)
    page.goto(f"{live_app.base_url}/providers")
    expect(page.get_by_test_id("add-local-provider")).to_be_hidden()  # every new tenant has it already
    local = page.get_by_test_id("provider-row").filter(has_text="SmolLM2")
    local.get_by_test_id("provider-delete").click()
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_test_id("provider-row")).to_have_count(0)

    page.get_by_test_id("add-local-provider").click()
    expect(local).to_contain_text("cannot use tools")
    expect(local.get_by_test_id("provider-state")).to_have_text("enabled")
    expect(page.get_by_test_id("add-local-provider")).to_be_hidden()
