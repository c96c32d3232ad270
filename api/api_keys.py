"""`/api/api-keys/*`: personal API keys in the current tenant."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentContext, CurrentPrincipal, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.fields import RoleName
from core.auth.api_keys import ApiKeyInfo
from core.errors import InvalidInput
from core.text import Name

router = APIRouter(prefix="/api/api-keys", tags=["api keys"], responses=responses(*IN_TENANT))


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Where you will use the key.")
    role: RoleName | None = Field(default=None, description="At most your own role (the default).")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class CreatedApiKeyOut(BaseModel):
    api_key: ApiKeyOut
    key: str = Field(description="Shown once: send it as 'Authorization: Bearer <key>'.")


def _out(info: ApiKeyInfo) -> ApiKeyOut:
    return ApiKeyOut(
        id=info.id,
        name=info.name,
        prefix=info.prefix,
        role=info.role.value,
        created_at=info.created_at,
        expires_at=info.expires_at,
        last_used_at=info.last_used_at,
        revoked=info.revoked,
    )


@router.get("", summary="My API keys in this tenant")
async def list_keys(ctx: CurrentContext, services: ServicesDep) -> list[ApiKeyOut]:
    return [_out(k) for k in await services.identity.api_keys.list_keys(ctx)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (shown once)",
    responses=responses(*BODY_ERRORS),
)
async def create_key(
    body: ApiKeyCreate, ctx: CurrentContext, principal: CurrentPrincipal, services: ServicesDep
) -> CreatedApiKeyOut:
    """Signed-in users only: a key that could mint keys would outlive its own revocation or expiry."""
    if principal.api_key_id is not None:
        raise InvalidInput("an API key cannot create API keys; sign in as a user to create one")
    created = await services.identity.api_keys.create(ctx, body.name, body.role, expires_in_days=body.expires_in_days)
    return CreatedApiKeyOut(api_key=_out(created.info), key=created.key)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
async def revoke_key(key_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.identity.api_keys.revoke(ctx, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
