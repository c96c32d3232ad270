"""The providers page with the simulated user: the editor form, per-kind fields, keys, roles."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui.testing.user import User
from pydantic import SecretStr

from core.context import Role
from core.llm.types import ProviderKind
from core.providers import ProviderInput
from tests.ui.conftest import sign_in
from wiring.services import Services

pytestmark = pytest.mark.ui_settings(master_key=True)

CANARY = "sk-canary-ui-4f1e9a07c2d8b35e6611"
HINT = "sk-...6611"


def one(user: User, marker: str) -> Any:
    """The one visible element with test id `marker`."""
    found = user.find(marker=marker).elements
    assert len(found) == 1, f"{len(found)} elements marked {marker!r}"
    return next(iter(found))


def error_of(user: User, marker: str) -> str:
    return str(one(user, marker).error or "")


async def open_add_dialog(user: User) -> None:
    await user.open("/providers")
    user.find(marker="add-provider").click()
    await user.should_see(marker="provider-dialog")


async def test_every_problem_of_a_new_provider_is_shown_under_its_field_at_once(
    user: User, ui_services: Services
) -> None:
    await sign_in(user, ui_services)
    await open_add_dialog(user)
    assert one(user, "provider-kind").value == str(ProviderKind.OPENAI_COMPATIBLE)
    user.find(marker="provider-base_url").type("not a url")
    user.find(marker="provider-base_url").trigger("keydown.enter")  # Enter submits
    await user.should_see("add at least one model id")

    assert error_of(user, "provider-name") == "Field required"
    assert "http:// or https:// URL with a host name" in error_of(user, "provider-base_url")
    assert "add at least one model id" in error_of(user, "provider-models")
    await user.should_not_see(marker="provider-error")  # nothing left over for the box, and no toast
    assert not user.notify.messages


async def test_each_kind_shows_only_its_fields(user: User, ui_services: Services) -> None:
    await sign_in(user, ui_services)
    await open_add_dialog(user)
    with user.scope(marker="provider-dialog"):
        await user.should_see(marker="provider-api_key")
        await user.should_not_see(marker="provider-api_version")
        await user.should_not_see(marker="local-note")

        user.find(marker="provider-name").type("kept across kinds")
        one(user, "provider-kind").value = str(ProviderKind.OLLAMA)
        await user.should_not_see(marker="provider-api_key")  # Ollama takes no key
        await user.should_see(marker="provider-base_url")
        assert one(user, "provider-name").value == "kept across kinds"

        one(user, "provider-kind").value = str(ProviderKind.AZURE)
        await user.should_see(marker="provider-api_version")
        await user.should_see(marker="provider-api_key")

        one(user, "provider-kind").value = str(ProviderKind.LOCAL)
        await user.should_not_see(marker="provider-base_url")
        await user.should_not_see(marker="provider-api_key")
        await user.should_see("cannot use tools")
        assert one(user, "provider-models").value == ["smollm2-135m-instruct"]


async def test_an_admin_adds_a_provider_and_sees_its_key_only_masked(user: User, ui_services: Services) -> None:
    account = await sign_in(user, ui_services)
    await open_add_dialog(user)
    one(user, "provider-kind").value = str(ProviderKind.OPENAI)
    user.find(marker="provider-name").type("openai")
    one(user, "provider-models").value = ["gpt-4o-mini", "gpt-4o"]
    user.find(marker="provider-name").trigger("keydown.enter")
    await user.should_see("provider needs an API key")
    assert "needs an API key" in error_of(user, "provider-api_key")  # refused before it reaches the service

    user.find(marker="provider-api_key").type(CANARY)
    user.find(marker="provider-submit").click()
    await user.should_see("Saved provider 'openai'")
    await user.should_not_see(marker="provider-dialog")
    await user.should_see(f"key: {HINT}")
    views = await ui_services.llm_stack.providers.list(account.ctx)
    saved = next(view for view in views if view.name == "openai")
    assert saved.models == ["gpt-4o-mini", "gpt-4o"]
    assert saved.credential_hint == HINT

    await user.open("/providers")  # editing shows the hint as a placeholder; the key field stays empty
    with user.scope(marker=f"provider-row-{saved.id}"):
        user.find(marker="provider-edit").click()
    await user.should_see(marker="provider-dialog")
    key = one(user, "provider-api_key")
    assert key.value == ""
    assert HINT in key.props["placeholder"]
    assert one(user, "provider-kind").enabled is False  # a provider's kind is fixed
    await user.should_see(marker="provider-clear_api_key")
    await user.should_not_see(CANARY)


async def test_editing_keeps_the_key_and_the_ssrf_guard_speaks_under_the_base_url(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    providers = ui_services.llm_stack.providers
    view = await providers.create(
        account.ctx,
        ProviderInput(name="openai", kind=ProviderKind.OPENAI, models=["gpt-4o-mini"], api_key=SecretStr(CANARY)),
    )
    await user.open("/providers")
    with user.scope(marker=f"provider-row-{view.id}"):
        user.find(marker="provider-edit").click()
    await user.should_see(marker="provider-dialog")
    name = user.find(marker="provider-name")
    name.clear().type("renamed")
    user.find(marker="provider-base_url").type("http://127.0.0.1:9/v1")
    name.trigger("keydown.enter")
    await user.should_see("non-public")
    assert "non-public" in error_of(user, "provider-base_url")  # loopback is refused in this workspace
    assert (await providers.get(account.ctx, view.id)).name == "openai"

    user.find(marker="provider-base_url").clear()
    user.find(marker="provider-submit").click()
    await user.should_see("Saved provider 'renamed'")
    saved = await providers.get(account.ctx, view.id)
    assert saved.name == "renamed"
    assert saved.credential_hint == HINT  # nothing typed: the stored key stays


async def test_a_viewer_sees_providers_read_only(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    view = await ui_services.llm_stack.providers.create(
        owner.ctx,
        ProviderInput(name="openai", kind=ProviderKind.OPENAI, models=["gpt-4o-mini"], api_key=SecretStr(CANARY)),
    )
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/providers")
    await user.should_see(marker="read-only-note")
    await user.should_see(f"key: {HINT}")
    for marker in ("add-provider", "add-local-provider", "provider-test", "provider-edit", "provider-delete"):
        await user.should_not_see(marker=marker)

    with user.scope(marker=f"provider-row-{view.id}"):
        user.find(marker="provider-view").click()
    await user.should_see(marker="provider-dialog")
    assert one(user, "provider-name").value == "openai"
    assert one(user, "provider-name").props.get("readonly") is True
    await user.should_not_see(marker="provider-submit")
    await user.should_not_see(CANARY)


async def test_an_admin_disables_deletes_with_confirmation_and_brings_back_the_local_model(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    providers = ui_services.llm_stack.providers
    (local,) = await providers.list(account.ctx)  # every new workspace starts with the bundled model
    await user.open("/providers")
    await user.should_not_see(marker="add-local-provider")
    with user.scope(marker=f"provider-row-{local.id}"):
        user.find(marker="provider-toggle").click()
    await user.should_see("disabled")
    assert (await providers.get(account.ctx, local.id)).enabled is False

    with user.scope(marker=f"provider-row-{local.id}"):
        user.find(marker="provider-delete").click()
    await user.should_see("Delete the provider")
    user.find(marker="confirm-cancel").click()
    await user.should_not_see("Delete the provider")  # the question is gone, the provider stays
    await user.should_see(marker=f"provider-row-{local.id}")
    with user.scope(marker=f"provider-row-{local.id}"):
        user.find(marker="provider-delete").click()
    await user.should_see("Delete the provider")
    user.find(marker="confirm-delete").click()
    await user.should_see(marker="providers-empty")
    assert await providers.list(account.ctx) == []

    user.find(marker="add-local-provider").click()
    await user.should_see("cannot use tools")
    await user.should_not_see(marker="add-local-provider")
    (restored,) = await providers.list(account.ctx)
    assert restored.kind is ProviderKind.LOCAL
    assert restored.enabled
