"""`/api/members/*`: a tenant's members and invitations (the tenant comes from the credential)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentContext, CurrentPrincipal, ServicesDep
from api.errors import BODY_ERRORS, IN_TENANT, responses
from api.fields import Email, RoleName, Token
from core.auth.invites import InviteInfo
from core.auth.members import MemberInfo
from core.errors import InvalidInput

router = APIRouter(prefix="/api/members", tags=["members"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoleChange(Strict):
    role: RoleName = Field(description="viewer, editor or admin.")


class InviteCreate(Strict):
    role: RoleName = Field(description="viewer, editor or admin (at most your own role).")
    email: Email | None = Field(
        default=None,
        description="Only this address may accept; with a mail server configured, the link is mailed to it.",
    )


class InviteToken(Strict):
    token: Token


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    display_name: str
    role: str
    joined_at: datetime


class InviteOut(BaseModel):
    id: uuid.UUID
    role: str
    email: str | None
    expires_at: datetime
    created_at: datetime


class CreatedInviteOut(BaseModel):
    invite: InviteOut
    token: str = Field(description="Shown once. The invite link is /invite#<token>.")
    link_path: str
    link: str = Field(description="The whole link: APP_BASE_URL (or this request's address) + link_path.")
    emailed: bool = Field(description="Whether the link was handed to the mail server for `email`.")
    email_error: str | None = Field(default=None, description="Why the mail could not be sent, when it failed.")


class InvitePreviewOut(BaseModel):
    tenant_slug: str
    tenant_name: str
    role: str
    email: str | None


class JoinedOut(BaseModel):
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str
    role: str


def _member(info: MemberInfo) -> MemberOut:
    return MemberOut(
        user_id=info.user_id,
        email=info.email,
        display_name=info.display_name,
        role=info.role.value,
        joined_at=info.joined_at,
    )


def _invite(info: InviteInfo) -> InviteOut:
    return InviteOut(
        id=info.id, role=info.role.value, email=info.email, expires_at=info.expires_at, created_at=info.created_at
    )


@router.get("", summary="Members of the tenant", responses=responses(*IN_TENANT))
async def list_members(ctx: CurrentContext, services: ServicesDep) -> list[MemberOut]:
    return [_member(m) for m in await services.identity.members.list_members(ctx)]


@router.patch(
    "/{user_id}", summary="Change a member's role (admin)", responses=responses(*IN_TENANT, *BODY_ERRORS, 409)
)
async def change_role(user_id: uuid.UUID, body: RoleChange, ctx: CurrentContext, services: ServicesDep) -> MemberOut:
    return _member(await services.identity.members.change_role(ctx, user_id, body.role))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member (admin), or leave",
    responses=responses(*IN_TENANT, 409),
)
async def remove_member(user_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    """Their access to this tenant ends at once: tokens, API keys and browser sessions."""
    await services.identity.members.remove(ctx, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/invites", summary="Pending invitations (admin)", responses=responses(*IN_TENANT))
async def pending_invites(ctx: CurrentContext, services: ServicesDep) -> list[InviteOut]:
    return [_invite(i) for i in await services.identity.invites.pending(ctx)]


@router.post(
    "/invites",
    status_code=status.HTTP_201_CREATED,
    summary="Invite someone by link or email (admin)",
    responses=responses(*IN_TENANT, *BODY_ERRORS, 429),
)
async def create_invite(
    body: InviteCreate, request: Request, ctx: CurrentContext, services: ServicesDep
) -> CreatedInviteOut:
    """The token is shown once. With `email`, only that address can accept, and when a mail server is
    configured the link is mailed to it (`emailed`); otherwise, or if the mail fails (`email_error`;
    the invitation stays valid), pass the link on yourself. Invitation mails per tenant and hour are
    capped (429 beyond)."""
    created = await services.identity.invites.create(
        ctx, body.role, body.email, base_url=str(request.base_url).rstrip("/")
    )
    return CreatedInviteOut(
        invite=_invite(created.info),
        token=created.token,
        link_path=f"/invite#{created.token}",
        link=created.link,
        emailed=created.emailed,
        email_error=created.email_error,
    )


@router.delete(
    "/invites/{invite_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Withdraw an invitation",
    responses=responses(*IN_TENANT),
)
async def revoke_invite(invite_id: uuid.UUID, ctx: CurrentContext, services: ServicesDep) -> Response:
    await services.identity.invites.revoke(ctx, invite_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/invites/preview",
    summary="What an invitation is for (no sign-in needed)",
    responses=responses(*BODY_ERRORS, 404, 409),
)
async def preview_invite(body: InviteToken, services: ServicesDep) -> InvitePreviewOut:
    preview = await services.identity.invites.preview(body.token)
    return InvitePreviewOut(
        tenant_slug=preview.tenant_slug, tenant_name=preview.tenant_name, role=preview.role.value, email=preview.email
    )


@router.post(
    "/invites/accept",
    summary="Accept an invitation as the signed-in user",
    responses=responses(401, *BODY_ERRORS, 403, 404, 409),
)
async def accept_invite(body: InviteToken, principal: CurrentPrincipal, services: ServicesDep) -> JoinedOut:
    if principal.api_key_id is not None:
        raise InvalidInput("an API key cannot accept invitations; sign in as a user")
    joined = await services.identity.invites.accept(body.token, principal.user_id)
    return JoinedOut(
        tenant_id=joined.tenant_id, tenant_slug=joined.tenant_slug, tenant_name=joined.tenant_name, role=joined.role
    )
