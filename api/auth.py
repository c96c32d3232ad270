"""`/api/auth/*`: sign up, sign in, refresh, sign out, who am I, change password."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentPrincipal, ServicesDep, client_address
from api.errors import BODY_ERRORS, responses
from api.fields import Email, Password, Slug, Token
from core.auth.authenticator import TokenPair
from core.errors import InvalidInput
from core.text import Name

router = APIRouter(prefix="/api/auth", tags=["auth"])
_BODY = BODY_ERRORS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupRequest(Strict):
    email: Email
    password: Password
    display_name: Name = ""
    tenant_slug: Slug | None = Field(default=None, description="A new tenant you will own.")
    tenant_name: Name = ""
    invite_token: Token | None = Field(default=None, description="Join the inviting tenant instead of creating one.")


class LoginRequest(Strict):
    email: Email
    password: Password
    tenant: Slug | None = Field(default=None, description="Slug of the tenant to work in.")


class RefreshRequest(Strict):
    refresh_token: Token


class LogoutRequest(Strict):
    refresh_token: Token | None = None


class PasswordChange(Strict):
    current_password: Password
    new_password: Password


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int = Field(description="Seconds until the access token expires.")
    tenant: str | None = Field(description="Slug of the tenant the access token is for.")


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    email_verified: bool


class TenantOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    role: str


class MeResponse(BaseModel):
    user: UserOut
    tenants: list[TenantOut]
    via: str = Field(description="'access_token' or 'api_key'.")


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        tenant=pair.tenant_slug,
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account (and a tenant, or join one)",
    responses=responses(*_BODY, 403, 404, 409, 429, 503),
)
async def signup(body: SignupRequest, services: ServicesDep) -> TokenResponse:
    """Create a user. With `tenant_slug` they get a new tenant they own; with `invite_token` they join that tenant."""
    identity = services.identity
    if body.invite_token:
        user, joined = await identity.invites.sign_up(
            body.invite_token, body.email, body.password, display_name=body.display_name
        )
        pair = await identity.auth.start(user.id, joined.tenant_slug)
    elif body.tenant_slug:
        membership_user, membership = await identity.accounts.signup(
            body.email,
            body.password,
            tenant_slug=body.tenant_slug,
            tenant_name=body.tenant_name,
            display_name=body.display_name,
        )
        pair = await identity.auth.start(membership_user.id, membership.tenant_slug)
    else:
        raise InvalidInput("sign-up needs either tenant_slug (a new tenant) or invite_token (join a tenant)")
    return _tokens(pair)


@router.post("/login", summary="Sign in with email and password", responses=responses(*_BODY, 401, 404, 429, 503))
async def login(body: LoginRequest, services: ServicesDep, request: Request) -> TokenResponse:
    """Returns a short-lived access token and a refresh token. Repeated failures are throttled (429)."""
    pair = await services.identity.auth.login(
        body.email, body.password, address=client_address(request), tenant_slug=body.tenant
    )
    return _tokens(pair)


@router.post("/refresh", summary="Exchange a refresh token for new tokens", responses=responses(*_BODY, 401, 404))
async def refresh(body: RefreshRequest, services: ServicesDep) -> TokenResponse:
    """Each refresh token works once. Using one twice revokes the whole sign-in."""
    return _tokens(await services.identity.auth.refresh(body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out", responses=responses(*_BODY, 401))
async def logout(
    principal: CurrentPrincipal,
    services: ServicesDep,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """Revoke this sign-in: its access and refresh tokens stop working."""
    if principal.api_key_id is not None:
        raise InvalidInput("API keys do not sign in or out; revoke the key instead")
    await services.identity.auth.logout(principal, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", summary="Who am I, and which tenants can I use", responses=responses(401, 404))
async def me(principal: CurrentPrincipal, services: ServicesDep) -> MeResponse:
    user = await services.identity.accounts.get(principal.user_id)
    tenants = await services.identity.members.tenants_of(principal.user_id)
    if principal.api_key_id is not None:  # a key sees only its own tenant
        tenants = [t for t in tenants if t.tenant_id == principal.tenant_id]
    return MeResponse(
        user=UserOut(id=user.id, email=user.email, display_name=user.display_name, email_verified=user.email_verified),
        tenants=[TenantOut(id=t.tenant_id, slug=t.tenant_slug, name=t.tenant_name, role=t.role.value) for t in tenants],
        via="api_key" if principal.api_key_id else "access_token",
    )


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change your password",
    responses=responses(*_BODY, 401, 404),
)
async def change_password(body: PasswordChange, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Every existing sign-in of yours (tokens and browser sessions) ends; sign in again."""
    if principal.api_key_id is not None:
        raise InvalidInput("an API key cannot change the password; sign in with the password")
    await services.identity.accounts.change_password(principal.user_id, body.current_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
