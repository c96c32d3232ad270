"""Mount every API router, the error mapping and the body-size limit on a FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from api import api_keys, auth, chat, crew_projects, crews, docs, health, members, tenants
from api.errors import install_error_handlers
from api.executions import router as executions_router
from api.flows import router as flows_router
from api.flows import types_router
from api.limits import BodyLimit, api_body_limits
from api.providers import router as providers_router
from api.tools import router as tools_router
from wiring.services import Services


def install_api(app: FastAPI, services: Services) -> None:
    """Attach the services and all routers to `app` (NiceGUI's app or a bare FastAPI).

    Call it before the app serves: the body limit is a middleware, which Starlette
    accepts only until the first request.
    """
    app.state.services = services
    install_error_handlers(app)
    settings = services.settings
    app.add_middleware(BodyLimit, limit_for=api_body_limits(settings.max_body_bytes, settings.max_import_bytes))
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(tenants.router)
    app.include_router(members.router)
    app.include_router(api_keys.router)
    app.include_router(tools_router)
    app.include_router(crews.router)
    app.include_router(crew_projects.router)
    app.include_router(providers_router)
    app.include_router(flows_router)
    app.include_router(types_router)
    app.include_router(executions_router)
    app.include_router(chat.router)
    app.include_router(docs.router)
