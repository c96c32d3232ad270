"""`ui.origin.OriginGuard`: NiceGUI's socket path refuses handshakes opened by foreign web pages.

Driven at the ASGI level (Starlette's test client, HTTP long-polling and WebSocket) around
a small app that answers on every path; the live app is checked in tests/e2e/test_foundation.py.
"""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from ui.origin import SOCKET_PATH, OriginGuard, origin_of

POLLING = f"{SOCKET_PATH}/socket.io/?EIO=4&transport=polling"
WEBSOCKET = f"{SOCKET_PATH}/socket.io/?EIO=4&transport=websocket"


async def answer(request: Request) -> PlainTextResponse:
    return PlainTextResponse("reached the app")


async def accept(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("open")
    await websocket.close()


def guarded(*allowed: str) -> TestClient:
    inner = Starlette(
        routes=[
            Route(f"{SOCKET_PATH}/socket.io/", answer),
            Route("/page", answer),
            WebSocketRoute(f"{SOCKET_PATH}/socket.io/", accept),
        ]
    )
    return TestClient(OriginGuard(inner, allowed_origins=allowed), base_url="http://app.example:8080")


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://app.example.evil.example:8080", "http://app.example:9999", "null", "garbage"],
)
def test_a_polling_handshake_from_a_foreign_origin_is_refused(origin: str) -> None:
    response = guarded("http://app.example:8080").get(POLLING, headers={"Origin": origin})
    assert response.status_code == 403
    assert "reached the app" not in response.text


def test_a_polling_handshake_from_the_configured_origin_reaches_the_app() -> None:
    response = guarded("http://APP.example:8080/").get(POLLING, headers={"Origin": "http://app.example:8080"})
    assert response.status_code == 200
    assert response.text == "reached the app"


def test_a_websocket_from_a_foreign_origin_is_closed_before_it_opens() -> None:
    client = guarded("http://app.example:8080")
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(WEBSOCKET, headers={"Origin": "https://evil.example"}),
    ):
        pass
    assert refused.value.code == 1008


def test_a_websocket_from_the_configured_origin_opens() -> None:
    client = guarded("http://app.example:8080")
    with client.websocket_connect(WEBSOCKET, headers={"Origin": "http://app.example:8080"}) as socket:
        assert socket.receive_text() == "open"


def test_without_a_configured_origin_the_requested_host_is_this_site() -> None:
    client = guarded()
    assert client.get(POLLING, headers={"Origin": "http://app.example:8080"}).status_code == 200
    assert client.get(POLLING, headers={"Origin": "http://other.example:8080"}).status_code == 403


def test_requests_without_origin_and_other_paths_pass() -> None:
    client = guarded("http://app.example:8080")
    assert client.get(POLLING).status_code == 200  # not a browser: no cookies ride along
    assert client.get("/page", headers={"Origin": "https://evil.example"}).status_code == 200


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://Example.COM:80/path", "http://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("https://example.com:8443/", "https://example.com:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("ftp://example.com", None),
        ("null", None),
        ("http://example.com:notaport", None),
    ],
)
def test_origin_of_normalizes_or_refuses(url: str, expected: str | None) -> None:
    assert origin_of(url) == expected
