"""Invitations: a one-time link to join a tenant with a role, optionally for one email address.

The link's token is shown once to the admin who created it and stored only as a digest.
No email is sent by CrewCanvas itself: the admin passes the link on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.auth.accounts import AccountService
from core.auth.directory import MembershipInfo, UserInfo, aware, normalize_email, parse_role
from core.auth.opaque import digest, new_secret
from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from db.base import utcnow
from db.database import Database
from db.models.control import Invite, Membership, Tenant, User


@dataclass(frozen=True, slots=True)
class InviteInfo:
    """A pending invitation as admins see it (never its token)."""

    id: uuid.UUID
    role: Role
    email: str | None
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedInvite:
    """A new invitation and its token, which is shown this once."""

    info: InviteInfo
    token: str


@dataclass(frozen=True, slots=True)
class InvitePreview:
    """What someone opening an invite link is told before accepting."""

    tenant_slug: str
    tenant_name: str
    role: Role
    email: str | None


def _info(invite: Invite) -> InviteInfo:
    return InviteInfo(invite.id, Role(invite.role), invite.email, aware(invite.expires_at), aware(invite.created_at))


class InviteService:
    """Creates, lists, revokes and accepts invitations."""

    PREFIX = "cci_"

    def __init__(self, db: Database, accounts: AccountService, *, ttl_s: int) -> None:
        self._db = db
        self._accounts = accounts
        self._ttl = timedelta(seconds=ttl_s)

    async def create(self, ctx: TenantContext, role: str | Role, email: str | None = None) -> CreatedInvite:
        """Invite someone as `role` (admin or higher; never above your own role, never owner)."""
        ctx.require(Role.ADMIN, "invite members")
        wanted = parse_role(str(role))
        if wanted is Role.OWNER:
            raise InvalidInput("nobody can be invited as owner; invite an admin and transfer ownership later")
        if wanted.rank > ctx.role.rank:
            raise PermissionDenied(f"you cannot invite someone as '{wanted}', which is above your own role")
        address = normalize_email(email) if email and email.strip() else None
        token = new_secret(self.PREFIX)
        invite = Invite(
            tenant_id=ctx.tenant_id,
            role=wanted.value,
            email=address,
            token_hash=digest(token),
            invited_by=ctx.user_id,
            expires_at=utcnow() + self._ttl,
        )
        async with self._db.control_session() as session:
            session.add(invite)
            await session.commit()
        return CreatedInvite(_info(invite), token)

    async def pending(self, ctx: TenantContext) -> list[InviteInfo]:
        """Invitations of this tenant neither accepted, revoked nor expired."""
        ctx.require(Role.ADMIN, "see invitations")
        async with self._db.control_session() as session:
            rows = await session.scalars(
                select(Invite)
                .where(
                    Invite.tenant_id == ctx.tenant_id,
                    Invite.accepted_at.is_(None),
                    Invite.revoked_at.is_(None),
                    Invite.expires_at > utcnow(),
                )
                .order_by(Invite.created_at)
            )
            return [_info(r) for r in rows]

    async def revoke(self, ctx: TenantContext, invite_id: uuid.UUID) -> None:
        """Withdraw a pending invitation of this tenant."""
        ctx.require(Role.ADMIN, "revoke invitations")
        async with self._db.control_session() as session:
            result = await session.execute(
                update(Invite)
                .where(Invite.id == invite_id, Invite.tenant_id == ctx.tenant_id, Invite.accepted_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE results carry rowcount
            raise NotFound("no such pending invitation in this tenant")

    async def _usable(self, token: str) -> tuple[Invite, Tenant]:
        async with self._db.control_session() as session:
            row = (
                await session.execute(
                    select(Invite, Tenant)
                    .join(Tenant, Tenant.id == Invite.tenant_id)
                    .where(Invite.token_hash == digest(token.strip()))
                )
            ).first()
        if row is None or row[1].status != "active" or row[0].revoked_at is not None:
            raise NotFound("this invitation link is not valid; ask for a new one")
        invite, tenant = row[0], row[1]
        if invite.accepted_at is not None:
            raise Conflict("this invitation has been used already; ask for a new one")
        if aware(invite.expires_at) <= utcnow():
            raise Conflict("this invitation has expired; ask for a new one")
        return invite, tenant

    async def preview(self, token: str) -> InvitePreview:
        """Which tenant and role the invitation is for (without accepting it)."""
        invite, tenant = await self._usable(token)
        return InvitePreview(tenant.slug, tenant.name, Role(invite.role), invite.email)

    async def accept(self, token: str, user_id: uuid.UUID) -> MembershipInfo:
        """Join the tenant with the invited role; the invitation cannot be used again."""
        invite, tenant = await self._usable(token)
        async with self._db.control_session() as session:
            user = await session.get(User, user_id)
            if user is None or not user.is_active:
                raise NotFound("no such user")
            if invite.email is not None and invite.email != user.email:
                raise PermissionDenied(
                    "this invitation is for another email address; sign in as that address to accept it"
                )
            taken = await session.execute(
                update(Invite)
                .where(Invite.id == invite.id, Invite.accepted_at.is_(None))
                .values(accepted_at=utcnow(), accepted_by=user_id)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE results carry rowcount
                raise Conflict("this invitation has been used already; ask for a new one")
            session.add(Membership(tenant_id=tenant.id, user_id=user_id, role=invite.role))
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(f"you are a member of {tenant.name!r} already") from exc
        return MembershipInfo(tenant.id, tenant.slug, tenant.name, Role(invite.role))

    async def sign_up(
        self, token: str, email: str, password: str, *, display_name: str = ""
    ) -> tuple[UserInfo, MembershipInfo]:
        """Create an account through an invitation and join its tenant (no tenant of one's own)."""
        preview = await self.preview(token)
        if preview.email is not None and preview.email != normalize_email(email):
            raise PermissionDenied("this invitation is for another email address; sign up with that address")
        user = await self._accounts.register(email, password, display_name=display_name)
        return user, await self.accept(token, user.id)
