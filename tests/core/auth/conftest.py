"""Identity services on each database (cheap Argon2), and people to populate a tenant with."""

from __future__ import annotations

from core.auth.directory import MembershipInfo
from core.context import Role, TenantContext
from tests.api.conftest import PASSWORD, services
from wiring.services import Services

__all__ = ["services"]  # migrated services on each database, the API tests' fixture


async def owner_of(services: Services, slug: str, email: str | None = None) -> TenantContext:
    """Sign up the owner of a new tenant `slug`; their context there."""
    user, membership = await services.identity.accounts.signup(
        email or f"owner@{slug}.example", PASSWORD, tenant_slug=slug
    )
    return membership.context(user.id)


async def add_member(services: Services, ctx: TenantContext, email: str, role: Role) -> MembershipInfo:
    """Invite `email` as `role` and sign them up through the invitation."""
    created = await services.identity.invites.create(ctx, role)
    _user, joined = await services.identity.invites.sign_up(created.token, email, PASSWORD)
    return joined
