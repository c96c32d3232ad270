"""Builds the identity services from settings; `Services.identity` holds the result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.auth.accounts import AccountService
from core.auth.api_keys import ApiKeyService
from core.auth.authenticator import Authenticator
from core.auth.invites import InviteService
from core.auth.members import MemberService
from core.auth.oidc import OIDCAccounts
from core.auth.passwords import Passwords
from core.auth.refresh import RefreshTokens
from core.auth.sessions import SessionService
from core.auth.throttle import AttemptLog, LoginThrottle, MemoryAttemptLog, RedisAttemptLog
from core.auth.tokens import AccessTokens
from core.errors import ConfigurationError
from core.mail import Mailer, build_mailer
from core.settings import AppSettings
from core.tenants import TenantService
from db.database import Database

if TYPE_CHECKING:
    from redis.asyncio import Redis

# OWASP's floor for Argon2id (19 MiB, 2 passes); lower costs are for tests only.
_MIN_PRODUCTION_MEMORY_KIB = 19 * 1024
_MIN_PRODUCTION_TIME_COST = 2


@dataclass
class Identity:
    """Every identity service, built once."""

    accounts: AccountService
    auth: Authenticator
    members: MemberService
    invites: InviteService
    api_keys: ApiKeyService
    sessions: SessionService
    oidc: OIDCAccounts
    throttle: LoginThrottle
    # False when the throttle's log runs on a Redis client shared with the app: closing the
    # log would close that client, which belongs to whoever passed it in.
    owns_throttle_log: bool = True

    async def close(self) -> None:
        """Release what identity owns; a Redis client it was given is left to its owner."""
        if self.owns_throttle_log:
            await self.throttle.log.close()


def build_identity(
    settings: AppSettings,
    db: Database,
    tenants: TenantService,
    redis: Redis | None = None,
    *,
    mailer: Mailer | None = None,
) -> Identity:
    """Choose the throttle backend and wire the services; nothing connects yet.

    With `REDIS_URL` set, the login throttle runs on `redis`, a client shared with the rest
    of the app and closed by the caller; without one, a client of its own is made and closed
    by `Identity.close`. `mailer` defaults to the one `SMTP_*` describes (none when
    `SMTP_HOST` is empty).
    """
    auth = settings.auth
    if settings.env == "production" and (
        auth.argon2_memory_cost_kib < _MIN_PRODUCTION_MEMORY_KIB or auth.argon2_time_cost < _MIN_PRODUCTION_TIME_COST
    ):
        raise ConfigurationError(
            "AUTH_ARGON2_* is too cheap for production: use at least 19456 KiB of memory and a time cost of 2"
        )
    log: AttemptLog
    owns_log = True
    if settings.redis.url:
        if redis is None:
            from redis.asyncio import Redis

            redis = Redis.from_url(settings.redis.url)
        else:
            owns_log = False
        log = RedisAttemptLog(redis)
    else:
        log = MemoryAttemptLog()
    throttle = LoginThrottle(
        log,
        window_s=auth.login_window_s,
        per_account=auth.login_max_failures_per_account,
        per_address=auth.login_max_failures_per_ip,
        slowdown_after=auth.login_slowdown_after,
        slowed_per_minute=auth.login_slowed_per_minute,
    )
    passwords = Passwords(
        time_cost=auth.argon2_time_cost,
        memory_cost_kib=auth.argon2_memory_cost_kib,
        parallelism=auth.argon2_parallelism,
    )
    tokens = AccessTokens(
        settings.security.secret_key.get_secret_value(),
        issuer=auth.issuer,
        audience=auth.audience,
        ttl_s=auth.access_token_ttl_s,
    )
    refresh = RefreshTokens(db, ttl_s=auth.refresh_token_ttl_s)
    accounts = AccountService(db, tenants, passwords, throttle, signup_enabled=auth.signup_enabled)
    api_keys = ApiKeyService(db)
    return Identity(
        accounts=accounts,
        auth=Authenticator(db, accounts, tokens, refresh, api_keys),
        members=MemberService(db, tenants),
        invites=InviteService(
            db,
            accounts,
            ttl_s=auth.invite_ttl_s,
            mailer=mailer or build_mailer(settings.mail),
            public_url=settings.base_url,
            mails_per_hour=settings.mail.invites_per_hour,
        ),
        api_keys=api_keys,
        sessions=SessionService(db, ttl_s=auth.session_ttl_s),
        oidc=OIDCAccounts(db),
        throttle=throttle,
        owns_throttle_log=owns_log,
    )
