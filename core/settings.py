"""Application settings: one pydantic-settings class per area, combined in `AppSettings`.

Nothing here is read at import time; `AppSettings.load()` is called once by `main.py`.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError

Environment = Literal["development", "test", "production"]

# Values that must never be accepted as real secrets outside development.
_PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "default"})


class EnvSettings(BaseSettings):
    """Base of every settings area: read from the environment and from `.env` in the working directory.

    The environment wins over `.env`; names unknown to an area are left to the others.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class DatabaseSettings(EnvSettings):
    """Relational store: SQLite files under `data/` by default, PostgreSQL in production."""

    model_config = SettingsConfigDict(env_prefix="DB_")

    url: str = Field(default="", validation_alias="DATABASE_URL")
    pool_size: int = 10
    max_overflow: int = 10
    migrate_concurrency: int = 4
    echo: bool = False


class RedisSettings(EnvSettings):
    """Event bus and rate limits: in-process by default, Redis when `REDIS_URL` is set."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")

    url: str = Field(default="", validation_alias="REDIS_URL")


class MongoSettings(EnvSettings):
    """Usage log: a relational table by default, MongoDB when `MONGODB_URL` is set."""

    model_config = SettingsConfigDict(env_prefix="MONGODB_")

    url: str = Field(default="", validation_alias="MONGODB_URL")
    database: str = "crewcanvas"


class SandboxSettings(EnvSettings):
    """Where untrusted tool code runs."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_")

    backend: Literal["bwrap", "gvisor", "kubernetes", "unsafe-subprocess"] = Field(
        default="bwrap", validation_alias="SANDBOX_BACKEND"
    )
    python: str = "/usr/bin/python3"
    kubernetes_namespace: str = "crewcanvas-sandbox"
    # Empty: the cluster's default runtime. gvisor is recommended for untrusted code.
    kubernetes_runtime_class: str = "gvisor"
    kubernetes_image: str = "python:3.11-slim"
    kubernetes_python: str = "/usr/local/bin/python3"
    kubernetes_cpu: str = "2"
    kubernetes_memory: str = "4Gi"
    kubernetes_ephemeral_storage: str = "10Gi"


class LLMSettings(EnvSettings):
    """LLM routing defaults."""

    model_config = SettingsConfigDict(env_prefix="LLM_")

    allow_private_endpoints: bool | None = None
    # Private hosts providers may use while the rest stays refused: comma-separated `host` or `host:port`.
    allowed_private_hosts: str = ""
    request_timeout_s: float = 60.0
    max_retries: int = 2
    failover_cooldown_s: float = 30.0
    # Per-tenant sliding-window limits (0 = unlimited); providers may set tighter ones.
    tenant_rpm: int = 600
    tenant_tpm: int = 1_000_000
    # The bundled local model (llama.cpp in-process).
    local_threads: int = 2
    local_context: int = 2048


class SecuritySettings(EnvSettings):
    """Secrets: master keys for credentials, the signing key for sessions and tokens."""

    model_config = SettingsConfigDict(env_prefix="SECURITY_")

    master_keys: SecretStr = Field(default=SecretStr(""), validation_alias="MASTER_KEYS")
    secret_key: SecretStr = Field(default=SecretStr(""), validation_alias="SECRET_KEY")


class AuthSettings(EnvSettings):
    """Sign-in: token lifetimes, Argon2 cost, login throttling."""

    model_config = SettingsConfigDict(env_prefix="AUTH_")

    access_token_ttl_s: int = Field(default=900, ge=30)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    session_ttl_s: int = Field(default=14 * 24 * 3600, ge=60)
    invite_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    issuer: str = "crewcanvas"
    audience: str = "crewcanvas-api"
    # Argon2id cost (pwdlib defaults); production refuses less than OWASP's 19 MiB.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
    # Failed sign-ins per window: per account from one address (then that address waits; others
    # do not), and per address over all accounts.
    login_window_s: int = Field(default=900, ge=1)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    # After this many failures on one account from all addresses together, addresses that never
    # signed in to it get `login_slowed_per_minute` attempts a minute (no lock-out: known ones pass).
    login_slowdown_after: int = Field(default=20, ge=1)
    login_slowed_per_minute: int = Field(default=6, ge=1)
    signup_enabled: bool = True


class OIDCSettings(EnvSettings):
    """Optional "Sign in with ..." through an OpenID Connect provider; off unless issuer and client id are set."""

    model_config = SettingsConfigDict(env_prefix="OIDC_")

    issuer: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    display_name: str = "single sign-on"
    scopes: str = "openid email profile"

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


