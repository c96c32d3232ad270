"""Invitations: a one-time link to join a tenant with a role, optionally for one email address.

The link's token is shown once to the admin who created it and stored only as a digest.
With an address and a configured mail server, the link is also mailed to that address
(one mail per invitation, at most `mails_per_hour` per tenant); the admin is shown the
link either way. The token appears only in the link's fragment, never in a log line.
"""

from __future__ import annotations

import html
import math
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.accounts import AccountService
from core.auth.directory import MembershipInfo, UserInfo, aware, normalize_email, parse_role, user_info
from core.auth.opaque import digest, new_secret
from core.context import Role, TenantContext
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RateLimited
from core.mail import Mailer, MailMessage, MailNotSent, NoMailer
from db.base import utcnow
from db.database import Database
from db.models.control import Invite, Membership, Tenant, User


@dataclass(frozen=True, slots=True)
class InviteInfo:
    """A pending invitation as admins see it (never its token)."""

    id: uuid.UUID
    role: Role
    email: str | None
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedInvite:
    """A new invitation, its token and link (shown this once), and whether the link was mailed."""

    info: InviteInfo
    token: str
    link: str = ""
    emailed: bool = False
    # Why the mail could not be sent (no secrets), when it was attempted and failed.
    email_error: str | None = None


@dataclass(frozen=True, slots=True)
class InvitePreview:
    """What someone opening an invite link is told before accepting."""

    tenant_slug: str
    tenant_name: str
    role: Role
    email: str | None


_MAIL_WINDOW = timedelta(hours=1)

_ROLE_MEANS = {
    Role.VIEWER: "see the tenant's flows and runs",
    Role.EDITOR: "create, edit and run flows",
    Role.ADMIN: "create, edit and run flows, and manage members and providers",
}


def _person(user: User | None) -> str:
    if user is None:
        return "An admin"
    return f"{user.display_name} ({user.email})" if user.display_name else user.email


def _one_line(text: str) -> str:
    return " ".join(text.split())


def invitation_mail(
    info: InviteInfo, link: str, *, to: str, tenant_name: str, tenant_slug: str, inviter: str
) -> MailMessage:
    """The invitation mail: who invites whom to which tenant as what, the link, and until when."""
    tenant, inviter = _one_line(tenant_name), _one_line(inviter)
    expires = info.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    means = _ROLE_MEANS.get(info.role, "")
    text = (
        f"Hello,\n\n"
        f'{inviter} invited you ({to}) to join "{tenant}" ({tenant_slug}) on CrewCanvas as {info.role}'
        f"{', who may ' + means if means else ''}.\n\n"
        f"Accept the invitation here:\n{link}\n\n"
        f"The link works once and expires on {expires}. Sign in or sign up as {to} to accept it.\n"
        "If you did not expect this invitation, you can ignore this mail.\n"
    )
    e = html.escape
    page = (
        "<!doctype html><html><body>"
        f"<p>Hello,</p><p>{e(inviter)} invited you ({e(to)}) to join <b>{e(tenant)}</b> ({e(tenant_slug)}) "
        f"on CrewCanvas as <b>{e(info.role.value)}</b>{e(', who may ' + means) if means else ''}.</p>"
        f'<p><a href="{e(link, quote=True)}">Accept the invitation</a></p>'
        f"<p>The link works once and expires on {e(expires)}. Sign in or sign up as {e(to)} to accept it.<br>"
        "If you did not expect this invitation, you can ignore this mail.</p>"
        "</body></html>"
    )
    return MailMessage(to=to, subject=f"{inviter} invited you to {tenant} on CrewCanvas", text=text, html=page)


def _info(invite: Invite) -> InviteInfo:
    return InviteInfo(invite.id, Role(invite.role), invite.email, aware(invite.expires_at), aware(invite.created_at))


