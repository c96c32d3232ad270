"""Invitations by mail in a real browser: the app's SMTP_* point at a real SMTP server on loopback.

An admin invites by address and is told "sent to"; the mail holds the link; the newcomer
follows the link from the mail and joins. When the server refuses the mail, the admin is
told why and still gets the link.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveApp, sign_up_in_browser, start_app, stop_app, unique
from tests.fixtures.smtp import MailServer, running_mail_server

pytestmark = pytest.mark.e2e

LINK = re.compile(r"http://127\.0\.0\.1:\d+/invite#cci_\S+")


@pytest.fixture(scope="module")
def mail_box() -> Iterator[MailServer]:
    with running_mail_server() as server:
        yield server


@pytest.fixture(scope="module")
def mailing_app(tmp_path_factory: pytest.TempPathFactory, mail_box: MailServer) -> Iterator[LiveApp]:
    env = {
        "SMTP_HOST": mail_box.host,
        "SMTP_PORT": str(mail_box.port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "CrewCanvas <noreply@example.com>",
        "SMTP_TIMEOUT_S": "5",
    }
    process, app = start_app(tmp_path_factory.mktemp("mailing") / "data", env)
    try:
        yield app
    finally:
        stop_app(process)


def invite_by_address(page: Page, base_url: str, address: str) -> str:
    """As an admin: invite `address` as viewer; returns the link the page shows."""
    page.goto(f"{base_url}/members")
    expect(page.get_by_test_id("invite-explanation")).to_contain_text("mailed")
    page.get_by_test_id("invite-email").fill(address)
    page.get_by_test_id("invite-submit").click()
    expect(page.get_by_test_id("invite-created")).to_be_visible()
    return page.get_by_test_id("invite-link").input_value()


def test_an_invitation_by_address_arrives_by_mail_and_its_link_joins(
    mailing_app: LiveApp, mail_box: MailServer, page: Page, other_page: Page
) -> None:
    owner = sign_up_in_browser(page, mailing_app.base_url)
    address = f"{unique('newcomer')}@example.com"
    shown = invite_by_address(page, mailing_app.base_url, address)
    expect(page.get_by_test_id("invite-emailed")).to_have_text(f"Invitation sent to {address}.")
    assert shown.startswith(f"{mailing_app.base_url}/invite#cci_")

    [mail] = mail_box.to(address)
    assert owner.email in mail.message["Subject"]
    assert owner.workspace in mail.text()
    assert LINK.findall(mail.text()) == [shown]

    other_page.goto(LINK.findall(mail.text())[0])
    expect(other_page.get_by_test_id("invite-summary")).to_contain_text("as viewer")
    expect(other_page.get_by_test_id("join-email")).to_have_value(address)
    other_page.get_by_test_id("join-password").fill("another long passphrase")
    other_page.get_by_test_id("join-submit").click()
    expect(other_page.get_by_test_id("signed-in-as")).to_have_text(address)
    expect(other_page.get_by_test_id(f"current-{owner.tenant_slug}")).to_be_visible()
    assert "cci_" not in mailing_app.log()  # the token lives in links only, never in the app's log


def test_a_refused_mail_is_explained_and_the_link_still_shown(
    mailing_app: LiveApp, mail_box: MailServer, page: Page
) -> None:
    sign_up_in_browser(page, mailing_app.base_url)
    address = f"{unique('bounced')}@example.com"
    mail_box.refuse_recipients = True
    try:
        shown = invite_by_address(page, mailing_app.base_url, address)
    finally:
        mail_box.refuse_recipients = False
    error = page.get_by_test_id("invite-email-error")
    expect(error).to_contain_text(f"The invitation mail to {address} could not be sent")
    expect(error).to_contain_text(f"refused the recipient {address}")
    expect(error).to_contain_text("pass it on yourself")
    assert shown.startswith(f"{mailing_app.base_url}/invite#cci_")
    assert mail_box.to(address) == []
    expect(page.get_by_test_id("invite-list")).to_contain_text(address)
    assert "cci_" not in mailing_app.log()  # the token lives in links only, never in the app's log


def test_without_a_mail_server_the_admin_is_told_to_pass_the_link_on(live_app: LiveApp, page: Page) -> None:
    sign_up_in_browser(page, live_app.base_url)
    page.goto(f"{live_app.base_url}/members")
    expect(page.get_by_test_id("invite-explanation")).to_contain_text("no mail server is configured")
    expect(page.get_by_test_id("invite-explanation")).to_contain_text("SMTP_HOST")
    address = f"{unique('unmailed')}@example.com"
    page.get_by_test_id("invite-email").fill(address)
    page.get_by_test_id("invite-submit").click()
    expect(page.get_by_test_id("invite-not-emailed")).to_contain_text(f"Nothing was mailed to {address}")
    expect(page.get_by_test_id("invite-link")).to_have_value(re.compile(r"/invite#cci_"))
    expect(page.get_by_test_id("invite-emailed")).to_have_count(0)
