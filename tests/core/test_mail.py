"""Mail: SMTP delivery against a real server on loopback, its failures, and invitation mails.

The server is aiosmtpd (tests/fixtures/smtp.py); invitations run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from core.auth.identity import Identity, build_identity
from core.context import Role, TenantContext
from core.errors import ConfigurationError, PermissionDenied, RateLimited
from core.mail import Mailer, MailMessage, MailNotSent, NoMailer, SmtpMailer, build_mailer
from core.settings import AppSettings, AuthSettings, MailSettings, SecuritySettings
from core.tenants import TenantService
from db.database import Database
from tests.fixtures import smtp as _smtp
from tests.fixtures.smtp import MailServer, TlsPair, free_port, running_mail_server, silent_server, tls_pair

mail_server = _smtp.mail_server
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

PASSWORD = "correct horse battery"
SMTP_PASSWORD = "s3cret-smtp-pass-7f1c"
LINK = re.compile(r"https?://\S+/invite#(cci_\S+)")


def mailer_for(server: MailServer, **options: object) -> SmtpMailer:
    return SmtpMailer(server.host, server.port, sender="CrewCanvas <noreply@example.com>", security="none", **options)  # type: ignore[arg-type]  # keyword options of SmtpMailer


def hello(to: str = "ann@example.com") -> MailMessage:
    return MailMessage(to=to, subject="Hello", text="plain words", html="<p>html words</p>")


@pytest.fixture
def tls(tmp_path: Path) -> TlsPair:
    return tls_pair(tmp_path)


# -- SmtpMailer ------------------------------------------------------------------------------


async def test_a_message_arrives_with_text_and_html(mail_server: MailServer) -> None:
    await mailer_for(mail_server).send(hello())
    [received] = mail_server.to("ann@example.com")
    assert received.mail_from == "noreply@example.com"
    assert received.message["Subject"] == "Hello"
    assert received.message["From"] == "CrewCanvas <noreply@example.com>"
    assert received.message["Message-ID"].endswith("@example.com>")
    assert received.text().strip() == "plain words"
    assert received.html() is not None
    assert "html words" in (received.html() or "")


async def test_a_login_with_username_and_password_works() -> None:
    with running_mail_server(username="mailer", password=SMTP_PASSWORD) as server:
        await mailer_for(server, username="mailer", password=SecretStr(SMTP_PASSWORD)).send(hello())
        assert server.logins == [("mailer", True)]
        assert len(server.messages) == 1


async def test_a_wrong_password_is_a_readable_error_without_the_password() -> None:
    wrong = "not-the-" + SMTP_PASSWORD
    with running_mail_server(username="mailer", password=SMTP_PASSWORD) as server:
        mailer = mailer_for(server, username="mailer", password=SecretStr(wrong))
        with pytest.raises(MailNotSent) as caught:
            await mailer.send(hello())
        assert server.messages == []
    message = str(caught.value)
    assert f"mail server {server.host}:{server.port} refused the login of SMTP_USERNAME 'mailer'" in message
    assert "535" in message
    assert wrong not in message
    assert SMTP_PASSWORD not in message


async def test_a_server_that_wants_a_login_refuses_a_mailer_without_one() -> None:
    with running_mail_server(username="mailer", password=SMTP_PASSWORD) as server:
        with pytest.raises(MailNotSent, match=f"mail server {server.host}:{server.port} refused the sender"):
            await mailer_for(server).send(hello())
        assert server.messages == []


async def test_starttls_upgrades_the_connection_before_logging_in(tls: TlsPair) -> None:
    with running_mail_server(username="mailer", password=SMTP_PASSWORD, starttls=tls.server) as server:
        mailer = SmtpMailer(
            server.host,
            server.port,
            sender="noreply@example.com",
            security="starttls",
            username="mailer",
            password=SecretStr(SMTP_PASSWORD),
            ssl_context=tls.client,
        )
        await mailer.send(hello())
        assert len(server.messages) == 1


async def test_starttls_refuses_a_certificate_nobody_vouches_for(tls: TlsPair) -> None:
    with running_mail_server(starttls=tls.server) as server:
        mailer = SmtpMailer(server.host, server.port, sender="noreply@example.com", security="starttls")
        with pytest.raises(MailNotSent, match=r"failed the TLS handshake .*CERTIFICATE_VERIFY_FAILED.*SMTP_SECURITY"):
            await mailer.send(hello())
        assert server.messages == []


async def test_a_plain_mailer_is_refused_by_a_server_that_requires_starttls(tls: TlsPair) -> None:
    with (
        running_mail_server(starttls=tls.server) as server,
        pytest.raises(MailNotSent, match=r"refused the sender .*530"),
    ):
        await mailer_for(server).send(hello())


async def test_implicit_tls_from_the_first_byte(tls: TlsPair) -> None:
    with running_mail_server(implicit_tls=tls.server) as server:
        mailer = SmtpMailer(
            server.host, server.port, sender="noreply@example.com", security="tls", ssl_context=tls.client
        )
        await mailer.send(hello())
        assert len(server.messages) == 1


async def test_a_refused_recipient_names_the_address_and_the_reply(mail_server: MailServer) -> None:
    mail_server.refuse_recipients = True
    with pytest.raises(
        MailNotSent, match=r"refused the recipient bob@example\.com \(550 5\.1\.1 mailbox unavailable\)"
    ):
        await mailer_for(mail_server).send(hello("bob@example.com"))
    assert mail_server.messages == []


async def test_a_server_hanging_up_midway_is_a_readable_error(mail_server: MailServer) -> None:
    mail_server.drop_on_rcpt = True
    with pytest.raises(MailNotSent, match=f"mail server {mail_server.host}:{mail_server.port} closed the connection"):
        await mailer_for(mail_server).send(hello())


async def test_an_unreachable_server_says_which_and_what_to_check() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), sender="noreply@example.com", security="none")
    with pytest.raises(MailNotSent, match=r"cannot be reached \(.*refused.*\); check SMTP_HOST and SMTP_PORT"):
        await mailer.send(hello())


async def test_a_silent_server_times_out() -> None:
    with silent_server() as port:
        mailer = SmtpMailer("127.0.0.1", port, sender="noreply@example.com", security="none", timeout_s=0.5)
        with pytest.raises(MailNotSent, match=r"did not answer within 0\.5 s \(SMTP_TIMEOUT_S\)"):
            await mailer.send(hello())


async def test_a_header_with_a_line_break_is_refused(mail_server: MailServer) -> None:
    with pytest.raises(MailNotSent, match="headers"):
        await mailer_for(mail_server).send(MailMessage(to="ann@example.com", subject="Hi\nBcc: x@evil.test", text="t"))
    assert mail_server.messages == []


# -- settings and wiring -----------------------------------------------------------------------


def test_no_host_means_no_mailer() -> None:
    mailer = build_mailer(MailSettings(host=""))
    assert isinstance(mailer, NoMailer)
    assert not mailer.enabled


async def test_no_mailer_refuses_to_send() -> None:
    with pytest.raises(ConfigurationError, match="set SMTP_HOST and SMTP_FROM"):
        await NoMailer().send(hello())


def test_a_host_without_a_from_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="SMTP_FROM is empty"):
        MailSettings(host="smtp.example.com", sender="")


def test_a_password_without_a_username_is_refused() -> None:
    with pytest.raises(ValidationError, match="without SMTP_USERNAME"):
        MailSettings(host="smtp.example.com", sender="a@example.com", password=SecretStr("x"))


@pytest.mark.parametrize(("security", "port"), [("none", 25), ("starttls", 587), ("tls", 465)])
def test_the_port_follows_the_security_unless_set(security: str, port: int) -> None:
    settings = MailSettings(host="smtp.example.com", sender="a@example.com", security=security)  # type: ignore[arg-type]  # validated by pydantic
    assert settings.effective_port == port
    assert MailSettings(host="h", sender="a@b.c", security=security, port=2525).effective_port == 2525  # type: ignore[arg-type]  # as above


def test_settings_come_from_the_environment_and_hide_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SMTP_HOST": "smtp.example.com",
        "SMTP_FROM": "CrewCanvas <noreply@example.com>",
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_SECURITY": "tls",
        "SMTP_INVITES_PER_HOUR": "7",
    }.items():
        monkeypatch.setenv(name, value)
    settings = MailSettings()
    assert (settings.host, settings.sender, settings.security, settings.invites_per_hour) == (
        "smtp.example.com",
        "CrewCanvas <noreply@example.com>",
        "tls",
        7,
    )
    assert SMTP_PASSWORD not in repr(settings)
    mailer = build_mailer(settings)
    assert isinstance(mailer, SmtpMailer)
    assert mailer.server == "smtp.example.com:465"


def test_building_a_mailer_connects_nowhere() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        build_mailer(MailSettings(host="127.0.0.1", port=port, sender="a@example.com", security="none"))
        with pytest.raises(TimeoutError):
            listener.accept()


# -- invitation mails --------------------------------------------------------------------------


@dataclass
class World:
    """Identity services on one database, an owner and their tenant."""

    identity: Identity
    owner: TenantContext


def settings_for(tmp_path: Path, *, base_url: str = "", invites_per_hour: int = 50) -> AppSettings:
    return AppSettings(
        env="test",
        data_dir=tmp_path,
        base_url=base_url,
        security=SecuritySettings(secret_key=SecretStr("test-secret-key-for-tokens-0123456789abcdef")),
        auth=AuthSettings(argon2_time_cost=1, argon2_memory_cost_kib=64, argon2_parallelism=1),
        mail=MailSettings(invites_per_hour=invites_per_hour),
    )


async def make_world(db: Database, tmp_path: Path, mailer: Mailer | None, **settings: object) -> World:
    identity = build_identity(settings_for(tmp_path, **settings), db, TenantService(db), mailer=mailer)  # type: ignore[arg-type]  # keyword settings
    user, membership = await identity.accounts.signup(
        "owner@example.com", PASSWORD, tenant_slug="acme", tenant_name="Acme Rockets", display_name="Olive Owner"
    )
    ctx = TenantContext(membership.tenant_id, membership.tenant_slug, user.id, Role.OWNER)
    return World(identity, ctx)


@pytest.fixture
async def world(db: Database, tmp_path: Path, mail_server: MailServer) -> World:
    return await make_world(db, tmp_path, mailer_for(mail_server))


@pytest.fixture
def app_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, at every level, to check what never reaches a log."""
    caplog.set_level(logging.DEBUG)
    return caplog


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """What CrewCanvas logged (the test SMTP server's own log, which prints what it receives, aside)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))


async def test_the_invitation_mail_says_who_where_what_until_when_and_holds_the_link(
    world: World, mail_server: MailServer, app_logs: pytest.LogCaptureFixture
) -> None:
    created = await world.identity.invites.create(
        world.owner, "editor", "Carol@Example.com", base_url="http://crew.test:8080/"
    )
    assert created.emailed
    assert created.email_error is None
    assert created.link == f"http://crew.test:8080/invite#{created.token}"
    [received] = mail_server.to("carol@example.com")
    assert (
        received.message["Subject"].strip()
        == "Olive Owner (owner@example.com) invited you to Acme Rockets on CrewCanvas"
    )
    text = received.text()
    assert 'Olive Owner (owner@example.com) invited you (carol@example.com) to join "Acme Rockets" (acme)' in text
    assert "as editor, who may create, edit and run flows" in text
    assert created.info.expires_at.strftime("%Y-%m-%d %H:%M UTC") in text
    assert LINK.findall(text) == [created.token]
    assert text.count(created.token) == 1  # only inside the link
    html = received.html() or ""
    assert f'href="http://crew.test:8080/invite#{created.token}"' in html
    assert "Acme Rockets" in html
    assert created.token not in logged(app_logs)


async def test_the_token_from_the_mail_lets_that_address_join(world: World, mail_server: MailServer) -> None:
    await world.identity.invites.create(world.owner, "viewer", "dan@example.com", base_url="http://crew.test")
    [token] = LINK.findall(mail_server.to("dan@example.com")[0].text())
    preview = await world.identity.invites.preview(token)
    assert (preview.tenant_slug, preview.role, preview.email) == ("acme", Role.VIEWER, "dan@example.com")
    _user, joined = await world.identity.invites.sign_up(token, "dan@example.com", PASSWORD)
    assert (joined.tenant_slug, joined.role) == ("acme", Role.VIEWER)


async def test_app_base_url_wins_over_the_browser_address(
    db: Database, tmp_path: Path, mail_server: MailServer
) -> None:
    built = await make_world(db, tmp_path, mailer_for(mail_server), base_url="https://crew.example.com/")
    created = await built.identity.invites.create(built.owner, "viewer", "eve@example.com", base_url="http://x")
    assert created.link == f"https://crew.example.com/invite#{created.token}"
    assert LINK.findall(mail_server.to("eve@example.com")[0].text()) == [created.token]


async def test_an_invitation_without_an_address_sends_nothing(world: World, mail_server: MailServer) -> None:
    created = await world.identity.invites.create(world.owner, "editor", base_url="http://crew.test")
    assert (created.emailed, created.email_error) == (False, None)
    assert created.link.endswith(f"/invite#{created.token}")
    assert mail_server.messages == []


async def test_without_a_mail_server_the_invitation_is_only_a_link(db: Database, tmp_path: Path) -> None:
    built = await make_world(db, tmp_path, None)
    assert not built.identity.invites.mails_enabled
    created = await built.identity.invites.create(built.owner, "editor", "fay@example.com", base_url="http://c")
    assert (created.emailed, created.email_error) == (False, None)
    assert created.link == f"http://c/invite#{created.token}"


async def test_a_failed_mail_keeps_the_invitation_and_says_why(
    db: Database, tmp_path: Path, app_logs: pytest.LogCaptureFixture
) -> None:
    with running_mail_server(username="mailer", password=SMTP_PASSWORD) as server:
        built = await make_world(db, tmp_path, mailer_for(server, username="mailer", password=SecretStr("wrong-pw")))
        created = await built.identity.invites.create(built.owner, "viewer", "gus@example.com", base_url="http://c")
        pending = await built.identity.invites.pending(built.owner)
    assert not created.emailed
    assert created.email_error is not None
    assert f"mail server {server.host}:{server.port} refused the login" in created.email_error
    assert "wrong-pw" not in created.email_error
    assert [p.email for p in pending] == ["gus@example.com"]
    assert created.token not in logged(app_logs)
    assert "wrong-pw" not in logged(app_logs)


async def test_each_tenant_may_send_only_so_many_invitation_mails_an_hour(
    db: Database, tmp_path: Path, mail_server: MailServer
) -> None:
    built = await make_world(db, tmp_path, mailer_for(mail_server), invites_per_hour=2)
    invites = built.identity.invites
    for n in range(2):
        assert (await invites.create(built.owner, "viewer", f"p{n}@example.com", base_url="http://c")).emailed
    with pytest.raises(RateLimited, match=r"acme has sent 2 invitation mails in the last hour") as refused:
        await invites.create(built.owner, "viewer", "p2@example.com", base_url="http://c")
    assert 3000 < refused.value.retry_after <= 3600
    assert "invite without an address" in str(refused.value)
    assert [p.email for p in await invites.pending(built.owner)] == ["p0@example.com", "p1@example.com"]
    # A link for anyone sends no mail and is still allowed.
    assert not (await invites.create(built.owner, "viewer", base_url="http://c")).emailed
    # Another tenant has its own budget.
    other_user, other = await built.identity.accounts.signup("zed@example.com", PASSWORD, tenant_slug="zeta")
    zed = TenantContext(other.tenant_id, other.tenant_slug, other_user.id, Role.OWNER)
    assert (await invites.create(zed, "viewer", "p3@example.com", base_url="http://c")).emailed
    assert sorted(m.rcpt_tos[0] for m in mail_server.messages) == [
        "p0@example.com",
        "p1@example.com",
        "p3@example.com",
    ]


async def test_a_viewer_cannot_have_invitations_mailed(world: World, mail_server: MailServer) -> None:
    viewer = TenantContext(world.owner.tenant_id, world.owner.tenant_slug, world.owner.user_id, Role.VIEWER)
    with pytest.raises(PermissionDenied, match="cannot invite members"):
        await world.identity.invites.create(viewer, "viewer", "hal@example.com", base_url="http://c")
    assert mail_server.messages == []
