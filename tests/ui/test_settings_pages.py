"""The settings pages (members, API keys, workspaces), home, sign-up and sign-in, by the simulated user."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import ui
from nicegui.testing.user import User

from core.context import Role
from tests.api.conftest import PASSWORD
from tests.ui.conftest import sign_in
from ui.layout import NAV_SECTIONS
from wiring.services import Services


def control(user: User, testid: str) -> Any:
    """The one element tagged `testid` (forms mark their controls with their test ids)."""
    (element,) = user.find(marker=testid).elements
    return element


def error_of(user: User, testid: str) -> str | None:
    """The message under a form control, if it shows one."""
    element = control(user, testid)
    return element.props.get("error-message") if element.props.get("error") else None


def by_testid(user: User, testid: str) -> list[Any]:
    """The elements with this `data-testid` (for what is not a form control)."""
    assert user.client is not None
    return [e for e in user.client.elements.values() if e.props.get("data-testid") == testid]


def shown_testids(user: User) -> set[str]:
    """Every `data-testid` on the page as it is now."""
    assert user.client is not None
    return {str(e.props["data-testid"]) for e in user.client.elements.values() if "data-testid" in e.props}


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def error_shown(user: User, testid: str) -> str:
    """The message under a control, waiting (up to 5 s) for a submit that goes to the database to finish."""
    for _ in range(100):
        if (message := error_of(user, testid)) is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message under {testid}")


async def test_the_old_tenants_address_redirects_to_workspaces(user: User, ui_services: Services) -> None:
    response = await user.http_client.get("/tenants?kept=1")
    assert response.status_code in (303, 307)
    assert response.headers["location"] == "/workspaces?kept=1"
    await sign_in(user, ui_services)
    await user.open("/tenants")  # followed: the workspaces page
    await user.should_see("Your workspaces")


async def test_a_viewer_sees_the_members_without_invite_or_role_controls(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    viewer = await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/members")
    await user.should_see(owner.email)
    await user.should_see(f"{viewer.email} (you)")
    await user.should_see("Only admins and the owner invite people and change roles.")
    shown = shown_testids(user)
    assert {"member-list", "member-role-badge", "member-leave"} <= shown
    assert not {"invite", "invite-role", "invite-submit", "member-role", "member-remove", "member-make-owner"} & shown


async def test_the_invite_form_shows_every_problem_under_its_field_at_once(user: User, ui_services: Services) -> None:
    await sign_in(user, ui_services)
    await user.open("/members")
    control(user, "invite-role").value = None
    user.find(marker="invite-email").type("not an address")
    user.find(marker="invite-submit").click()
    await settle()
    assert error_of(user, "invite-role") == "Field required"
    assert "email address is invalid" in (error_of(user, "invite-email") or "")
    assert user.notify.messages == []  # under the fields, never as toasts
    assert "invite-created" not in shown_testids(user)

    # Fixed, it makes the link (shown once) and lists the invitation as pending.
    control(user, "invite-role").value = "editor"
    user.find(marker="invite-email").clear().type("newcomer@example.com")
    user.find(marker="invite-email").trigger("keydown.enter")  # Enter submits
    await user.should_see("Copy the link now: it is not shown again.")
    await user.should_see("editor · newcomer@example.com")


async def test_an_admin_cannot_invite_above_their_own_role(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.ADMIN)
    await user.open("/members")
    assert list(control(user, "invite-role").options) == ["viewer", "editor", "admin"]
    assert "member-make-owner" not in shown_testids(user)  # only the owner hands the workspace on


async def test_creating_a_workspace_with_a_bad_id_shows_the_problem_under_the_field(
    user: User, ui_services: Services
) -> None:
    await sign_in(user, ui_services)
    await user.open("/workspaces")
    user.find(marker="new-workspace-name").type("Research")
    assert control(user, "new-workspace-slug").value == "research"  # suggested from the name
    user.find(marker="new-workspace-slug").clear().type("9 Bad Id")
    user.find(marker="new-workspace-submit").click()
    await settle()
    message = error_of(user, "new-workspace-slug") or ""
    assert "workspace id '9 Bad Id' is invalid" in message
    assert "tenant" not in message
    assert error_of(user, "new-workspace-name") is None
    assert user.notify.messages == []


async def test_a_taken_workspace_id_is_refused_under_the_field_and_a_free_one_is_created(
    user: User, ui_services: Services
) -> None:
    first = await sign_in(user, ui_services)
    await user.open("/workspaces")
    user.find(marker="new-workspace-name").type("Second")
    user.find(marker="new-workspace-slug").clear().type(first.ctx.tenant_slug)
    user.find(marker="new-workspace-submit").click()
    taken = await error_shown(user, "new-workspace-slug")
    assert taken == f"the workspace id {first.ctx.tenant_slug!r} is taken; choose another one"

    slug = first.ctx.tenant_slug + "_two"
    user.find(marker="new-workspace-slug").clear().type(slug)
    user.find(marker="new-workspace-submit").click()
    assert first.ctx.user_id is not None
    for _ in range(100):  # creating a workspace migrates its storage: give it a moment
        mine = await ui_services.identity.members.tenants_of(first.ctx.user_id)
        if slug in {m.tenant_slug for m in mine}:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"workspace {slug} was not created")


async def test_someone_without_a_workspace_is_sent_to_workspaces_and_can_stay_there(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    await ui_services.identity.members.delete_tenant(account.ctx, confirm=account.ctx.tenant_slug)
    response = await user.http_client.get("/members")
    assert response.status_code == 303
    assert response.headers["location"] == "/workspaces"
    await user.open("/workspaces")
    await user.should_see("You belong to no workspace yet")
    await user.should_see(marker="new-workspace-submit")
    assert "account-create-workspace" in shown_testids(user)  # the header offers it too, instead of a switcher


async def test_home_shows_the_quick_links_of_the_navigation_to_a_signed_in_user(
    user: User, ui_services: Services
) -> None:
    account = await sign_in(user, ui_services)
    await user.open("/")
    await user.should_see(f"Welcome, {account.email}.")
    await user.should_see(f"{account.ctx.tenant_slug} · you are owner")
    shown = shown_testids(user)
    for _, items in NAV_SECTIONS:
        for item in items:
            assert f"quick-{item.target.strip('/')}" in shown
            assert f"nav-{item.target.strip('/')}" in shown  # inside the shell: the navigation shows
    assert "quick-api-docs" in shown
    assert {"backends", "status"} <= shown
    links = [e for e in user.find(ui.link).elements if str(e.props.get("data-testid", "")).startswith("quick-")]
    labels = [link.text for link in sorted(links, key=lambda link: link.id)]
    assert labels[:4] == ["Flows", "Runs", "Inbox", "Crews"]
    assert labels[-4:] == ["Members", "API keys", "Workspaces", "API reference"]


async def test_home_signed_out_offers_sign_in_and_sign_up_without_navigation(user: User) -> None:
    await user.open("/")
    await user.should_see("Sign in to open your workspace")
    shown = shown_testids(user)
    assert {"home-sign-in", "home-sign-up", "backends"} <= shown
    assert "nav-drawer" not in shown


async def test_sign_up_shows_every_problem_under_its_field(user: User) -> None:
    await user.open("/signup")
    await user.should_see("Workspace name *")
    user.find(marker="signup-email").type("nobody")
    user.find(marker="signup-password").type("short")
    user.find(marker="signup-workspace_id").type("x")
    user.find(marker="signup-submit").click()
    await settle()
    assert "email address is invalid" in (error_of(user, "signup-email") or "")
    assert "at least 8 characters" in (error_of(user, "signup-password") or "")
    assert error_of(user, "signup-workspace_name") == "Field required"
    assert "workspace id 'x' is invalid" in (error_of(user, "signup-workspace_id") or "")
    assert user.notify.messages == []


async def test_a_wrong_password_is_shown_in_the_login_form(user: User, ui_services: Services) -> None:
    await ui_services.identity.accounts.signup("ann@example.com", PASSWORD, tenant_slug="anns", tenant_name="Ann's")
    await user.open("/login")
    user.find(marker="login-email").type("ann@example.com")
    user.find(marker="login-password").type(PASSWORD + "x")
    user.find(marker="login-password").trigger("keydown.enter")  # Enter submits
    await user.should_see("email or password is wrong; check both and try again")
    assert control(user, "login-error").visible
    assert user.notify.messages == []


async def test_api_keys_a_viewer_creates_one_and_sees_it_once(user: User, ui_services: Services) -> None:
    owner = await sign_in(User(user.http_client), ui_services)
    await sign_in(user, ui_services, workspace=owner.ctx, role=Role.VIEWER)
    await user.open("/api-keys")
    await user.should_see("You have no API keys here yet")
    assert list(control(user, "api-key-role").options) == ["viewer"]  # never above one's own role
    user.find(marker="api-key-submit").click()
    await settle()
    assert error_of(user, "api-key-name") == "Field required"
    user.find(marker="api-key-name").type("ci pipeline")
    user.find(marker="api-key-submit").click()
    await user.should_see("Copy it now: it is not shown again")
    (secret,) = by_testid(user, "api-key-secret")
    assert str(secret.value).startswith("cck_")
    assert "api-key-row" in shown_testids(user)
    assert control(user, "api-key-name").value == ""  # ready for the next one


async def test_the_owner_deletes_a_workspace_only_after_typing_its_id(user: User, ui_services: Services) -> None:
    owner = await sign_in(user, ui_services)
    slug = owner.ctx.tenant_slug
    await user.open("/workspaces")
    user.find(marker="delete-workspace").click()
    await user.should_see(f"Delete {slug} with all its data?")
    assert not control(user, "confirm-delete-workspace").enabled
    user.find(marker="confirm-delete-workspace-typed").type(slug[:-1])
    assert not control(user, "confirm-delete-workspace").enabled
    user.find(marker="confirm-delete-workspace-typed").type(slug[-1])
    assert control(user, "confirm-delete-workspace").enabled
    user.find(marker="confirm-delete-workspace").click()
    assert owner.ctx.user_id is not None
    for _ in range(100):
        if not await ui_services.identity.members.tenants_of(owner.ctx.user_id):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the workspace was not deleted")
