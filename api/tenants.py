"""`/api/tenants/*`: my tenants, create another, switch, transfer ownership, delete.

New accounts get their first tenant through `POST /api/auth/signup`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import BODY_ERRORS, responses
from api.fields import Slug, SlugPath
from core.auth.directory import MembershipInfo
from core.errors import InvalidInput
from core.text import Name

router = APIRouter(prefix="/api/tenants", tags=["tenants"], responses=responses(401))


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug = Field(description="3-40 of a-z, 0-9 and '_', starting with a letter.")
    name: Name = ""


class TenantSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: Slug = Field(description="Slug of one of your tenants.")


class OwnershipTransfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID = Field(description="A member of the tenant who becomes its owner.")


class TenantOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    role: str


class SwitchResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int
    tenant: str


def _out(info: MembershipInfo) -> TenantOut:
    return TenantOut(id=info.tenant_id, slug=info.tenant_slug, name=info.tenant_name, role=info.role.value)


def _user_only(principal: CurrentPrincipal, what: str) -> None:
    if principal.api_key_id is not None:
        raise InvalidInput(f"an API key cannot {what}; sign in as a user")


@router.get("", summary="The tenants I belong to")
async def my_tenants(principal: CurrentPrincipal, services: ServicesDep) -> list[TenantOut]:
    tenants = await services.identity.members.tenants_of(principal.user_id)
    if principal.api_key_id is not None:
        tenants = [t for t in tenants if t.tenant_id == principal.tenant_id]
    return [_out(t) for t in tenants]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create another tenant that I own",
    responses=responses(*BODY_ERRORS, 404, 409),
)
async def create_tenant(body: TenantCreate, principal: CurrentPrincipal, services: ServicesDep) -> TenantOut:
    _user_only(principal, "create tenants")
    return _out(await services.identity.members.create_tenant(principal.user_id, body.slug, body.name))


@router.post("/switch", summary="Get an access token for another of my tenants", responses=responses(*BODY_ERRORS, 404))
async def switch_tenant(body: TenantSwitch, principal: CurrentPrincipal, services: ServicesDep) -> SwitchResponse:
    """The sign-in's refresh token also continues in this tenant. (`X-Tenant` works per request, too.)"""
    _user_only(principal, "switch tenants")
    token = await services.identity.auth.switch(principal, body.tenant)
    return SwitchResponse(access_token=token, expires_in=services.settings.auth.access_token_ttl_s, tenant=body.tenant)


@router.post(
    "/{slug}/transfer",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Transfer ownership (owner)",
    responses=responses(*BODY_ERRORS, 403, 404, 409),
)
async def transfer_ownership(
    slug: SlugPath, body: OwnershipTransfer, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """The member becomes the owner; you become an admin."""
    _user_only(principal, "transfer ownership")
    ctx = await services.identity.auth.context(principal, slug)
    await services.identity.members.transfer_ownership(ctx, body.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{slug}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tenant and all its data (owner)",
    responses=responses(403, 404, 409, 422),
)
async def delete_tenant(
    slug: SlugPath,
    principal: CurrentPrincipal,
    services: ServicesDep,
    confirm: Annotated[Slug, Query(description="Repeat the tenant's slug to confirm.")] = "",
) -> Response:
    _user_only(principal, "delete tenants")
    ctx = await services.identity.auth.context(principal, slug)
    await services.identity.members.delete_tenant(ctx, confirm=confirm)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
