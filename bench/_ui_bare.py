"""The "bare" side of bench/ui.py: a static page with plain Vue Flow, served on loopback from a thread.

`/?nodes=N` is `_ui_bare.html` with `_ui_flow.flow(N)` inlined as JSON in place of `{{flow_json}}`
(NiceGUI inlines its elements' props the same way). `/static/vue.esm-browser.prod.js` is NiceGUI's own Vue build and
`/static/flow/vue_flow.js` the canvas's bundle, both cached by the browser as NiceGUI's files are;
the page itself is `no-store`, as NiceGUI's pages are.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from _ui_flow import CANVAS_HEIGHT, CANVAS_WIDTH, PATCH_GAP_MS, flow

TEMPLATE = Path(__file__).with_name("_ui_bare.html")
STATIC_CACHE = "public, max-age=31536000, immutable"  # what NiceGUI sends for its versioned static files


def nicegui_vue() -> Path:
    """NiceGUI's production Vue build, the one its pages load through their import map."""
    spec = importlib.util.find_spec("nicegui")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("nicegui is not installed in this environment")
    return Path(spec.origin).with_name("static") / "vue.esm-browser.prod.js"


def bare_page(count: int) -> bytes:
    nodes, edges = flow(count)
    # "</" would end the <script> element early; "<\/" is the same JSON string.
    data = json.dumps({"nodes": nodes, "edges": edges}).replace("</", "<\\/")
    html = (
        TEMPLATE.read_text()
        .replace("{{canvas_width}}", str(CANVAS_WIDTH))
        .replace("{{canvas_height}}", str(CANVAS_HEIGHT))
        .replace("{{patch_gap_ms}}", str(PATCH_GAP_MS))
        .replace("{{flow_json}}", data)
    )
    return html.encode()


def handler_for(bundle: Path) -> type[BaseHTTPRequestHandler]:
    static = {
        "/static/vue.esm-browser.prod.js": nicegui_vue().read_bytes(),
        "/static/flow/vue_flow.js": bundle.read_bytes(),
    }

    class BareHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn does

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/":
                count = int(parse_qs(url.query).get("nodes", ["100"])[0])
                self.reply(bare_page(count), "text/html; charset=utf-8", "no-store")
            elif url.path in static:
                self.reply(static[url.path], "text/javascript; charset=utf-8", STATIC_CACHE)
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def reply(self, body: bytes, content_type: str, cache: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return BareHandler


@contextmanager
def bare_server(bundle: Path) -> Iterator[str]:
    """Serve the bare page on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(bundle))
    thread = threading.Thread(target=server.serve_forever, name="bare page", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
