"""Dependencies shared by the routers (`Annotated` aliases, as in the FastAPI template).

Authentication for every router:

    from api.deps import CurrentContext, ServicesDep

    @router.post("/api/things")
    async def create_thing(ctx: CurrentContext, services: ServicesDep) -> ...:
        return await services.things.create(ctx, ...)   # core calls ctx.require(Role.EDITOR)

`CurrentContext` accepts `Authorization: Bearer <access token or API key>`, picks the
tenant (the API key's, the `X-Tenant` header's, or the token's) and reads the caller's
role from the database on every request. `CurrentPrincipal` is the caller without a
tenant (for routes such as "my tenants").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.fields import SLUG_PATTERN
from core.auth.authenticator import Principal
from core.context import TenantContext
from core.errors import AuthenticationFailed
from wiring.services import Services

_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from /api/auth/login, or a personal API key (cck_...).",
)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationFailed("sign in first: send 'Authorization: Bearer <access token or API key>'")
    return await services.identity.auth.principal(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_context(
    services: ServicesDep,
    principal: CurrentPrincipal,
    x_tenant: Annotated[
        str | None,
        Header(
            pattern=SLUG_PATTERN,
            description="Slug of the tenant to act on (default: the one the token was issued for).",
        ),
    ] = None,
) -> TenantContext:
    """The caller's context in the selected tenant, with their current role."""
    return await services.identity.auth.context(principal, x_tenant or None)


CurrentContext = Annotated[TenantContext, Depends(get_context)]


def client_address(request: Request) -> str | None:
    """The client's address as the server sees it (after any trusted proxy headers)."""
    return request.client.host if request.client else None
