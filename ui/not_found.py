"""The not-found page for addresses that match no route: inside the shell, with a way back.

NiceGUI's own 404 handler shows a stock page with no navigation; this one replaces it for
pages, and leaves API routes and files their JSON 404 (`{"detail": "Not Found"}`).
"""

from __future__ import annotations

from fastapi.exception_handlers import http_exception_handler
from nicegui import app, ui
from nicegui.page import page
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from ui.layout import frame
from ui.session import current_state
from ui.tenant_page import not_found_content
from wiring.services import Services

NOT_PAGES = ("/api/", "/_nicegui/", "/auth/")


def install_not_found(services: Services) -> None:
    """Answer unknown page addresses with the shell's not-found page (status 404)."""

    async def not_found_page() -> None:
        await current_state(services)  # the navigation shows when someone is signed in
        ui.context.client.status_code = 404
        with frame("Not found"):
            not_found_content("page")

    async def handle_404(request: Request, exception: Exception) -> Response:
        endpoint = request.scope.get("endpoint")
        is_page = request.scope.get("nicegui_page_path") is not None
        if isinstance(exception, StarletteHTTPException) and (
            request.url.path.startswith(NOT_PAGES) or (endpoint is not None and endpoint is not app and not is_page)
        ):
            return await http_exception_handler(request, exception)
        response: Response = await page("")._wrap(not_found_page)(request=request)
        response.status_code = 404
        return response

    app.add_exception_handler(404, handle_404)
