"""A fresh app in a real browser: the home page, the health endpoint, the socket's Origin check."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.e2e.conftest import LiveApp

pytestmark = pytest.mark.e2e

FOREIGN = "https://attacker.example"


def socket_url(app: LiveApp, transport: str) -> str:
    return f"{app.base_url}/_nicegui_ws/socket.io/?EIO=4&transport={transport}"


def test_fresh_app_home_page_renders(live_app: LiveApp, page: Page) -> None:
    page.goto(live_app.base_url)
    expect(page.get_by_test_id("page-title")).to_have_text("Home")
    expect(page.get_by_test_id("home-signed-out")).to_be_visible()
    expect(page.get_by_test_id("backends")).to_contain_text("sqlite")
    expect(page.get_by_test_id("status")).to_have_text("Status: ok")
    expect(page.get_by_test_id("nav")).to_have_count(0)  # the pages behind it need a session
    page.get_by_test_id("home-sign-in").click()  # a live socket: the click reaches the server
    page.wait_for_url("**/login")
    expect(page.get_by_test_id("login-email")).to_be_visible()


def test_health_answers_with_the_backends(live_app: LiveApp) -> None:
    response = httpx.get(f"{live_app.base_url}/api/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["environment"] == "test"
    assert body["checks"] == {"database": "ok"}
    assert body["backends"]["database"] == "sqlite"
    assert body["backends"]["event_bus"] == "in-process"
    assert "://" not in response.text  # names of backends, never their URLs


def test_the_api_documents_itself_in_the_running_app(live_app: LiveApp, page: Page) -> None:
    spec = httpx.get(f"{live_app.base_url}/api/openapi.json", timeout=10).json()
    assert "/api/auth/login" in spec["paths"]
    assert "/login" not in spec["paths"]  # pages are not API
    page.goto(f"{live_app.base_url}/api/docs")
    expect(page.get_by_text("/api/tenants", exact=True).first).to_be_visible()


def test_socket_polling_handshake_from_a_foreign_origin_is_refused(live_app: LiveApp) -> None:
    url = socket_url(live_app, "polling")
    refused = httpx.get(url, headers={"Origin": FOREIGN}, timeout=10)
    assert refused.status_code == 403
    same_site = httpx.get(url, headers={"Origin": live_app.base_url}, timeout=10)
    assert same_site.status_code == 200
    assert same_site.text.startswith("0{")  # engine.io's open packet: the handshake went through


def test_socket_websocket_from_a_foreign_origin_is_refused(live_app: LiveApp) -> None:
    url = socket_url(live_app, "websocket").replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused, connect(url, origin=Origin(FOREIGN), open_timeout=10):
        pass
    assert refused.value.response.status_code == 403
    with connect(url, origin=Origin(live_app.base_url), open_timeout=10) as socket:
        assert str(socket.recv(timeout=10)).startswith("0{")
