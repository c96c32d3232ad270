"""Settings: embedded defaults, env prefixes, secrets refused outside development."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from core.errors import ConfigurationError
from core.settings import AppSettings
from core.tools import ToolSettings
from wiring.backends import Backends

STRONG = "x" * 40


def test_development_defaults_use_embedded_backends(clean_env: Path) -> None:
    settings = AppSettings.load()
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert Backends.describe(settings) == {
        "database": "sqlite",
        "event_bus": "in-process",
        "rate_limits": "in-process",
        "usage": "database",
        "sandbox": "bwrap",
        "secrets": "data-dir",
    }


def test_development_generates_secrets_once_with_mode_0600(clean_env: Path) -> None:
    first = AppSettings.load()
    second = AppSettings.load()
    key = first.security.secret_key.get_secret_value()
    assert len(key) >= 32
    assert key == second.security.secret_key.get_secret_value()
    assert first.security.master_keys.get_secret_value().startswith("k1:")
    for name in ("secret_key", "master_keys"):
        mode = (clean_env / "data" / "secrets" / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600


def test_backend_variables_select_production_backends(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:hunter2@db/x")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("MONGODB_URL", "mongodb://127.0.0.1:27017")
    monkeypatch.setenv("SANDBOX_BACKEND", "kubernetes")
    settings = AppSettings.load()
    backends = Backends.describe(settings)
    assert backends["database"] == "postgresql"
    assert backends["event_bus"] == backends["rate_limits"] == "redis"
    assert backends["usage"] == "mongodb"
    assert backends["sandbox"] == "kubernetes"
    assert "hunter2" not in repr(backends)


def test_every_area_reads_dot_env_in_the_working_directory(clean_env: Path) -> None:
    """What `.env.example` tells people to do: copy it to `.env` and edit; every area must see it."""
    (clean_env / ".env").write_text(
        "DATABASE_URL=postgresql+asyncpg://u:pw@db.example/cc\n"
        "DB_POOL_SIZE=3\n"
        "REDIS_URL=redis://127.0.0.1:6379/5\n"
        "MONGODB_URL=mongodb://127.0.0.1:27017\n"
        "SANDBOX_BACKEND=gvisor\n"
        "SANDBOX_KUBERNETES_CPU=1\n"
        "LLM_TENANT_RPM=7\n"
        "AUTH_ACCESS_TOKEN_TTL_S=120\n"
        "OIDC_DISPLAY_NAME=Acme SSO\n"
        "SMTP_HOST=mail.example\n"
        "SMTP_FROM=noreply@example.com\n"
        "SECRET_KEY=" + STRONG + "\n"
        "TOOLS_MAX_CONCURRENT_RUNS=3\n"
        "EXECUTOR_MAX_CONCURRENCY=5\n"
    )
    settings = AppSettings.load()
    assert settings.db.url == "postgresql+asyncpg://u:pw@db.example/cc"
    assert settings.db.pool_size == 3
    assert settings.redis.url == "redis://127.0.0.1:6379/5"
    assert settings.mongo.url == "mongodb://127.0.0.1:27017"
    assert settings.sandbox.backend == "gvisor"
    assert settings.sandbox.kubernetes_cpu == "1"
    assert settings.llm.tenant_rpm == 7
    assert settings.auth.access_token_ttl_s == 120
    assert settings.oidc.display_name == "Acme SSO"
    assert settings.mail.host == "mail.example"
    assert settings.mail.sender == "noreply@example.com"
    assert settings.security.secret_key.get_secret_value() == STRONG
    assert ToolSettings().max_concurrent_runs == 3
    assert settings.executor.max_concurrency == 5
    assert Backends.describe(settings)["database"] == "postgresql"


def test_the_environment_wins_over_dot_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("REDIS_URL=redis://from-dotenv:6379/0\nLLM_TENANT_RPM=7\n")
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/0")
    settings = AppSettings.load()
    assert settings.redis.url == "redis://from-env:6379/0"
    assert settings.llm.tenant_rpm == 7


@pytest.mark.parametrize(
    ("secret_key", "master_keys", "problem"),
    [
        ("", "", "SECRET_KEY is missing"),
        ("changeme", "k1:abc", "SECRET_KEY is missing or a placeholder"),
        ("short", "k1:abc", "at least 32"),
        (STRONG, "", "MASTER_KEYS is missing"),
    ],
)
def test_production_refuses_missing_or_default_secrets(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, secret_key: str, master_keys: str, problem: str
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secret_key)
    monkeypatch.setenv("MASTER_KEYS", master_keys)
    with pytest.raises(ConfigurationError, match=problem):
        AppSettings.load()
    assert not (clean_env / "data" / "secrets").exists()


def test_production_refuses_the_unsafe_sandbox(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.setenv("MASTER_KEYS", "k1:" + "A" * 43 + "=")
    monkeypatch.setenv("SANDBOX_BACKEND", "unsafe-subprocess")
    with pytest.raises(ConfigurationError, match="development only"):
        AppSettings.load()


def test_production_accepts_real_secrets_from_the_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.setenv("MASTER_KEYS", "k1:" + "A" * 43 + "=")
    settings = AppSettings.load()
    assert settings.security.secret_key.get_secret_value() == STRONG
    assert STRONG not in repr(settings)
    assert Backends.describe(settings)["secrets"] == "environment"


def test_env_example_documents_every_variable() -> None:
    documented = {
        line.split("=", 1)[0]
        for line in (Path(__file__).parents[2] / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    settings = AppSettings()
    expected = {f"APP_{name.upper()}" for name in ("env", "data_dir", "host", "port")}
    expected |= {"DATABASE_URL", "REDIS_URL", "MONGODB_URL", "SANDBOX_BACKEND", "MASTER_KEYS", "SECRET_KEY"}
    areas = [getattr(settings, name) for name in type(settings).model_fields]
    for area in (a for a in areas if isinstance(a, BaseSettings)):
        prefix = area.model_config.get("env_prefix", "")
        for name, field in type(area).model_fields.items():
            expected.add(str(field.validation_alias) if field.validation_alias else f"{prefix}{name}".upper())
    assert expected <= documented, f"undocumented: {sorted(expected - documented)}"


def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.setenv("MASTER_KEYS", "k1:" + "A" * 43 + "=")


@pytest.mark.parametrize(
    "issuer",
    ["http://login.example.com", "http://127.0.0.1:9000/realm", "http://localhost:8080", "ftp://login.example.com"],
)
def test_production_refuses_an_oidc_issuer_without_https(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, issuer: str
) -> None:
    _production(monkeypatch)
    monkeypatch.setenv("OIDC_ISSUER", issuer)
    monkeypatch.setenv("OIDC_CLIENT_ID", "crewcanvas")
    with pytest.raises(ConfigurationError, match=r"OIDC_ISSUER .* must be an https:// URL in production"):
        AppSettings.load()


def test_production_accepts_an_https_oidc_issuer(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch)
    monkeypatch.setenv("OIDC_ISSUER", "https://login.example.com/realms/crew")
    monkeypatch.setenv("OIDC_CLIENT_ID", "crewcanvas")
    assert AppSettings.load().oidc.enabled


@pytest.mark.parametrize("env", ["development", "test"])
@pytest.mark.parametrize("issuer", ["http://127.0.0.1:9000", "http://localhost:8080/realm", "http://[::1]:9000"])
def test_development_and_test_allow_an_http_issuer_on_loopback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, env: str, issuer: str
) -> None:
    monkeypatch.setenv("APP_ENV", env)
    monkeypatch.setenv("OIDC_ISSUER", issuer)
    monkeypatch.setenv("OIDC_CLIENT_ID", "crewcanvas")
    assert AppSettings.load().oidc.issuer == issuer


@pytest.mark.parametrize("env", ["development", "test"])
def test_development_refuses_an_http_issuer_off_loopback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv("APP_ENV", env)
    monkeypatch.setenv("OIDC_ISSUER", "http://login.example.com")
    monkeypatch.setenv("OIDC_CLIENT_ID", "crewcanvas")
    with pytest.raises(ConfigurationError, match=r"\(or http:// on a loopback address\)"):
        AppSettings.load()


@pytest.mark.parametrize(("host", "refused"), [("smtp.example.com", True), ("127.0.0.1", False)])
def test_production_refuses_an_smtp_password_sent_in_clear(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, host: str, refused: bool
) -> None:
    _production(monkeypatch)
    for name, value in {
        "SMTP_HOST": host,
        "SMTP_FROM": "crewcanvas@example.com",
        "SMTP_SECURITY": "none",
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": "mail-password",
    }.items():
        monkeypatch.setenv(name, value)
    if refused:
        with pytest.raises(ConfigurationError, match="SMTP_PASSWORD would travel unencrypted"):
            AppSettings.load()
    else:
        assert AppSettings.load().mail.enabled
