"""Helpers for the sandbox tests: running tool snippets and looking for leftovers on the host.

Test processes run side by side (pytest-xdist workers), and the others run tools too. So
the runs of this process's sandbox tests get a cgroup parent of their own,
``TEST_CGROUP_PARENT``, and the leak checks leave out what belongs to another worker: a
process in a run group below another CrewCanvas parent, or one that a sibling process (another
worker) started, at any depth (runsc commands of its sweeps, a launcher before it joins its
group). An orphan, whoever left it, still counts.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.base import Limits, SandboxBackend, ToolResult, ToolRun
from sandbox.cgroups import PARENT_NAME

#: Where the sandbox tests of this process put run cgroups (apps use ``PARENT_NAME`` below their own cgroup).
TEST_CGROUP_PARENT = f"{PARENT_NAME}-tests-{os.getpid()}"


async def run_tool(
    backend: SandboxBackend,
    source: str,
    arguments: dict[str, Any] | None = None,
    **limits: Any,
) -> ToolResult:
    """Run ``source`` (dedented) with ``arguments``; ``limits`` override ``Limits`` fields."""
    run = ToolRun(source=textwrap.dedent(source), input=arguments or {}, limits=Limits(**limits))
    return await backend.run(run)


def host_processes_matching(needle: str) -> list[int]:
    """Host pids whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def is_zombie(pid: int) -> bool:
    # gVisor's ptrace stubs end as zombies of host init, which reaps them lazily:
    # they hold no memory, files or cgroup and can run nothing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def sandbox_processes() -> list[int]:
    """Live host processes of sandbox runs (harness, bwrap, runsc for our bundles, the sandbox uid).

    Leaves out those of other processes' runs (see the module docstring); a process outside
    any run group still counts."""
    pids = set(host_processes_matching("/sandbox/harness.py"))
    pids |= set(host_processes_matching("crewcanvas-join"))
    pids |= set(host_processes_matching("crewcanvas-gvisor-"))
    pids |= {pid for pid in host_processes_matching("bwrap") if _is_bwrap(pid)}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == 65534:
                    pids.add(int(entry.name))
            except OSError:
                continue
    return sorted(pid for pid in pids if not is_zombie(pid) and not _another_workers(pid))


def _another_workers(pid: int) -> bool:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    if any(
        part.startswith(PARENT_NAME) and part != TEST_CGROUP_PARENT
        for line in lines
        for part in line.split(":", 2)[-1].split("/")
    ):
        return True
    me, parent = os.getpid(), os.getppid()
    while pid > 1:
        up = _parent_of(pid)
        if pid == me or up is None:
            return False
        if up == parent:
            return True  # started below a sibling of this process
        pid = up
    return False


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _is_bwrap(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve().name == "bwrap"
    except OSError:
        return False


async def wait_until_gone(pids_of: Callable[[], list[Any]], seconds: float = 3.0) -> list[Any]:
    """Poll ``pids_of()`` until it is empty or time runs out; killed tasks take a moment to vanish."""
    for _ in range(max(1, int(seconds / 0.05))):
        if not (left := pids_of()):
            return left
        await asyncio.sleep(0.05)
    return pids_of()


def mount_count() -> int:
    return len(Path("/proc/self/mountinfo").read_text().splitlines())
