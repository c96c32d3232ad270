"""The SSRF guard: public addresses pass; private ones only when the operator allows them, all or by host."""

from __future__ import annotations

import pytest

from core.llm.ssrf import EndpointGuard
from core.llm.types import UnsafeEndpoint
from core.llm.wiring import build_llm
from core.ratelimit import MemoryRateLimiter
from core.settings import AppSettings
from core.usage import DatabaseUsageStore
from db.database import Database


async def test_loopback_is_refused_in_production_mode() -> None:
    with pytest.raises(UnsafeEndpoint, match="non-public address"):
        await EndpointGuard(allow_private=False).check("http://127.0.0.1:8000/v1")


async def test_an_allowed_host_and_port_passes_while_the_rest_of_loopback_stays_refused() -> None:
    guard = EndpointGuard(allow_private=False, allowed_hosts=["127.0.0.1:8000", "vllm.internal"])
    await guard.check("http://127.0.0.1:8000/v1")
    await guard.check("http://VLLM.internal:9000/v1")  # a bare host allows every port
    for refused in ("http://127.0.0.1:8001/v1", "http://127.0.0.2:8000/v1", "http://localhost:8000/v1"):
        with pytest.raises(UnsafeEndpoint, match="non-public address"):
            await guard.check(refused)


async def test_an_allowed_ipv6_host_is_written_in_brackets() -> None:
    guard = EndpointGuard(allow_private=False, allowed_hosts=["[::1]:8000"])
    await guard.check("http://[::1]:8000/v1")
    with pytest.raises(UnsafeEndpoint):
        await guard.check("http://[::1]:8001/v1")


async def test_the_operator_names_trusted_private_hosts_in_settings(
    clean_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_ALLOW_PRIVATE_ENDPOINTS", "false")
    monkeypatch.setenv("LLM_ALLOWED_PRIVATE_HOSTS", "vllm.internal:8000, 127.0.0.1:8000")
    settings = AppSettings.load()
    db = Database(settings.database_url, data_dir=settings.data_dir)
    stack = build_llm(settings, db, usage=DatabaseUsageStore(db), limiter=MemoryRateLimiter())
    guard = stack.llm._guard
    await guard.check("http://127.0.0.1:8000/v1")
    with pytest.raises(UnsafeEndpoint):
        await guard.check("http://127.0.0.1:9000/v1")
