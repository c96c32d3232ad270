"""Fixtures for the sandbox tests: real backends, probed once per session.

bubblewrap is the default backend and must work wherever the tests run, so a
broken bwrap fails the suite. gVisor is optional: its tests skip with the
reason its probe gave (runsc missing, or it cannot start a container here).
Both put their runs' cgroups below this test process's own parent
(``helpers.TEST_CGROUP_PARENT``), removed at the end of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from sandbox.base import SandboxBackend
from sandbox.bwrap import BwrapBackend
from sandbox.cgroups import Cgroups
from sandbox.gvisor import GVisorBackend
from tests.sandbox.helpers import TEST_CGROUP_PARENT

LOCAL_BACKENDS = ["bwrap", "gvisor"]


@pytest.fixture(scope="session")
def cgroup_parent() -> Iterator[str]:
    """The cgroup parent of this process's sandbox test runs; its (then empty) groups removed at the end."""
    yield TEST_CGROUP_PARENT
    for path in Cgroups.discover(parent=TEST_CGROUP_PARENT).parents.values():
        with contextlib.suppress(OSError):  # a leaked run group keeps it; the leak checks report that
            path.rmdir()


@pytest.fixture(scope="session")
def bwrap_backend(cgroup_parent: str) -> BwrapBackend:
    backend = BwrapBackend(cgroup_parent=cgroup_parent)
    availability = asyncio.run(backend.available())
    if not availability:
        pytest.fail(f"bubblewrap (the default backend) cannot sandbox on this machine: {availability.reason}")
    return backend


@pytest.fixture(scope="session")
def gvisor_backend(cgroup_parent: str) -> Iterator[GVisorBackend]:
    backend = GVisorBackend(cgroup_parent=cgroup_parent)
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
