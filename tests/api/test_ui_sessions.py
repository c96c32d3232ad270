"""Browser sessions (the UI's server-side half): switching tenants, on both databases."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from core.errors import NotFound
from tests.api.conftest import PASSWORD, sign_up
from wiring.services import Services


async def test_a_session_switches_only_to_the_users_own_tenants(client: httpx.AsyncClient, services: Services) -> None:
    await sign_up(client, "alice@example.com", "acme")
    await sign_up(client, "bob@example.com", "globex")
    alice = await services.identity.accounts.authenticate("alice@example.com", PASSWORD, address=None)
    second = await services.identity.members.create_tenant(alice.id, "acme_labs", "Acme Labs")
    token = await services.identity.sessions.create(alice.id)

    context = await services.identity.sessions.switch(token, second.tenant_slug)
    assert context.tenant_slug == "acme_labs"
    state = await services.identity.sessions.resolve(token)
    assert state is not None
    assert state.context is not None
    assert state.context.tenant_slug == "acme_labs"

    with pytest.raises(NotFound):
        await services.identity.sessions.switch(token, "globex")  # Bob's
    state = await services.identity.sessions.resolve(token)
    assert state is not None
    assert state.context is not None
    assert state.context.tenant_slug == "acme_labs"  # unchanged by the refusal


async def test_switches_at_once_end_on_one_of_the_tenants_without_errors(
    client: httpx.AsyncClient, services: Services
) -> None:
    await sign_up(client, "alice@example.com", "acme")
    alice = await services.identity.accounts.authenticate("alice@example.com", PASSWORD, address=None)
    await services.identity.members.create_tenant(alice.id, "acme_labs", "Acme Labs")
    token = await services.identity.sessions.create(alice.id)
    slugs = ["acme", "acme_labs"] * 4
    contexts = await asyncio.gather(*(services.identity.sessions.switch(token, slug) for slug in slugs))
    assert [c.tenant_slug for c in contexts] == slugs
    state = await services.identity.sessions.resolve(token)
    assert state is not None
    assert state.context is not None
    assert state.context.tenant_slug in {"acme", "acme_labs"}
