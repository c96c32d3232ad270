"""Sign-up is all or nothing: account, workspace, schema and membership, or none of them."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Role
from core.errors import AuthenticationFailed, Conflict, InvalidInput
from core.tenants import TenantInfo
from db.models.control import Membership, Tenant, User
from tests.api.conftest import PASSWORD
from tests.core.auth.conftest import owner_of
from wiring.services import Services


async def count(services: Services, model: type) -> int:
    async with services.db.control_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    "display_name", ["Ali\x00ce", "Ali\x07ce", "Alice\nSmith", "\u202eecilA", "Ali\ud800ce"], ids=repr
)
async def test_a_bad_display_name_is_refused_before_anything_is_created(services: Services, display_name: str) -> None:
    with pytest.raises(InvalidInput, match="display_name") as refused:
        await services.identity.accounts.signup(
            "alice@example.com", PASSWORD, tenant_slug="acme", display_name=display_name
        )
    assert [p.field for p in refused.value.problems] == ["display_name"]
    assert (await count(services, Tenant), await count(services, User)) == (0, 0)
    assert not await services.db.tenant_storage_exists("acme")
    _user, membership = await services.identity.accounts.signup("alice@example.com", PASSWORD, tenant_slug="acme")
    assert (membership.tenant_slug, membership.role) == ("acme", Role.OWNER)  # the slug was never taken


async def test_a_failure_after_provisioning_leaves_no_tenant_and_no_schema(services: Services) -> None:
    """Whatever breaks in the transaction that activates a tenant, its row and storage are removed again."""

    async def broken_finish(session: AsyncSession, tenant: TenantInfo) -> None:
        session.add(Membership(tenant_id=tenant.id, user_id=tenant.id, role="owner"))  # no such user: FK fails

    with pytest.raises(IntegrityError):
        await services.tenants.create("acme", finish=broken_finish)
    assert await count(services, Tenant) == 0
    assert not await services.db.tenant_storage_exists("acme")
    assert (await services.tenants.create("acme")).status == "active"


async def test_concurrent_sign_ups_with_one_address_create_one_account_and_one_workspace(services: Services) -> None:
    slugs = [f"team{n}" for n in range(5)]
    results = await asyncio.gather(
        *(services.identity.accounts.signup("alice@example.com", PASSWORD, tenant_slug=s) for s in slugs),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException)), results
    assert (await count(services, User), await count(services, Tenant), await count(services, Membership)) == (1, 1, 1)
    winner = made[0][1].tenant_slug
    for slug in slugs:
        assert await services.db.tenant_storage_exists(slug) == (slug == winner)


async def test_concurrent_sign_ups_with_one_invitation_create_one_account(services: Services) -> None:
    ctx = await owner_of(services, "acme")
    invite = await services.identity.invites.create(ctx, Role.EDITOR)
    emails = [f"person{n}@example.com" for n in range(10)]
    results = await asyncio.gather(
        *(services.identity.invites.sign_up(invite.token, email, PASSWORD) for email in emails),
        return_exceptions=True,
    )
    joined = [r for r in results if not isinstance(r, BaseException)]
    assert len(joined) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException)), results
    assert await count(services, User) == 2  # the owner and the one who got in
    winner = joined[0][0].email
    for email in emails:
        if email == winner:
            await services.identity.accounts.authenticate(email, PASSWORD, address="192.0.2.1")
        else:
            with pytest.raises(AuthenticationFailed, match="email or password is wrong"):
                await services.identity.accounts.authenticate(email, PASSWORD, address="192.0.2.1")


async def test_an_invitation_sign_up_with_a_taken_address_keeps_the_invitation(services: Services) -> None:
    ctx = await owner_of(services, "acme")
    invite = await services.identity.invites.create(ctx, Role.VIEWER)
    with pytest.raises(Conflict, match="exists already"):
        await services.identity.invites.sign_up(invite.token, "owner@acme.example", PASSWORD)
    preview = await services.identity.invites.preview(invite.token)  # still usable
    assert preview.tenant_slug == "acme"
    user, joined = await services.identity.invites.sign_up(invite.token, "new@example.com", PASSWORD)
    assert (user.email, joined.role) == ("new@example.com", Role.VIEWER)
