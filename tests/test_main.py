"""The command line: --help, and the tenant admin commands on a fresh data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run_main(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "MONGODB_URL"}}
    clean |= {"APP_DATA_DIR": str(cwd / "data")} | (env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_options(tmp_path: Path) -> None:
    result = run_main("--help", cwd=tmp_path)
    assert result.returncode == 0
    for option in ("--host", "--port", "--native", "--reload", "migrate", "create-tenant", "delete-tenant"):
        assert option in result.stdout


def test_tenant_commands_create_migrate_and_delete(tmp_path: Path) -> None:
    created = run_main("create-tenant", "acme", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "data" / "tenants" / "acme.db").exists()
    assert run_main("migrate", cwd=tmp_path).returncode == 0

    refused = run_main("create-tenant", "pg_catalog", cwd=tmp_path)
    assert refused.returncode == 2
    assert "reserved" in refused.stderr

    wrong = run_main("delete-tenant", "acme", "--confirm", "nope", cwd=tmp_path)
    assert wrong.returncode == 2
    assert (tmp_path / "data" / "tenants" / "acme.db").exists()
    deleted = run_main("delete-tenant", "acme", "--confirm", "acme", cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert not (tmp_path / "data" / "tenants" / "acme.db").exists()


def test_production_without_secrets_refuses_to_start(tmp_path: Path) -> None:
    result = run_main("migrate", cwd=tmp_path, env={"APP_ENV": "production", "SECRET_KEY": "", "MASTER_KEYS": ""})
    assert result.returncode != 0
    assert "SECRET_KEY is missing" in result.stderr


def test_the_app_starts_without_importing_crewai_or_litellm(tmp_path: Path) -> None:
    """Importing CrewAI takes seconds: it happens in the thread of the first crew, never at start-up."""
    probe = (
        "import sys\n"
        "import main, api.app, ui.app\n"
        "from wiring.services import build_services\n"
        "from core.settings import AppSettings\n"
        "services = build_services(AppSettings())\n"
        "print(sorted(m for m in ('crewai', 'litellm', 'chromadb') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "MONGODB_URL"}}
    env |= {"APP_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
