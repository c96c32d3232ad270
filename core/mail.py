"""Outgoing mail: a `Mailer` protocol, an SMTP implementation and "no mail server configured".

`SmtpMailer` speaks SMTP with the standard library (`smtplib`) in a worker thread, one
connection per message, with a timeout and plain, STARTTLS or implicit TLS transport.
`NoMailer` is what runs when `SMTP_HOST` is empty: `enabled` is false and `send` refuses.
Nothing connects when either is built.

Errors (both are `core.errors` classes):

BackendUnavailable
└── MailNotSent        the server could not be reached or refused the message; the
                       message names the server, never the password or the body
ConfigurationError     `send` on `NoMailer`
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Literal, Protocol

from pydantic import SecretStr

from core.errors import BackendUnavailable, ConfigurationError
from core.settings import MailSettings

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]


class MailNotSent(BackendUnavailable):
    """The mail server could not be reached, or it refused the message."""


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One message to one recipient: a plain-text body and an optional HTML alternative."""

    to: str
    subject: str
    text: str
    html: str | None = None


class Mailer(Protocol):
    """Sends mail, or says that it cannot."""

    @property
    def enabled(self) -> bool:
        """Whether a mail server is configured."""

    @property
    def server(self) -> str:
        """`host:port` of the mail server, for messages to admins ("" when none)."""

    async def send(self, message: MailMessage) -> None:
        """Deliver `message` to the mail server, or raise `MailNotSent`."""


class NoMailer:
    """No mail server is configured: invitations are passed on by hand."""

    enabled = False
    server = ""

    async def send(self, message: MailMessage) -> None:
        raise ConfigurationError("no mail server is configured: set SMTP_HOST and SMTP_FROM to send mail")


class SmtpMailer:
    """Sends each message over its own SMTP connection, in a worker thread."""

    enabled = True

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        security: Security = "starttls",
        username: str = "",
        password: SecretStr | None = None,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._security = security
        self._username = username
        self._password = password or SecretStr("")
        self._timeout_s = timeout_s
        # None: the system's trust store, built when the first message goes out.
        self._ssl_context = ssl_context

    @property
    def server(self) -> str:
        return f"{self._host}:{self._port}"

    async def send(self, message: MailMessage) -> None:
        mail = self._compose(message)
        await asyncio.to_thread(self._deliver, mail, message.to)
        log.info("mail %r sent to %s through %s", message.subject, message.to, self.server)

    def _compose(self, message: MailMessage) -> EmailMessage:
        mail = EmailMessage()
        try:
            mail["From"] = self._sender
            mail["To"] = message.to
            mail["Subject"] = message.subject
        except ValueError as exc:  # a header with a line break would smuggle in more headers
            raise MailNotSent(f"cannot write this mail's headers: {exc}") from exc
        mail["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2].strip("> ") or None)
        mail.set_content(message.text)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        return mail

    def _deliver(self, mail: EmailMessage, recipient: str) -> None:
        try:
            self._converse(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise self._error(
                f"refused the login of SMTP_USERNAME {self._username!r} ({_reply(exc)}); check SMTP_USERNAME and "
                "SMTP_PASSWORD",
                exc,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            replies = "; ".join(f"{code} {_text(text)}" for code, text in exc.recipients.values())
            raise self._error(f"refused the recipient {recipient} ({replies})", exc) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise self._error(f"refused the sender SMTP_FROM {exc.sender!r} ({_reply(exc)})", exc) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise self._error(
                f"does not support what was asked ({exc}); check SMTP_SECURITY and SMTP_USERNAME", exc
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read timeout as a hang-up
                raise self._error(f"did not answer within {self._timeout_s:g} s (SMTP_TIMEOUT_S)", exc) from exc
            raise self._error("closed the connection before the mail was accepted; try again later", exc) from exc
        except smtplib.SMTPResponseException as exc:
            raise self._error(f"refused the mail ({_reply(exc)})", exc) from exc
        except smtplib.SMTPException as exc:
            raise self._error(f"failed: {exc}", exc) from exc
        except ssl.SSLError as exc:
            raise self._error(
                f"failed the TLS handshake ({exc.reason or exc}); check SMTP_SECURITY, SMTP_PORT and the server's "
                "certificate",
                exc,
            ) from exc
        except TimeoutError as exc:
            raise self._error(f"did not answer within {self._timeout_s:g} s (SMTP_TIMEOUT_S)", exc) from exc
        except OSError as exc:
            raise self._error(f"cannot be reached ({exc.strerror or exc}); check SMTP_HOST and SMTP_PORT", exc) from exc

    def _converse(self, mail: EmailMessage) -> None:
        context = self._ssl_context
        if context is None and self._security != "none":
            context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self._security == "tls":
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        with smtp:
            if self._security == "starttls":
                smtp.starttls(context=context)
            if self._username:
                smtp.login(self._username, self._password.get_secret_value())
            smtp.send_message(mail)

    def _error(self, what: str, exc: BaseException) -> MailNotSent:
        message = f"mail server {self.server} {what}"
        secret = self._password.get_secret_value()
        if secret:  # a server that echoes what it was sent must not leak the password through us
            message = message.replace(secret, "***")
        log.warning("%s (%s)", message, type(exc).__name__)
        return MailNotSent(message)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def build_mailer(settings: MailSettings) -> Mailer:
    """`SmtpMailer` when `SMTP_HOST` is set, else `NoMailer`; nothing connects yet."""
    if not settings.enabled:
        return NoMailer()
    return SmtpMailer(
        settings.host.strip(),
        settings.effective_port,
        sender=settings.sender.strip(),
        security=settings.security,
        username=settings.username,
        password=settings.password,
        timeout_s=settings.timeout_s,
    )
