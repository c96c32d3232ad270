"""Accounts from an OpenID Connect provider.

The browser flow (redirect, state, nonce, code exchange, id_token signature) is handled
by authlib in the UI layer; this module gets the *verified* id_token claims and decides
which user they are:

1. a known link (issuer, subject) -> that user;
2. otherwise, only if the provider says the email address is verified: the user with
   that address, now linked; or a new user without a password.

An unverified address is never used to link, so nobody can take over an account by
registering its address at some provider. The other way round, an account here whose
address was never verified may have been registered by someone else (sign-up does not
check addresses): when the address's verified owner arrives, that account's password,
sign-ins and API keys end, so whoever chose them cannot stay in. An account already linked to one identity at a
provider is not linked to a second one there by email: providers reassign addresses (a
mailbox handed to a new employee), and the new holder must not inherit the old account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.directory import UserInfo, normalize_email, user_info
from core.errors import AuthenticationFailed, Conflict, InvalidInput
from core.text import text_problem
from db.base import utcnow
from db.database import Database
from db.models.control import ApiKey, OIDCLink, RefreshToken, UISession, User


class OIDCAccounts:
    """Finds, links or creates the user behind verified OpenID Connect claims."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def sign_in(self, issuer: str, claims: Mapping[str, Any]) -> UserInfo:
        """The user for these verified id_token claims (see the module docstring)."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or text_problem(subject, "line", max_length=255):
            raise AuthenticationFailed("the identity provider sent no usable subject; try again or use a password")
        async with self._db.control_session() as session:
            linked = await session.scalar(
                select(User)
                .join(OIDCLink, OIDCLink.user_id == User.id)
                .where(OIDCLink.issuer == issuer, OIDCLink.subject == subject)
            )
            if linked is not None:
                if not linked.is_active:
                    raise AuthenticationFailed("this account is disabled; ask an administrator")
                return user_info(linked)
            if claims.get("email_verified") is not True:
                raise AuthenticationFailed(
                    "your email address is not verified at the identity provider; verify it there, "
                    "or sign in with a password"
                )
            try:
                address = normalize_email(str(claims.get("email") or ""))
            except InvalidInput as exc:
                raise AuthenticationFailed("the identity provider sent no usable email address") from exc
            user = await session.scalar(select(User).where(User.email == address))
            if user is None:
                name = str(claims.get("name") if isinstance(claims.get("name"), str) else "").strip()[:200]
                if text_problem(name, "name"):  # the provider's display name is a nicety: drop it, not the sign-in
                    name = ""
                user = User(email=address, display_name=name, password_hash=None, email_verified=True)
                session.add(user)
                await session.flush()
            elif not user.is_active:
                raise AuthenticationFailed("this account is disabled; ask an administrator")
            else:
                other = await session.scalar(
                    select(OIDCLink.id).where(OIDCLink.user_id == user.id, OIDCLink.issuer == issuer)
                )
                if other is not None:
                    raise AuthenticationFailed(
                        "the account with this email address is linked to another identity at this provider; "
                        "sign in with that identity or with a password"
                    )
                if not user.email_verified:
                    await _reclaim(session, user)
                user.email_verified = True
            session.add(OIDCLink(issuer=issuer, subject=subject, user_id=user.id, email=address))
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict("this sign-in was linked at the same moment elsewhere; try again") from exc
            return user_info(user)


async def _reclaim(session: AsyncSession, user: User) -> None:
    """End everything the holder of an unverified account may have set up (in the caller's transaction)."""
    now = utcnow()
    user.password_hash = None
    user.token_version += 1  # access tokens and browser sessions check it
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.execute(
        update(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    await session.execute(delete(UISession).where(UISession.user_id == user.id))
