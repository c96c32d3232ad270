"""Builds the identity services from settings; `Services.identity` holds the result."""

from __future__ import annotations

from dataclasses import dataclass

from core.auth.accounts import AccountService
from core.auth.api_keys import ApiKeyService
from core.auth.authenticator import Authenticator
from core.auth.invites import InviteService
from core.auth.members import MemberService
from core.auth.oidc import OIDCAccounts
from core.auth.passwords import Passwords
from core.auth.refresh import RefreshTokens
from core.auth.sessions import SessionService
from core.auth.throttle import AttemptLog, LoginThrottle, MemoryAttemptLog
from core.auth.tokens import AccessTokens
from core.errors import ConfigurationError
from core.mail import Mailer, build_mailer
from core.settings import AppSettings
from core.tenants import TenantService
from db.database import Database

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


def build_identity(
    settings: AppSettings,
    db: Database,
    tenants: TenantService,
    *,
    attempt_log: AttemptLog | None = None,
    mailer: Mailer | None = None,
) -> Identity:
    """Wire the identity services; nothing connects yet.

    `attempt_log` is the login throttle's backend, chosen and owned by `wiring.backends`
    (an in-process log when none is given). `mailer` defaults to the one `SMTP_*`
    describes (none when `SMTP_HOST` is empty).
    """
    auth = settings.auth
    if settings.env == "production" and (
        auth.argon2_memory_cost_kib < _MIN_PRODUCTION_MEMORY_KIB or auth.argon2_time_cost < _MIN_PRODUCTION_TIME_COST
    ):
        raise ConfigurationError(
            "AUTH_ARGON2_* is too cheap for production: use at least 19456 KiB of memory and a time cost of 2"
        )
    throttle = LoginThrottle(
        attempt_log if attempt_log is not None else MemoryAttemptLog(),
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
    )
