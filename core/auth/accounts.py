"""Accounts: sign-up (a user with a new tenant they own), password sign-in, users."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth.directory import MembershipInfo, UserInfo, normalize_email, user_info
from core.auth.passwords import Passwords, check_password_policy
from core.auth.throttle import LoginThrottle
from core.context import Role
from core.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from core.tenants import TenantInfo, TenantService, checked_slug
from core.text import check_text
from db.base import utcnow
from db.database import Database
from db.models.control import Membership, RefreshToken, User

_WRONG = "email or password is wrong; check both and try again"
_TAKEN = "an account with this email address exists already; sign in instead"


class AccountService:
    """Creates accounts and checks passwords (throttled before any hashing)."""

    def __init__(
        self,
        db: Database,
        tenants: TenantService,
        passwords: Passwords,
        throttle: LoginThrottle,
        *,
        signup_enabled: bool = True,
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._passwords = passwords
        self._throttle = throttle
        self._signup_enabled = signup_enabled

    async def signup(
        self, email: str, password: str, *, tenant_slug: str, tenant_name: str = "", display_name: str = ""
    ) -> tuple[UserInfo, MembershipInfo]:
        """Create a user, a tenant (with its schema) and make the user its owner: all of it, or nothing.

        Every field is checked before anything is written; the account and the membership are
        written in the transaction that activates the tenant, so a failure at any step (the
        address taken meanwhile, a cancelled request) leaves no account, tenant or schema.
        """
        if not self._signup_enabled:
            raise PermissionDenied("sign-up is closed on this installation; ask an administrator for an invite")
        address = normalize_email(email)
        checked_slug(tenant_slug)
        name = check_text(display_name.strip(), "display_name")
        check_text(tenant_name.strip(), "tenant_name")
        password_hash = await self._passwords.hash(password)
        if await self._email_taken(address):
            raise Conflict(_TAKEN)
        user = User(email=address, display_name=name, password_hash=password_hash, email_verified=False)

        async def add_owner(session: AsyncSession, tenant: TenantInfo) -> None:
            session.add(user)
            await session.flush()
            session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=Role.OWNER.value))

        try:
            tenant = await self._tenants.create(tenant_slug, tenant_name, finish=add_owner)
        except IntegrityError as exc:  # the address was taken meanwhile; the tenant is gone again
            raise Conflict(_TAKEN) from exc
        return user_info(user), MembershipInfo(tenant.id, tenant.slug, tenant.name, Role.OWNER)

    def new_user(self, email: str, password_hash: str | None, *, display_name: str = "") -> User:
        """An account row for `email` (checked), not yet written: the caller adds it in its transaction."""
        address = normalize_email(email)
        name = check_text(display_name.strip(), "display_name")
        return User(email=address, display_name=name, password_hash=password_hash)

    async def hash_password(self, password: str) -> str:
        """The stored form of a new password (the policy checked first)."""
        return await self._passwords.hash(password)

    async def _email_taken(self, address: str) -> bool:
        async with self._db.control_session() as session:
            return bool(await session.scalar(select(func.count()).select_from(User).where(User.email == address)))

    async def authenticate(self, email: str, password: str, *, address: str | None) -> UserInfo:
        """The user with this email and password, or `AuthenticationFailed` / `RateLimited`."""
        try:
            canonical = normalize_email(email)
        except InvalidInput:
            canonical = ""
        account = canonical or email
        hits = await self._throttle.begin(account, address)  # before hashing: refused guesses cost nothing
        async with self._db.control_session() as session:
            user = await session.scalar(select(User).where(User.email == canonical)) if canonical else None
        ok, new_hash = await self._passwords.verify(password, user.password_hash if user else None)
        if user is None or not ok:
            raise AuthenticationFailed(_WRONG)  # counted as a failure by `begin` already
        if not user.is_active:
            raise AuthenticationFailed("this account is disabled; ask an administrator")
        await self._throttle.succeeded(account, address, hits)
        if new_hash is not None:
            async with self._db.control_session() as session:
                await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
                await session.commit()
        return user_info(user)

    async def get(self, user_id: uuid.UUID) -> UserInfo:
        async with self._db.control_session() as session:
            user = await session.get(User, user_id)
        if user is None or not user.is_active:
            raise NotFound("no such user")
        return user_info(user)

    async def change_password(self, user_id: uuid.UUID, current: str, new: str) -> None:
        """Replace the password; every token and session of the user stops working."""
        check_password_policy(new)
        async with self._db.control_session() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("no such user")
            ok, _ = await self._passwords.verify(current, user.password_hash)
            if not ok:
                raise AuthenticationFailed("the current password is wrong; check it and try again")
            user.password_hash = await self._passwords.hash(new)
            user.token_version += 1
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await session.commit()
