"""Helpers for the sandbox tests: running tool snippets and looking for leftovers on the host."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.base import Limits, SandboxBackend, ToolResult, ToolRun


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
    """Live host processes of sandbox runs (harness, bwrap, runsc for our bundles, the sandbox uid)."""
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
    return sorted(pid for pid in pids if not is_zombie(pid))


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
