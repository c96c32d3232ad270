"""Identity journeys in a real browser: sign up, log out, log in, invite, accept, switch workspace,
change role, remove, API keys; forged and stale session cookies get the login page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Account, LiveApp, unique

pytestmark = pytest.mark.e2e

SignUp = Callable[..., Account]


def pick(page: Page, select_testid: str, option: str) -> None:
    """Choose `option` in a NiceGUI (Quasar) select."""
    page.get_by_test_id(select_testid).click()
    page.get_by_role("option", name=option, exact=True).click()


def create_invite(page: Page, base_url: str, role: str) -> str:
    """As an admin of the current workspace: make an invitation link for `role`; returns the link."""
    page.goto(f"{base_url}/members")
    pick(page, "invite-role", role)
    page.get_by_test_id("invite-submit").click()
    link = page.get_by_test_id("invite-link")
    expect(link).to_have_value(re.compile(r"/invite#cci_"))
    value = link.input_value()
    assert value.startswith(f"{base_url}/invite#")
    return value


def log_in(page: Page, account: Account) -> None:
    page.get_by_test_id("login-email").fill(account.email)
    page.get_by_test_id("login-password").fill(account.password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(account.email)


def test_sign_up_log_out_and_log_in_again(live_app: LiveApp, page: Page, browser: Browser, sign_up: SignUp) -> None:
    account = sign_up(page)
    expect(page.get_by_test_id(f"current-{account.tenant_slug}")).to_be_visible()
    expect(page.get_by_test_id("nav-workspaces")).to_have_attribute("aria-current", "page")
    page.goto(f"{live_app.base_url}/tenants")  # the old address still works
    page.wait_for_url(f"{live_app.base_url}/workspaces")
    page.goto(live_app.base_url)
    expect(page.get_by_test_id("home-workspace")).to_have_text(account.workspace)
    expect(page.get_by_test_id("home-role")).to_contain_text("you are owner")
    expect(page.get_by_test_id("nav-drawer")).to_be_visible()  # home sits inside the shell when signed in
    page.get_by_test_id("quick-api-keys").click()
    page.wait_for_url("**/api-keys")
    expect(page.get_by_test_id("nav-api-keys")).to_have_attribute("aria-current", "page")

    # The browser's NiceGUI user storage holds a session id and nothing else.
    stored = [json.loads(p.read_text()) for p in (live_app.data_dir / "ui-storage").glob("storage-user-*.json")]
    assert any("sid" in s for s in stored)
    assert all(set(s) <= {"sid"} for s in stored), stored
    cookies = page.context.cookies()

    page.get_by_test_id("log-out").click()
    page.wait_for_url("**/login")
    expect(page.get_by_test_id("sign-in-link")).to_be_visible()
    page.goto(f"{live_app.base_url}/members")
    page.wait_for_url(re.compile(r"/login\?next=/members$"))

    # The cookie of the ended session, replayed in another browser, is worth nothing.
    replay = browser.new_context()
    try:
        replay.add_cookies(cookies)  # type: ignore[arg-type]  # Cookie and SetCookieParam share their keys
        stale = replay.new_page()
        stale.goto(f"{live_app.base_url}/api-keys")
        stale.wait_for_url(re.compile(r"/login\?next=/api-keys$"))
    finally:
        replay.close()

    page.get_by_test_id("login-email").fill(account.email)
    page.get_by_test_id("login-password").fill("not the password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_text(re.compile("email or password", re.IGNORECASE))).to_be_visible()
    log_in(page, account)
    page.wait_for_url("**/members")  # back where the login page was asked for
    expect(page.get_by_test_id("member-row")).to_contain_text(account.email)


def test_a_cookie_copied_before_sign_in_is_not_signed_in_afterwards(
    live_app: LiveApp, page: Page, browser: Browser, sign_up: SignUp
) -> None:
    """Session fixation: signing in hands the browser a new id; the pre-login cookie stays signed out."""
    account = sign_up(page)
    page.get_by_test_id("log-out").click()
    page.wait_for_url("**/login")
    before = page.context.cookies()  # what someone could have planted or copied now
    assert any(c["name"] == "session" for c in before)
    log_in(page, account)
    after = {c["name"]: c["value"] for c in page.context.cookies()}
    assert after["session"] != {c["name"]: c["value"] for c in before}["session"]

    # The hand-over's one-time ticket went through the access log redacted.
    log = live_app.log()
    assert "/auth/session?ticket=[redacted]" in log
    assert not re.search(r"ticket=(?!\[redacted\])", log)

    copied = browser.new_context()
    try:
        copied.add_cookies(before)  # type: ignore[arg-type]  # Cookie and SetCookieParam share their keys
        stale = copied.new_page()
        stale.goto(f"{live_app.base_url}/members")
        stale.wait_for_url(re.compile(r"/login\?next=/members$"))
    finally:
        copied.close()


def test_an_unknown_sign_in_hand_over_is_refused(live_app: LiveApp, page: Page) -> None:
    page.goto(f"{live_app.base_url}/auth/session?ticket=not-a-ticket")
    page.wait_for_url("**/login")
    expect(page.get_by_test_id("login-error")).to_contain_text("sign in again")


def test_login_never_redirects_off_site(live_app: LiveApp, page: Page, sign_up: SignUp) -> None:
    account = sign_up(page)
    page.get_by_test_id("log-out").click()
    page.wait_for_url("**/login")
    page.goto(f"{live_app.base_url}/login?next=//attacker.example/phish")
    log_in(page, account)
    page.wait_for_url(f"{live_app.base_url}/workspaces")


@pytest.mark.parametrize(
    "cookie",
    [
        "forged",
        "eyJpZCI6ICJzb21lb25lLWVsc2UifQ==.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbb",  # {"id": ...} with a bad signature
    ],
)
def test_a_forged_session_cookie_gets_the_login_page(live_app: LiveApp, browser: Browser, cookie: str) -> None:
    context = browser.new_context()
    try:
        context.add_cookies([{"name": "session", "value": cookie, "url": live_app.base_url}])
        page = context.new_page()
        page.goto(f"{live_app.base_url}/members")
        page.wait_for_url(re.compile(r"/login\?next=/members$"))
        expect(page.get_by_test_id("login-email")).to_be_visible()
        expect(page.get_by_test_id("signed-in-as")).to_have_count(0)
    finally:
        context.close()


def test_invite_accept_and_switch_workspace(live_app: LiveApp, page: Page, other_page: Page, sign_up: SignUp) -> None:
    owner = sign_up(page)
    link = create_invite(page, live_app.base_url, "editor")
    expect(page.get_by_test_id("invite-list")).to_contain_text("editor")

    # Someone with a tenant of their own accepts while signed in: now they have two.
    guest = sign_up(other_page)
    other_page.goto(link)
    expect(other_page.get_by_test_id("invite-summary")).to_have_text(
        f"You are invited to join {owner.workspace} as editor."
    )
    other_page.get_by_test_id("invite-accept").click()
    other_page.wait_for_url("**/workspaces")
    expect(other_page.get_by_test_id(f"current-{owner.tenant_slug}")).to_be_visible()

    # The header's switcher moves them to their own tenant, and back.
    pick(other_page, "workspace-switcher", f"{guest.workspace} (owner)")
    expect(other_page.get_by_test_id(f"current-{guest.tenant_slug}")).to_be_visible()
    other_page.goto(live_app.base_url)
    expect(other_page.get_by_test_id("home-workspace")).to_have_text(guest.workspace)
    pick(other_page, "workspace-switcher", f"{owner.workspace} (editor)")
    expect(other_page.get_by_test_id("home-workspace")).to_have_text(owner.workspace)
    expect(other_page.get_by_test_id("home-role")).to_contain_text("you are editor")

    # The link worked once; the owner sees the new member.
    page.reload()
    expect(page.get_by_test_id("member-row").filter(has_text=guest.email)).to_be_visible()
    expect(page.get_by_test_id("invite-list")).to_have_count(0)


def test_change_role_then_removal_sends_the_member_away(
    live_app: LiveApp, page: Page, other_page: Page, sign_up: SignUp
) -> None:
    owner = sign_up(page)
    link = create_invite(page, live_app.base_url, "viewer")

    # A newcomer creates their account through the link.
    email = f"{unique('member')}@example.com"
    other_page.goto(link)
    expect(other_page.get_by_test_id("invite-summary")).to_contain_text("as viewer")
    other_page.get_by_test_id("join-email").fill(email)
    other_page.get_by_test_id("join-password").fill("another long passphrase")
    other_page.get_by_test_id("join-submit").click()
    expect(other_page.get_by_test_id("signed-in-as")).to_have_text(email)
    expect(other_page.get_by_test_id(f"current-{owner.tenant_slug}")).to_be_visible()

    page.reload()
    row = page.get_by_test_id("member-row").filter(has_text=email)
    row.get_by_test_id("member-role").click()
    page.get_by_role("option", name="editor", exact=True).click()
    expect(page.get_by_text(f"{email} is now editor")).to_be_visible()
    other_page.goto(live_app.base_url)
    expect(other_page.get_by_test_id("home-role")).to_contain_text("you are editor")

    other_page.goto(f"{live_app.base_url}/api-keys")
    expect(other_page.get_by_test_id("api-key-none")).to_be_visible()
    row.get_by_test_id("member-remove").click()
    page.get_by_test_id("confirm-remove").click()
    expect(page.get_by_text(f"{email} was removed")).to_be_visible()
    expect(page.get_by_test_id("member-row").filter(has_text=email)).to_have_count(0)

    # The removed member's page is still open; their next click finds no tenant.
    other_page.get_by_test_id("api-key-name").fill("after removal")
    other_page.get_by_test_id("api-key-submit").click()
    other_page.wait_for_url("**/workspaces")
    expect(other_page.get_by_test_id("no-workspaces")).to_be_visible()
    other_page.goto(f"{live_app.base_url}/members")
    other_page.wait_for_url("**/workspaces")


def test_the_owner_transfers_ownership_and_becomes_an_admin(
    live_app: LiveApp, page: Page, other_page: Page, sign_up: SignUp
) -> None:
    owner = sign_up(page)
    link = create_invite(page, live_app.base_url, "admin")
    successor = sign_up(other_page)
    other_page.goto(link)
    other_page.get_by_test_id("invite-accept").click()
    other_page.wait_for_url("**/workspaces")

    page.reload()
    row = page.get_by_test_id("member-row").filter(has_text=successor.email)
    row.get_by_test_id("member-make-owner").click()
    page.get_by_test_id("confirm-transfer").click()
    # The page reloads (every control depends on the role): the owner is an admin now.
    mine = page.get_by_test_id("member-row").filter(has_text=f"{owner.email} (you)")
    expect(mine.get_by_test_id("member-role-badge")).to_have_text("admin")
    expect(page.get_by_test_id("member-make-owner")).to_have_count(0)  # only the owner transfers

    other_page.goto(live_app.base_url)  # accepting the invite made the owner's tenant their current one
    expect(other_page.get_by_test_id("home-workspace")).to_have_text(owner.workspace)
    expect(other_page.get_by_test_id("home-role")).to_contain_text("you are owner")


def test_api_key_is_shown_once_works_and_is_revoked(live_app: LiveApp, page: Page, sign_up: SignUp) -> None:
    account = sign_up(page)
    page.goto(f"{live_app.base_url}/api-keys")
    expect(page.get_by_test_id("api-key-none")).to_be_visible()
    page.get_by_test_id("api-key-name").fill("ci pipeline")
    pick(page, "api-key-role", "viewer")
    page.get_by_test_id("api-key-submit").click()
    secret_box = page.get_by_test_id("api-key-secret")
    expect(secret_box).to_have_value(re.compile(r"^cck_"))
    secret = secret_box.input_value()
    row = page.get_by_test_id("api-key-row").filter(has_text="ci pipeline")
    hint = row.get_by_test_id("api-key-hint").inner_text()
    assert hint.endswith("••••••••")
    assert secret.startswith(hint.removesuffix("_••••••••") + "_")
    expect(row).to_contain_text("viewer")

    headers = {"Authorization": f"Bearer {secret}"}
    me = httpx.get(f"{live_app.base_url}/api/auth/me", headers=headers, timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == account.email
    members = httpx.get(f"{live_app.base_url}/api/members", headers=headers, timeout=10)
    assert members.status_code == 200
    invite = httpx.post(f"{live_app.base_url}/api/members/invites", headers=headers, json={"role": "viewer"})
    assert invite.status_code == 403  # a viewer key cannot do an admin's work

    page.reload()
    expect(page.get_by_test_id("api-key-row").filter(has_text="ci pipeline")).to_be_visible()
    expect(page.get_by_test_id("api-key-secret")).to_have_count(0)
    assert secret not in page.content()  # shown once

    row = page.get_by_test_id("api-key-row").filter(has_text="ci pipeline")
    row.get_by_test_id("api-key-revoke").click()
    page.get_by_test_id("confirm-revoke").click()
    expect(row.get_by_test_id("api-key-status")).to_have_text("revoked")
    refused = httpx.get(f"{live_app.base_url}/api/auth/me", headers=headers, timeout=10)
    assert refused.status_code == 401
