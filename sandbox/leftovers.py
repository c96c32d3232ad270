"""What runs leave on the host when the app dies mid-run, and the sweep that removes it.

A hard crash of the app (SIGKILL, OOM kill, power loss) skips every
``finally``: per-run cgroups stay below our parent, gVisor work roots, bundles
and runsc state stay under the temp dir, and runsc containers may even keep
running (``runsc run`` has no die-with-parent). bubblewrap leaves no files (the
job arrives as memfds and its tmpfs lives in the run's mount namespace), and
``--die-with-parent`` ends its processes, but its cgroup stays.

Every run therefore holds a *run lock* for as long as it owns anything on the
host: an ``flock`` on a file named after the run, taken before the first thing
is created and released (file unlinked) after the last is gone. The kernel
drops the lock when its holder dies, however it dies, so a sweeper in any
process can tell whose leftovers it is looking at; several app processes may
share a host and each one sweeps at start::

    lock file present and held   the run is alive: never touched
    lock file present and free   its process died: kill what is left, remove it
    no lock file                 not ours to judge (another user's lock dir, a
                                 test, an older version): removed only when it
                                 is empty (no process) and older than a grace period

Who sweeps: ``SandboxBackend.sweep()`` on each backend (``bwrap``: cgroups;
``gvisor``: work roots, bundles, runsc containers, cgroups; ``kubernetes``:
expired Pods and ConfigMaps), called once by the app at start (core's tool
service) and by ``KubernetesBackend`` whenever it is probed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

from sandbox.base import SandboxFailure, SandboxUnavailable
from sandbox.cgroups import CgroupError, Cgroups

log = logging.getLogger(__name__)

#: How old an unlocked leftover must be before a sweeper may judge it on its own.
GRACE_SECONDS = 60.0
_LOCK_SUFFIX = ".lock"


class HeldLock:
    """An ``flock`` this process holds on ``path``; ``release()`` unlinks the file, then unlocks."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the lock up for good: the file goes first so nobody mistakes it for a dead run's."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def hold(path: Path) -> HeldLock:
    """Create ``path`` and lock it; raise ``SandboxFailure`` if that is impossible or it is taken."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise SandboxFailure(f"cannot create the run lock {path}: {exc}; check the lock directory") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:
        os.close(fd)
        raise SandboxFailure(f"run lock {path} is held by another process ({exc}); run ids must be unique") from exc
    return HeldLock(path, fd)


def claim(path: Path) -> HeldLock | None:
    """Lock the file of a run whose holder died; ``None`` if it is missing or still held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return HeldLock(path, fd)


def _private_dir(path: Path) -> Path:
    """``path`` as a directory only this uid can use (it lives in a shared temp dir)."""
    try:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = os.lstat(path)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot create the run lock directory {path}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise SandboxUnavailable(
            f"run lock directory {path} is not a private directory of uid {os.geteuid()}; remove it or "
            "configure another lock directory"
        )
    return path


def default_lock_dir() -> Path:
    """Where run locks live unless a backend is given another place: per uid, in the temp dir."""
    return Path(tempfile.gettempdir()) / f"crewcanvas-sandbox-runs-{os.geteuid()}"


class RunLocks:
    """The lock files of runs, one per run name, in one directory every app process of this uid shares."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_lock_dir()

    def path(self, name: str) -> Path:
        return self.directory / f"{name}{_LOCK_SUFFIX}"

    def check(self) -> None:
        """Make sure the lock directory exists and is private; raise ``SandboxUnavailable`` if not."""
        _private_dir(self.directory)

    def hold(self, name: str) -> HeldLock:
        """Mark run ``name`` alive until the returned lock is released (or this process dies)."""
        try:
            _private_dir(self.directory)
        except (OSError, SandboxUnavailable) as exc:
            raise SandboxFailure(str(exc)) from exc
        return hold(self.path(name))

    def claim(self, name: str) -> HeldLock | None:
        """The lock of run ``name`` if its process died; ``None`` if it is alive or has no lock file."""
        return claim(self.path(name))

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def sweep_stale(self, *, grace_seconds: float = GRACE_SECONDS, now: float | None = None) -> int:
        """Remove lock files of dead runs that have nothing left to clean (older than the grace period)."""
        now = time.time() if now is None else now
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in self.directory.iterdir():
                if not entry.name.endswith(_LOCK_SUFFIX) or _age(entry, now) < grace_seconds:
                    continue
                lock = claim(entry)
                if lock is not None:
                    lock.release()
                    removed += 1
        return removed


def _age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except OSError:
        return 0.0


def sweep_cgroups(
    cgroups: Cgroups, locks: RunLocks, *, grace_seconds: float = GRACE_SECONDS, now: float | None = None
) -> list[str]:
    """Remove run cgroups of dead runs below our parents; return their names.

    A group whose run lock is free is killed and removed. A group without a lock
    file is removed only when no process is in it and it is older than the grace
    period; a group whose lock is held is never touched.
    """
    if cgroups.version is None:
        return []
    now = time.time() if now is None else now
    removed: list[str] = []
    for name in sorted({path.name for path in cgroups.run_groups()}):
        group = cgroups.existing(name)
        if group is None:
            continue
        lock = locks.claim(name)
        if lock is None and (
            locks.exists(name) or group.pids() or min(_age(path, now) for path in group.dirs.values()) < grace_seconds
        ):
            continue
        try:
            group.remove()
        except CgroupError as exc:
            log.warning("could not sweep the leftover cgroup of sandbox run %s: %s", name, exc)
            continue
        finally:
            if lock is not None:
                lock.release()
        log.warning("swept the cgroup left behind by sandbox run %s", name)
        removed.append(name)
    return removed
