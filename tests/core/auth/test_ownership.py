"""Exactly one owner per tenant, whatever the interleaving of transfers (enforced by the database)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.context import Role
from core.errors import Conflict
from db.models.control import Membership, User
from tests.core.auth.conftest import add_member, owner_of
from wiring.services import Services


async def owners(services: Services, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    async with services.db.control_session() as session:
        return list(
            await session.scalars(
                select(Membership.user_id).where(Membership.tenant_id == tenant_id, Membership.role == "owner")
            )
        )


async def user_id(services: Services, email: str) -> uuid.UUID:
    async with services.db.control_session() as session:
        found = await session.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


@pytest.mark.parametrize("attempt", range(3))
async def test_six_concurrent_transfers_leave_exactly_one_owner(services: Services, attempt: int) -> None:
    ctx = await owner_of(services, f"acme{attempt}")
    admins = [f"admin{n}@example.com" for n in range(6)]
    for email in admins:
        await add_member(services, ctx, email, Role.ADMIN)
    ids = [await user_id(services, email) for email in admins]

    results = await asyncio.gather(
        *(services.identity.members.transfer_ownership(ctx, target) for target in ids), return_exceptions=True
    )

    won = [target for target, result in zip(ids, results, strict=True) if result is None]
    assert len(won) == 1, results
    assert all(isinstance(r, Conflict) for r in results if r is not None), results
    assert await owners(services, ctx.tenant_id) == won
    members = {m.user_id: m.role for m in await services.identity.members.list_members(ctx)}
    assert members[ctx.user_id] is Role.ADMIN  # the old owner stepped down once


async def test_a_transfer_with_a_stale_owner_context_is_refused(services: Services) -> None:
    """Ownership moved on: the former owner's earlier context can no longer move it again."""
    ctx = await owner_of(services, "acme")
    await add_member(services, ctx, "bob@example.com", Role.ADMIN)
    await add_member(services, ctx, "carol@example.com", Role.ADMIN)
    bob, carol = await user_id(services, "bob@example.com"), await user_id(services, "carol@example.com")
    await services.identity.members.transfer_ownership(ctx, bob)
    with pytest.raises(Conflict, match="no longer the owner"):
        await services.identity.members.transfer_ownership(ctx, carol)
    assert await owners(services, ctx.tenant_id) == [bob]


async def test_the_database_refuses_a_second_owner(services: Services) -> None:
    """Not only the service: a plain write of a second owner membership fails."""
    ctx = await owner_of(services, "acme")
    await add_member(services, ctx, "bob@example.com", Role.EDITOR)
    bob = await user_id(services, "bob@example.com")
    async with services.db.control_session() as session:
        membership = await session.scalar(
            select(Membership).where(Membership.tenant_id == ctx.tenant_id, Membership.user_id == bob)
        )
        assert membership is not None
        membership.role = "owner"
        with pytest.raises(IntegrityError):
            await session.commit()
    async with services.db.control_session() as session:
        count = await session.scalar(select(func.count()).select_from(Membership).where(Membership.role == "owner"))
    assert count == 1
