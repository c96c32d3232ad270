"""After a crash of the app: run locks, and the sweep that removes dead runs' leftovers only.

The crash tests start real app processes (``crash_child.py``), SIGKILL one of
them mid-run and sweep from a fresh backend, as the app does at start, while
another app process's run is still going: the dead run's cgroups, gVisor work
root, bundle, runsc state and container must be gone, the live run untouched.
Their run groups sit below this test process's own cgroup parent, so that an app
another test process starts meanwhile (it sweeps too) leaves the dead run to ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from sandbox.base import SandboxBackend
from sandbox.bwrap import BwrapBackend
from sandbox.cgroups import CgroupLimits, Cgroups, join_argv
from sandbox.gvisor import GVisorBackend
from sandbox.leftovers import RunLocks, sweep_cgroups
from tests.sandbox.helpers import TEST_CGROUP_PARENT, host_processes_matching, is_zombie, wait_until_gone

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parents[2]
LIMITS = CgroupLimits(memory_bytes=64 * 1024 * 1024, pids=8, cpu_cores=1)


# -- run locks ---------------------------------------------------------------------------------


def test_a_held_lock_cannot_be_claimed_and_a_dead_holders_can(tmp_path: Path) -> None:
    locks = RunLocks(tmp_path / "locks")
    held = locks.hold("alive-1")
    assert locks.claim("alive-1") is None
    assert locks.exists("alive-1")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(locks.path("dead-1"))], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    assert locks.claim("dead-1") is None
    holder.kill()
    holder.wait()
    claimed = locks.claim("dead-1")
    assert claimed is not None
    claimed.release()
    assert not locks.exists("dead-1")
    held.release()
    assert not locks.exists("alive-1")
    assert locks.claim("never-existed") is None


HOLD_SCRIPT = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_a_lock_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "locks"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(Exception, match="not a private directory"):
        RunLocks(shared).check()


@pytest.fixture
def private_cgroups() -> Iterator[Cgroups]:
    """Run groups under a parent of their own, so the rules can be tried without touching other runs."""
    parent = f"crewcanvas-sweep-test-{secrets.token_hex(4)}"
    cgroups = Cgroups.discover(parent=parent)
    if cgroups.version is None:
        pytest.skip(f"cgroups unavailable here: {cgroups.unavailable}")
    yield cgroups
    for name in {path.name for path in cgroups.run_groups()}:
        group = cgroups.existing(name)
        if group is not None:
            group.remove()
    for path in cgroups.parents.values():
        path.rmdir()


def test_sweep_removes_dead_runs_groups_and_leaves_live_and_unknown_ones(
    private_cgroups: Cgroups, tmp_path: Path
) -> None:
    locks = RunLocks(tmp_path / "locks")
    live_lock = locks.hold("live")
    private_cgroups.create("live", LIMITS)
    private_cgroups.create("dead", LIMITS)
    locks.check()
    locks.path("dead").write_text("4242\n")  # a lock file nobody holds: its process died
    private_cgroups.create("fresh-unlocked", LIMITS)
    busy = private_cgroups.create("busy-unlocked", LIMITS)
    sleeper = subprocess.Popen(join_argv(busy.procs_files, ["/usr/bin/sleep", "60"]))
    try:
        assert _wait(lambda: busy.pids() != [])
        assert sweep_cgroups(private_cgroups, locks) == ["dead"]
        assert not locks.exists("dead")
        # Without a lock file a group is judged only once it is old, and never while a process is in it.
        later = time.time() + 3600
        assert sweep_cgroups(private_cgroups, locks, now=later) == ["fresh-unlocked"]
        assert sorted({path.name for path in private_cgroups.run_groups()}) == ["busy-unlocked", "live"]
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        live_lock.release()


def test_a_dead_runs_processes_are_killed_with_its_group(private_cgroups: Cgroups, tmp_path: Path) -> None:
    locks = RunLocks(tmp_path / "locks")
    group = private_cgroups.create("orphaned", LIMITS)
    locks.check()
    locks.path("orphaned").write_text("4242\n")
    sleeper = subprocess.Popen(join_argv(group.procs_files, ["/usr/bin/sleep", "60"]))
    assert _wait(lambda: group.pids() != [])
    assert sweep_cgroups(private_cgroups, locks) == ["orphaned"]
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert private_cgroups.run_groups() == []


# -- a crash of the app, for real ----------------------------------------------------------------


class AppProcess:
    """A child app process running one slow tool (``crash_child.py``)."""

    def __init__(self, backend: str, seconds: float) -> None:
        self.run_id = f"{backend[:2]}-{secrets.token_hex(5)}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
        env["PYTHONPATH"] = str(REPO)
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), backend, self.run_id, str(seconds), TEST_CGROUP_PARENT],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.stdout: IO[str] = self.process.stdout

    def started(self) -> dict[str, Any]:
        line = self.stdout.readline()
        assert line, f"app process exited before running: {self.process.wait()}"
        started: dict[str, Any] = json.loads(line)
        if "unavailable" in started:
            pytest.skip(f"backend unavailable in a fresh process: {started['unavailable']}")
        return started

    def result(self, timeout: float = 60) -> dict[str, Any]:
        self.process.wait(timeout=timeout)
        result: dict[str, Any] = json.loads(self.stdout.read().strip().splitlines()[-1])
        return result

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _wait(condition: Any, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def _groups_of(cgroups: Cgroups, run_id: str) -> list[Path]:
    return [path for path in cgroups.run_groups() if path.name.startswith(f"{run_id}-")]


def _commands(cgroups: Cgroups, run_id: str) -> set[str]:
    """The command names of the run's live processes."""
    names: set[str] = set()
    for path in _groups_of(cgroups, run_id):
        group = cgroups.existing(path.name)
        for pid in group.pids() if group is not None else []:
            with contextlib.suppress(OSError):
                names.add(Path(f"/proc/{pid}/comm").read_text().strip())
    return names


