"""Identity services on each database (cheap Argon2), and people to populate a tenant with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.auth.directory import MembershipInfo
from core.context import Role, TenantContext
from core.services import Services, build_services
from tests.api.conftest import PASSWORD, identity_settings


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """Migrated services on each database backend."""
    built = build_services(identity_settings(tmp_path, db_url))
    await built.start()
    try:
        yield built
    finally:
        await built.close()


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
