"""Mount every API router and the error mapping on a FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from api import auth, health
from api.errors import install_error_handlers
from core.services import Services


def install_api(app: FastAPI, services: Services) -> None:
    """Attach the services and all routers to `app` (NiceGUI's app or a bare FastAPI)."""
    app.state.services = services
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
