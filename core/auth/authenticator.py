"""Bearer credentials -> who is calling -> their `TenantContext`, checked on every request.

Two kinds of bearer credential are accepted: access tokens (JWT, see `tokens`) and
personal API keys (`cck_...`). Either way the membership is read from the database on
every request, so roles changes and removals apply at once, whatever a token says.

Tenant selection: an API key is bound to its tenant. A user's access token may name a
tenant (`tid`, set at sign-in or by switching); the `X-Tenant` header (a slug) picks
another of the user's tenants per request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from core.auth.accounts import AccountService
from core.auth.api_keys import ApiKeyService, looks_like_api_key
from core.auth.directory import MembershipInfo, membership_of, memberships_of
from core.auth.refresh import RefreshTokens
from core.auth.tokens import AccessTokens
from core.context import Role, TenantContext
from core.errors import AuthenticationFailed, InvalidInput, NotFound
from db.database import Database
from db.models.control import User


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a sign-in or refresh returns to an API client."""

    access_token: str
    refresh_token: str
    expires_in: int
    tenant_slug: str | None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user, through an access token or one of their API keys."""

    user_id: uuid.UUID
    family_id: uuid.UUID | None = None  # access tokens: the sign-in they belong to
    tenant_id: uuid.UUID | None = None  # the tenant the token or key is bound to
    api_key_id: uuid.UUID | None = None
    key_role: Role | None = None


class Authenticator:
    """Signs API clients in and out and turns their credentials into contexts."""

    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        tokens: AccessTokens,
        refresh: RefreshTokens,
        api_keys: ApiKeyService,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._tokens = tokens
        self._refresh = refresh
        self._api_keys = api_keys

    async def login(
        self, email: str, password: str, *, address: str | None, tenant_slug: str | None = None
    ) -> TokenPair:
        """Check the password and start a sign-in (a refresh family) in `tenant_slug` or the first tenant."""
        user = await self._accounts.authenticate(email, password, address=address)
        return await self.start(user.id, tenant_slug)

    async def start(self, user_id: uuid.UUID, tenant_slug: str | None = None) -> TokenPair:
        """Start a sign-in for a user whose identity was just proven (password, sign-up, invite)."""
        async with self._db.control_session() as session:
            if tenant_slug:
                tenant = await membership_of(session, user_id, slug=tenant_slug)
                if tenant is None:
                    raise NotFound(f"you have no workspace named {tenant_slug[:50]!r}; sign in without one")
            else:
                tenants = await memberships_of(session, user_id)
                tenant = tenants[0] if tenants else None
        issued = await self._refresh.start_family(user_id, tenant.tenant_id if tenant else None)
        return await self._pair(user_id, issued.family_id, issued.token, tenant)

    async def _pair(
        self, user_id: uuid.UUID, family_id: uuid.UUID, refresh_token: str, tenant: MembershipInfo | None
    ) -> TokenPair:
        async with self._db.control_session() as session:
            version = await session.scalar(select(User.token_version).where(User.id == user_id))
        access = self._tokens.issue(
            user_id,
            token_version=version or 0,
            family_id=family_id,
            tenant_id=tenant.tenant_id if tenant else None,
        )
        return TokenPair(access, refresh_token, self._tokens.ttl_s, tenant.tenant_slug if tenant else None)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate the refresh token and issue a new access token (reuse revokes the sign-in)."""
        issued = await self._refresh.rotate(refresh_token)
        async with self._db.control_session() as session:
            user = await session.get(User, issued.user_id)
            if user is None or not user.is_active:
                raise AuthenticationFailed("this account is disabled; ask an administrator")
            tenant = (
                await membership_of(session, issued.user_id, tenant_id=issued.tenant_id) if issued.tenant_id else None
            )
        return await self._pair(issued.user_id, issued.family_id, issued.token, tenant)

    async def logout(self, principal: Principal, refresh_token: str | None = None) -> None:
        """End the caller's sign-in: its refresh tokens and access tokens stop working."""
        if principal.family_id is not None:
            await self._refresh.revoke_family(principal.family_id)
        if refresh_token:
            family = await self._refresh.family_of(refresh_token)
            if family is not None and family == principal.family_id:
                await self._refresh.revoke_family(family)

    async def principal(self, credential: str) -> Principal:
        """Who is behind a bearer credential; `AuthenticationFailed` if nobody (any more)."""
        if looks_like_api_key(credential):
            holder = await self._api_keys.authenticate(credential)
            async with self._db.control_session() as session:
                user = await session.get(User, holder.user_id)
            if user is None or not user.is_active:
                raise AuthenticationFailed("the owner of this API key is disabled; create a new key")
            return Principal(holder.user_id, tenant_id=holder.tenant_id, api_key_id=holder.key_id, key_role=holder.role)
        claims = self._tokens.verify(credential)
        async with self._db.control_session() as session:
            row = (
                await session.execute(select(User.is_active, User.token_version).where(User.id == claims.user_id))
            ).first()
        if row is None or not row[0]:
            raise AuthenticationFailed("access token refused: the account is disabled or gone; sign in again")
        if row[1] != claims.token_version:
            raise AuthenticationFailed("access token refused: the password changed since it was issued; sign in again")
        if not await self._refresh.family_is_live(claims.family_id):
            raise AuthenticationFailed("access token refused: you signed out or the sign-in was revoked; sign in again")
        return Principal(claims.user_id, family_id=claims.family_id, tenant_id=claims.tenant_id)

    async def context(self, principal: Principal, tenant_slug: str | None = None) -> TenantContext:
        """The caller's context in the selected tenant, with their role as of now."""
        async with self._db.control_session() as session:
            if principal.api_key_id is not None and principal.tenant_id and principal.key_role:
                found = await membership_of(session, principal.user_id, tenant_id=principal.tenant_id)
                if found is None:
                    raise AuthenticationFailed(
                        "API key refused: its owner is no longer a member of its tenant; create a new key"
                    )
                if tenant_slug and tenant_slug != found.tenant_slug:
                    raise NotFound(f"no tenant named {tenant_slug[:50]!r} for this API key; drop the X-Tenant header")
                role = min(principal.key_role, found.role, key=lambda r: r.rank)
                return TenantContext(found.tenant_id, found.tenant_slug, principal.user_id, role)
            if tenant_slug:
                found = await membership_of(session, principal.user_id, slug=tenant_slug)
                if found is None:
                    raise NotFound(f"you have no workspace named {tenant_slug[:50]!r}; pick one of yours")
                return found.context(principal.user_id)
            if principal.tenant_id is not None:
                found = await membership_of(session, principal.user_id, tenant_id=principal.tenant_id)
                if found is None:
                    raise AuthenticationFailed(
                        "access token refused: you are no longer a member of its tenant; "
                        "switch to another tenant or sign in again"
                    )
                return found.context(principal.user_id)
        raise InvalidInput("no tenant selected: send the X-Tenant header with a tenant slug, or switch tenant first")

    async def switch(self, principal: Principal, slug: str) -> str:
        """An access token for tenant `slug` (user sign-ins only; API keys are bound to one tenant)."""
        if principal.api_key_id is not None or principal.family_id is None:
            raise InvalidInput("API keys are bound to one workspace; create a key in the other workspace instead")
        async with self._db.control_session() as session:
            found = await membership_of(session, principal.user_id, slug=slug)
            version = await session.scalar(select(User.token_version).where(User.id == principal.user_id))
        if found is None:
            raise NotFound(f"you have no workspace named {slug[:50]!r}; pick one of yours")
        await self._refresh.set_tenant(principal.family_id, found.tenant_id)
        return self._tokens.issue(
            principal.user_id, token_version=version or 0, family_id=principal.family_id, tenant_id=found.tenant_id
        )