def _busy(cgroups: Cgroups, run_id: str) -> bool:
    """Whether a process of the run still lives: a zombie waiting for host init to reap it runs nothing."""
    names = {path.name for path in _groups_of(cgroups, run_id)}
    return any(
        (group := cgroups.existing(name)) is not None and any(not is_zombie(pid) for pid in group.pids())
        for name in names
    )


@pytest.mark.parametrize("kind", ["bwrap", "gvisor"])
def test_sweep_after_a_crash_removes_the_dead_run_and_spares_a_live_one(
    kind: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(f"{kind}_backend")  # skips gVisor where it cannot run
    sweeper: SandboxBackend = (
        BwrapBackend(cgroup_parent=TEST_CGROUP_PARENT)
        if kind == "bwrap"
        else GVisorBackend(cgroup_parent=TEST_CGROUP_PARENT)
    )
    cgroups = Cgroups.discover(parent=TEST_CGROUP_PARENT)
    if cgroups.version is None:
        pytest.skip(f"cgroups unavailable here: {cgroups.unavailable}")
    victim = AppProcess(kind, seconds=90)
    live = AppProcess(kind, seconds=6 if kind == "bwrap" else 10)
    try:
        victim_root = victim.started()["work_root"]
        live_root = live.started()["work_root"]
        assert _wait(lambda: _busy(cgroups, victim.run_id) and _busy(cgroups, live.run_id))
        if kind == "bwrap":
            # Crash only once bubblewrap runs the tool: before that (the cgroup join shell, setpriv)
            # --die-with-parent is not set yet and the orphaned launcher goes on; the sweep is for that.
            assert _wait(lambda: "python3" in _commands(cgroups, victim.run_id))

        victim.kill()  # SIGKILL of the app process alone, as in a crash
        if kind == "bwrap":
            # --die-with-parent ends the sandbox; only its cgroup and run lock are left.
            assert _wait(lambda: not _busy(cgroups, victim.run_id), seconds=5)
        else:
            # runsc run has no die-with-parent: the container keeps running until swept.
            assert _busy(cgroups, victim.run_id)
            assert Path(victim_root, f"cc-{_groups_of(cgroups, victim.run_id)[0].name}").is_dir()
        assert _groups_of(cgroups, victim.run_id) != []

        removed = asyncio.run(sweeper.sweep())

        assert removed >= 1
        assert _groups_of(cgroups, victim.run_id) == []
        assert not any(path.name.startswith(victim.run_id) for path in sweeper.locks.directory.iterdir())  # type: ignore[attr-defined]
        if victim_root is not None:
            assert not Path(victim_root).exists()
            assert asyncio.run(wait_until_gone(lambda: host_processes_matching(victim_root))) == []
        # The other app process's run was mid-run during the sweep and is untouched.
        assert _busy(cgroups, live.run_id)
        if live_root is not None:
            assert (Path(live_root) / "rootfs").is_dir()

        result = live.result()
        assert result["reason"] == "ok", result
        assert result["output"] == "slept"
        assert _groups_of(cgroups, live.run_id) == []
        if live_root is not None:
            assert not Path(live_root).exists()
    finally:
        victim.kill()
        live.kill()
        asyncio.run(sweeper.aclose())