class InviteService:
    """Creates, lists, revokes and accepts invitations."""

    PREFIX = "cci_"

    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        *,
        ttl_s: int,
        mailer: Mailer | None = None,
        public_url: str = "",
        mails_per_hour: int = 50,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._ttl = timedelta(seconds=ttl_s)
        self._mailer: Mailer = mailer or NoMailer()
        self._public_url = public_url.rstrip("/")
        self._mails_per_hour = mails_per_hour

    @property
    def mails_enabled(self) -> bool:
        """Whether invitations for an address are mailed (a mail server is configured)."""
        return self._mailer.enabled

    async def create(
        self, ctx: TenantContext, role: str | Role, email: str | None = None, *, base_url: str = ""
    ) -> CreatedInvite:
        """Invite someone as `role` (admin or higher; never above your own role, never owner).

        The link starts with APP_BASE_URL when set, else with `base_url` (the address the
        caller's browser used). With `email` and a mail server, the link is mailed too;
        a failed mail leaves the invitation in place and says why in `email_error`.
        """
        ctx.require(Role.ADMIN, "invite members")
        wanted = parse_role(str(role))
        if wanted is Role.OWNER:
            raise InvalidInput("nobody can be invited as owner; invite an admin and transfer ownership later")
        if wanted.rank > ctx.role.rank:
            raise PermissionDenied(f"you cannot invite someone as '{wanted}', which is above your own role")
        address = normalize_email(email) if email and email.strip() else None
        mailing = address is not None and self._mailer.enabled
        if mailing:
            await self._check_mail_budget(ctx)
        token = new_secret(self.PREFIX)
        invite = Invite(
            tenant_id=ctx.tenant_id,
            role=wanted.value,
            email=address,
            token_hash=digest(token),
            invited_by=ctx.user_id,
            expires_at=utcnow() + self._ttl,
        )
        async with self._db.control_session() as session:
            session.add(invite)
            await session.commit()
            tenant = await session.get(Tenant, ctx.tenant_id)
            inviter = await session.get(User, ctx.user_id) if ctx.user_id is not None else None
        created = CreatedInvite(_info(invite), token, f"{self._public_url or base_url.rstrip('/')}/invite#{token}")
        if not mailing or address is None:
            return created
        if not created.link.startswith(("http://", "https://")):
            return replace(created, email_error="this site's address is unknown: set APP_BASE_URL to mail links")
        message = invitation_mail(
            created.info,
            created.link,
            to=address,
            tenant_name=tenant.name if tenant is not None else ctx.tenant_slug,
            tenant_slug=ctx.tenant_slug,
            inviter=_person(inviter),
        )
        try:
            await self._mailer.send(message)
        except MailNotSent as exc:
            return replace(created, email_error=str(exc))
        return replace(created, emailed=True)

    async def _check_mail_budget(self, ctx: TenantContext) -> None:
        """Refuse a mail beyond `mails_per_hour` invitations for an address in this tenant."""
        now = utcnow()
        async with self._db.control_session() as session:
            recent = list(
                await session.scalars(
                    select(Invite.created_at)
                    .where(
                        Invite.tenant_id == ctx.tenant_id,
                        Invite.email.is_not(None),
                        Invite.created_at > now - _MAIL_WINDOW,
                    )
                    .order_by(Invite.created_at.desc())
                    .limit(self._mails_per_hour)
                )
            )
        if len(recent) < self._mails_per_hour:
            return
        retry_after = max((aware(recent[-1]) + _MAIL_WINDOW - now).total_seconds(), 1.0)
        raise RateLimited(
            f"{ctx.tenant_slug} has sent {self._mails_per_hour} invitation mails in the last hour, the most allowed "
            f"(SMTP_INVITES_PER_HOUR); try again in {math.ceil(retry_after / 60)} min, or invite without an "
            "address and pass the link on yourself",
            retry_after=retry_after,
        )

    async def pending(self, ctx: TenantContext) -> list[InviteInfo]:
        """Invitations of this tenant neither accepted, revoked nor expired."""
        ctx.require(Role.ADMIN, "see invitations")
        async with self._db.control_session() as session:
            rows = await session.scalars(
                select(Invite)
                .where(
                    Invite.tenant_id == ctx.tenant_id,
                    Invite.accepted_at.is_(None),
                    Invite.revoked_at.is_(None),
                    Invite.expires_at > utcnow(),
                )
                .order_by(Invite.created_at)
            )
            return [_info(r) for r in rows]

    async def revoke(self, ctx: TenantContext, invite_id: uuid.UUID) -> None:
        """Withdraw a pending invitation of this tenant."""
        ctx.require(Role.ADMIN, "revoke invitations")
        async with self._db.control_session() as session:
            result = await session.execute(
                update(Invite)
                .where(Invite.id == invite_id, Invite.tenant_id == ctx.tenant_id, Invite.accepted_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE results carry rowcount
            raise NotFound("no such pending invitation in this workspace")

    async def _usable(self, token: str) -> tuple[Invite, Tenant]:
        async with self._db.control_session() as session:
            row = (
                await session.execute(
                    select(Invite, Tenant)
                    .join(Tenant, Tenant.id == Invite.tenant_id)
                    .where(Invite.token_hash == digest(token.strip()))
                )
            ).first()
        if row is None or row[1].status != "active" or row[0].revoked_at is not None:
            raise NotFound("this invitation link is not valid; ask for a new one")
        invite, tenant = row[0], row[1]
        if invite.accepted_at is not None:
            raise Conflict("this invitation has been used already; ask for a new one")
        if aware(invite.expires_at) <= utcnow():
            raise Conflict("this invitation has expired; ask for a new one")
        return invite, tenant

    async def preview(self, token: str) -> InvitePreview:
        """Which tenant and role the invitation is for (without accepting it)."""
        invite, tenant = await self._usable(token)
        return InvitePreview(tenant.slug, tenant.name, Role(invite.role), invite.email)

    async def accept(self, token: str, user_id: uuid.UUID) -> MembershipInfo:
        """Join the tenant with the invited role; the invitation cannot be used again."""
        invite, tenant = await self._usable(token)
        async with self._db.control_session() as session:
            user = await session.get(User, user_id)
            if user is None or not user.is_active:
                raise NotFound("no such user")
            if invite.email is not None and invite.email != user.email:
                raise PermissionDenied(
                    "this invitation is for another email address; sign in as that address to accept it"
                )
        # Its own transaction, starting with the write: SQLite (WAL) refuses to upgrade a read
        # transaction to a write once another writer got in first ("database is locked").
        async with self._db.control_session() as session:
            await self._claim(session, invite, user_id)
            session.add(Membership(tenant_id=tenant.id, user_id=user_id, role=invite.role))
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(f"you are a member of {tenant.name!r} already") from exc
        return MembershipInfo(tenant.id, tenant.slug, tenant.name, Role(invite.role))

    async def _claim(self, session: AsyncSession, invite: Invite, user_id: uuid.UUID) -> None:
        """Mark the invitation used by `user_id`; `Conflict` if someone was faster (the transaction rolls back)."""
        taken = await session.execute(
            update(Invite)
            .where(Invite.id == invite.id, Invite.accepted_at.is_(None))
            .values(accepted_at=utcnow(), accepted_by=user_id)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]  # UPDATE results carry rowcount
            raise Conflict("this invitation has been used already; ask for a new one")

    async def sign_up(
        self, token: str, email: str, password: str, *, display_name: str = ""
    ) -> tuple[UserInfo, MembershipInfo]:
        """Create an account through an invitation and join its tenant (no tenant of one's own).

        The account exists only if the invitation is accepted: claiming the invitation,
        creating the account and the membership are one transaction, so of several sign-ups
        racing for one invitation exactly one creates an account.
        """
        invite, tenant = await self._usable(token)
        address = normalize_email(email)
        if invite.email is not None and invite.email != address:
            raise PermissionDenied("this invitation is for another email address; sign up with that address")
        user = self._accounts.new_user(address, None, display_name=display_name)
        user.password_hash = await self._accounts.hash_password(password)
        async with self._db.control_session() as session:
            session.add(user)
            try:
                await session.flush()  # the first write: it takes SQLite's write lock
            except IntegrityError as exc:
                raise Conflict("an account with this email address exists already; sign in instead") from exc
            await self._claim(session, invite, user.id)
            session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=invite.role))
            await session.commit()
        return user_info(user), MembershipInfo(tenant.id, tenant.slug, tenant.name, Role(invite.role))