class MailSettings(EnvSettings):
    """Outgoing mail (invitations) through an SMTP server; off unless `SMTP_HOST` is set."""

    model_config = SettingsConfigDict(env_prefix="SMTP_", populate_by_name=True)

    host: str = ""
    # 0: the usual port for `security` (25 for none, 587 for starttls, 465 for tls).
    port: int = Field(default=0, ge=0, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    sender: str = Field(default="", validation_alias="SMTP_FROM")
    security: Literal["none", "starttls", "tls"] = "starttls"
    timeout_s: float = Field(default=10.0, gt=0)
    # Invitation mails one tenant may send per hour (abuse guard).
    invites_per_hour: int = Field(default=50, ge=1)

    @property
    def enabled(self) -> bool:
        return bool(self.host.strip())

    @property
    def effective_port(self) -> int:
        return self.port or {"none": 25, "starttls": 587, "tls": 465}[self.security]

    @model_validator(mode="after")
    def _sender_when_enabled(self) -> MailSettings:
        if self.enabled and not self.sender.strip():
            raise ValueError("SMTP_HOST is set but SMTP_FROM is empty: set the address invitations are sent from")
        if self.password.get_secret_value() and not self.username:
            raise ValueError("SMTP_PASSWORD is set without SMTP_USERNAME: set both, or neither")
        return self


class ExecutorSettings(EnvSettings):
    """The flow engine: how many nodes run at once, per execution and per tenant (in each app process)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_")

    max_concurrency: int = Field(default=8, ge=1, le=256)
    tenant_concurrency: int = Field(default=32, ge=1, le=4096)
    # How often each process looks for waiting nodes whose deadline passed (human nodes' respond_within_s).
    timer_every_s: float = Field(default=2.0, gt=0, le=300)


class AppSettings(EnvSettings):
    """Every setting of the application, from the environment (and `.env`)."""

    model_config = SettingsConfigDict(env_prefix="APP_")

    env: Environment = "development"
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    # Request bodies under /api/ larger than this are refused with 413 before they are read whole.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The same for import routes (`.../import`: flow documents, crew projects), which carry more.
    max_import_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    oidc: OIDCSettings = Field(default_factory=OIDCSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> AppSettings:
        if self.env == "development" or self.env == "test":
            return self
        problems = []
        if self.security.secret_key.get_secret_value().strip().lower() in _PLACEHOLDER_SECRETS:
            problems.append("SECRET_KEY is missing or a placeholder")
        elif len(self.security.secret_key.get_secret_value()) < 32:
            problems.append("SECRET_KEY must be at least 32 characters")
        if self.security.master_keys.get_secret_value().strip().lower() in _PLACEHOLDER_SECRETS:
            problems.append("MASTER_KEYS is missing or a placeholder")
        if self.sandbox.backend == "unsafe-subprocess":
            problems.append("SANDBOX_BACKEND=unsafe-subprocess is for development only")
        if (
            self.mail.enabled
            and self.mail.security == "none"
            and self.mail.password.get_secret_value()
            and not _is_loopback(self.mail.host.strip())
        ):
            problems.append("SMTP_PASSWORD would travel unencrypted: set SMTP_SECURITY=starttls or tls")
        if problems:
            raise ValueError(f"refusing to start in {self.env}: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _refuse_insecure_oidc_issuer(self) -> AppSettings:
        issuer = self.oidc.issuer.strip()
        if not issuer:
            return self
        url = urlsplit(issuer)
        if url.scheme == "https" and url.hostname:
            return self
        local = self.env == "development" or self.env == "test"
        if url.scheme == "http" and url.hostname and local and _is_loopback(url.hostname):
            return self
        allowed = "an https:// URL" + (" (or http:// on a loopback address)" if local else "") + f" in {self.env}"
        raise ValueError(
            f"OIDC_ISSUER {issuer!r} is refused: the issuer must be {allowed}; tokens and the client "
            "secret would otherwise travel unencrypted. Use the provider's https:// issuer URL"
        )

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def database_url(self) -> str:
        """The configured database URL, or the embedded SQLite default under `data_dir`."""
        return self.db.url or f"sqlite+aiosqlite:///{(self.data_dir / 'control.db').resolve()}"

    @property
    def allow_private_llm_endpoints(self) -> bool:
        explicit = self.llm.allow_private_endpoints
        return self.is_development if explicit is None else explicit

    @classmethod
    def load(cls, **overrides: object) -> AppSettings:
        """Read settings from the environment; fill development secrets from `data_dir`."""
        try:
            settings = cls(**overrides)  # type: ignore[arg-type]  # pydantic accepts field overrides
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        if settings.is_development or settings.env == "test":
            settings.security = _with_local_secrets(settings.security, settings.data_dir)
        return settings


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_local_secrets(security: SecuritySettings, data_dir: Path) -> SecuritySettings:
    """In development, generate missing secrets once into `data_dir/secrets/` (mode 0600)."""
    secret_key = security.secret_key.get_secret_value() or _local_secret(
        data_dir, "secret_key", lambda: secrets.token_urlsafe(48)
    )
    master_keys = security.master_keys.get_secret_value() or _local_secret(
        data_dir, "master_keys", lambda: "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode()
    )
    return SecuritySettings(master_keys=SecretStr(master_keys), secret_key=SecretStr(secret_key))


def _local_secret(data_dir: Path, name: str, make: object) -> str:
    folder = data_dir / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / name
    if not path.exists():
        assert callable(make)
        value = str(make())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
    return path.read_text().strip()
