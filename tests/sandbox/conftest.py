"""Fixtures for the sandbox tests: real backends, probed once per session.

bubblewrap is the default backend and must work wherever the tests run, so a
broken bwrap fails the suite. gVisor is optional: its tests skip with the
reason its probe gave (runsc missing, or it cannot start a container here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sandbox.base import SandboxBackend
from sandbox.bwrap import BwrapBackend
from sandbox.gvisor import GVisorBackend

LOCAL_BACKENDS = ["bwrap", "gvisor"]


@pytest.fixture(scope="session")
def bwrap_backend() -> BwrapBackend:
    backend = BwrapBackend()
    availability = asyncio.run(backend.available())
    if not availability:
        pytest.fail(f"bubblewrap (the default backend) cannot sandbox on this machine: {availability.reason}")
    return backend


@pytest.fixture(scope="session")
def gvisor_backend() -> Iterator[GVisorBackend]:
    backend = GVisorBackend()
    availability = asyncio.run(backend.available())
    if not availability:
        asyncio.run(backend.aclose())
        pytest.skip(f"gVisor unavailable here: {availability.reason}")
    yield backend
    asyncio.run(backend.aclose())


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> SandboxBackend:
    """Each local isolating backend in turn."""
    found: SandboxBackend = request.getfixturevalue(f"{request.param}_backend")
    return found
