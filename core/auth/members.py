"""A tenant's members: who belongs, with which role; ownership; the tenants of a user.

Rules (each checked through `TenantContext.require`):
- any member may list the members;
- admins change roles and remove members, never above their own rank, never the owner;
- a member may leave (remove themself), except the owner;
- only the owner transfers ownership (they become an admin) or deletes the tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.directory import MembershipInfo, aware, membership_of, memberships_of, parse_role
from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.tenants import TenantInfo, TenantService
from db.base import utcnow
from db.database import Database
from db.models.control import ApiKey, Membership, RefreshToken, UISession, User


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member of a tenant."""

    user_id: uuid.UUID
    email: str
    display_name: str
    role: Role
    joined_at: datetime


class MemberService:
    """Membership of tenants and the tenant lifecycle seen from its members."""

    def __init__(self, db: Database, tenants: TenantService) -> None:
        self._db = db
        self._tenants = tenants

    async def tenants_of(self, user_id: uuid.UUID) -> list[MembershipInfo]:
        """Every tenant the user belongs to, with their role."""
        async with self._db.control_session() as session:
            return await memberships_of(session, user_id)

    async def context_for(self, user_id: uuid.UUID, slug: str) -> TenantContext:
        """The user's context in tenant `slug`; `NotFound` if they do not belong to it."""
        async with self._db.control_session() as session:
            found = await membership_of(session, user_id, slug=slug)
        if found is None:
            raise NotFound(f"you have no workspace named {slug[:50]!r}; pick one of yours")
        return found.context(user_id)

    async def list_members(self, ctx: TenantContext) -> list[MemberInfo]:
        """The tenant's members, owner first."""
        ctx.require(Role.VIEWER, "list members")
        async with self._db.control_session() as session:
            rows = (
                await session.execute(
                    select(User.id, User.email, User.display_name, Membership.role, Membership.created_at)
                    .join(Membership, Membership.user_id == User.id)
                    .where(Membership.tenant_id == ctx.tenant_id)
                )
            ).all()
        members = [MemberInfo(r[0], r[1], r[2], Role(r[3]), aware(r[4])) for r in rows]
        return sorted(members, key=lambda m: (-m.role.rank, m.email))

    async def _member(self, ctx: TenantContext, user_id: uuid.UUID) -> Membership:
        async with self._db.control_session() as session:
            row = await session.scalar(
                select(Membership).where(Membership.tenant_id == ctx.tenant_id, Membership.user_id == user_id)
            )
        if row is None:
            raise NotFound("no such member in this workspace; reload the member list")
        return row

    async def change_role(self, ctx: TenantContext, user_id: uuid.UUID, role: str | Role) -> MemberInfo:
        """Give a member another role (admin or higher; never above your own, never owner)."""
        ctx.require(Role.ADMIN, "change roles")
        new_role = parse_role(str(role))
        if new_role is Role.OWNER:
            raise InvalidInput("a workspace has one owner; use 'transfer ownership' to make someone the owner")
        if new_role.rank > ctx.role.rank:
            raise PermissionDenied(f"you cannot give the role '{new_role}', which is above your own")
        member = await self._member(ctx, user_id)
        if Role(member.role) is Role.OWNER:
            raise Conflict("the owner's role cannot be changed; the owner can transfer ownership instead")
        if Role(member.role).rank > ctx.role.rank:
            raise PermissionDenied("you cannot change the role of a member above your own role")
        async with self._db.control_session() as session:
            await session.execute(update(Membership).where(Membership.id == member.id).values(role=new_role.value))
            await session.execute(  # keys never outrank their creator
                update(ApiKey)
                .where(ApiKey.tenant_id == ctx.tenant_id, ApiKey.user_id == user_id)
                .where(ApiKey.role.in_([r.value for r in Role if r.rank > new_role.rank]))
                .values(role=new_role.value)
            )
            await session.commit()
        return next(m for m in await self.list_members(ctx) if m.user_id == user_id)

    async def remove(self, ctx: TenantContext, user_id: uuid.UUID) -> None:
        """Remove a member (or leave, if it is you); their access to this tenant ends at once."""
        if user_id != ctx.user_id:
            ctx.require(Role.ADMIN, "remove members")
        member = await self._member(ctx, user_id)
        if Role(member.role) is Role.OWNER:
            raise Conflict("the owner cannot be removed; transfer ownership to someone else first")
        if user_id != ctx.user_id and Role(member.role).rank > ctx.role.rank:
            raise PermissionDenied("you cannot remove a member above your own role")
        now = utcnow()
        async with self._db.control_session() as session:
            await session.execute(delete(Membership).where(Membership.id == member.id))
            await session.execute(
                update(ApiKey)
                .where(ApiKey.tenant_id == ctx.tenant_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            await session.execute(
                update(UISession)
                .where(UISession.user_id == user_id, UISession.tenant_id == ctx.tenant_id)
                .values(tenant_id=None)
            )
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.tenant_id == ctx.tenant_id)
                .values(tenant_id=None)
            )
            await session.commit()

    async def transfer_ownership(self, ctx: TenantContext, user_id: uuid.UUID) -> None:
        """Make another member the owner; the current owner becomes an admin.

        One transaction that starts by demoting the caller's own owner membership: that
        write locks the row (PostgreSQL) or the database (SQLite), and re-checks inside the
        transaction that the caller still is the owner, so of several concurrent transfers
        exactly one wins and the rest are refused. The partial unique index on owner
        memberships makes a second owner impossible even for code that forgets this.
        """
        ctx.require(Role.OWNER, "transfer ownership")
        if user_id == ctx.user_id:
            raise InvalidInput("you own this workspace already; choose another member")
        member = await self._member(ctx, user_id)
        lost = Conflict("you are no longer the owner of this tenant (ownership was transferred meanwhile); reload")
        async with self._db.control_session() as session:
            demoted = await session.execute(
                update(Membership)
                .where(
                    Membership.tenant_id == ctx.tenant_id,
                    Membership.user_id == ctx.user_id,
                    Membership.role == Role.OWNER.value,
                )
                .values(role=Role.ADMIN.value)
            )
            if demoted.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE results carry rowcount
                raise lost
            promoted = await session.execute(
                update(Membership).where(Membership.id == member.id).values(role=Role.OWNER.value)
            )
            if promoted.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE results carry rowcount
                raise NotFound("no such member in this workspace; reload the member list")
            try:
                await session.commit()
            except IntegrityError as exc:  # another owner appeared meanwhile: the index refused a second
                raise lost from exc

    async def create_tenant(self, user_id: uuid.UUID, slug: str, name: str = "") -> MembershipInfo:
        """A new tenant (with its schema) owned by the user: both, or neither."""

        async def add_owner(session: AsyncSession, tenant: TenantInfo) -> None:
            session.add(Membership(tenant_id=tenant.id, user_id=user_id, role=Role.OWNER.value))

        info = await self._tenants.create(slug, name, finish=add_owner)
        return MembershipInfo(info.id, info.slug, info.name, Role.OWNER)

    async def delete_tenant(self, ctx: TenantContext, *, confirm: str) -> None:
        """Delete the tenant and all its data; the owner must repeat its slug."""
        ctx.require(Role.OWNER, "delete the workspace")
        await self._tenants.delete(ctx.tenant_slug, confirm=confirm)
