"""Read models shared by the identity services: users and their memberships."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role, TenantContext
from core.errors import InvalidInput
from db.errors import InvalidTenantSlug
from db.models.control import Membership, Tenant, User
from db.slugs import validate_slug


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as the UI and API may show them (never the password hash)."""

    id: uuid.UUID
    email: str
    display_name: str
    email_verified: bool
    has_password: bool


@dataclass(frozen=True, slots=True)
class MembershipInfo:
    """One tenant a user belongs to, with their role there."""

    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str
    role: Role

    def context(self, user_id: uuid.UUID | None) -> TenantContext:
        return TenantContext(tenant_id=self.tenant_id, tenant_slug=self.tenant_slug, user_id=user_id, role=self.role)


def user_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        email_verified=user.email_verified,
        has_password=user.password_hash is not None,
    )


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def normalize_email(email: str) -> str:
    """The canonical, lowercased form of an address, or `InvalidInput` saying why it is not one."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"email address is invalid: {exc}") from exc


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        names = ", ".join(r.value for r in Role)
        raise InvalidInput(f"role {value[:20]!r} does not exist; use one of {names}") from exc


async def membership_of(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID | None = None,
    slug: str | None = None,
) -> MembershipInfo | None:
    """The user's membership in one active tenant (by id or slug), or None."""
    query = (
        select(Tenant.id, Tenant.slug, Tenant.name, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id, Tenant.status == "active")
    )
    if tenant_id is not None:
        query = query.where(Tenant.id == tenant_id)
    elif slug is not None:
        try:
            query = query.where(Tenant.slug == validate_slug(slug))
        except InvalidTenantSlug as exc:
            raise InvalidInput(str(exc), field="tenant") from exc
    else:
        raise ValueError("membership_of needs a tenant id or slug")
    row = (await session.execute(query)).first()
    return MembershipInfo(row[0], row[1], row[2], Role(row[3])) if row else None


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[MembershipInfo]:
    """Every active tenant the user belongs to, by name."""
    query = (
        select(Tenant.id, Tenant.slug, Tenant.name, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id, Tenant.status == "active")
        .order_by(Tenant.name, Tenant.slug)
    )
    return [MembershipInfo(r[0], r[1], r[2], Role(r[3])) for r in (await session.execute(query)).all()]
