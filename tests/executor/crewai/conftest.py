"""CrewAI tests: CrewAI quiet and offline, writing what it stores under each test's folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def crewai_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "OTEL_SDK_DISABLED": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "CREWAI_TESTING": "true",
        "CREWAI_STORAGE_DIR": str(tmp_path / "crewai"),
    }.items():
        monkeypatch.setenv(name, value)
