"""Per-run cgroups: memory, pids and CPU limits, OOM evidence, and tree kill.

Per-run groups are created *below this process's own cgroup* (in every
hierarchy), under a ``crewcanvas-sandbox`` parent, so sandboxed tools stay
accounted to the app and inside whatever limits its supervisor set. Hybrid
hosts (cgroup v1 controllers plus an empty v2 mount) use v1; pure v2 hosts
need a cgroup this process may delegate into (systemd ``Delegate=yes``): pass
``parent=`` then. When neither works, :meth:`Cgroups.discover` records why and
backends fall back to rlimits with a note on every result.

Processes enter a group race-free through :func:`join_argv`: a tiny shell
writes its own pid into ``cgroup.procs`` and then ``exec``s the sandbox, so
nothing runs outside the group even for a moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sandbox.base import SandboxError

PARENT_NAME = "crewcanvas-sandbox"
_CPU_PERIOD_US = 100_000
_KILL_SECONDS = 3.0

# The shell would export PWD (the launcher's working directory) to everything it execs.
_JOIN_SCRIPT = """unset PWD OLDPWD; n=$1; shift
while [ "$n" -gt 0 ]; do printf '%s\\n' "$$" > "$1" || exit 125; shift; n=$((n - 1)); done
exec "$@"
"""
#: Exit status of :func:`join_argv`'s shell when it could not enter the cgroup.
JOIN_FAILED = 125


class CgroupError(SandboxError):
    """A per-run cgroup could not be created or configured."""


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int
    pids: int
    cpu_cores: float


def join_argv(procs_files: Sequence[str], argv: Sequence[str], shell: str = "/bin/sh") -> list[str]:
    """Argv that enters the given cgroups, then execs ``argv`` under the same pid."""
    return [shell, "-c", _JOIN_SCRIPT, "crewcanvas-join", str(len(procs_files)), *procs_files, *argv]


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, number = line.partition(" ")
            if name == key:
                return int(number)
    except (OSError, ValueError):
        return 0
    return 0


class RunCgroup:
    """The cgroup(s) of one run."""

    def __init__(self, version: Literal["v1", "v2"], dirs: dict[str, Path]) -> None:
        self.version = version
        #: controller name (v1) or "unified" (v2) -> directory
        self.dirs = dirs

    @property
    def procs_files(self) -> list[str]:
        return [str(path / "cgroup.procs") for path in self.dirs.values()]

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed anything in this group."""
        if self.version == "v1":
            return _counter(self.dirs["memory"] / "memory.oom_control", "oom_kill") > 0
        events = self.dirs["unified"] / "memory.events"
        return _counter(events, "oom_kill") > 0 or _counter(events, "oom_group_kill") > 0

    def pids_exhausted(self) -> bool:
        """Whether a fork or clone in this group failed at its pids limit."""
        path = self.dirs["pids"] if self.version == "v1" else self.dirs["unified"]
        return _counter(path / "pids.events", "max") > 0

    def pids(self) -> list[int]:
        """Processes in the group, in any of its hierarchies (a swept leftover may lack some)."""
        found: set[int] = set()
        for path in self.dirs.values():
            try:
                found.update(int(line) for line in (path / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return sorted(found)

    def kill_all(self) -> None:
        """SIGKILL every process in the group until it is empty."""
        unified = self.dirs.get("unified")
        if unified is not None and (unified / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(unified / "cgroup.kill", "1")
        deadline = time.monotonic() + _KILL_SECONDS
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and delete the group; raise ``CgroupError`` if it will not go."""
        self.kill_all()
        deadline = time.monotonic() + _KILL_SECONDS
        for path in self.dirs.values():
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # Killed tasks leave the group asynchronously: EBUSY for a moment.
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"could not remove cgroup {path}: {exc}") from exc
                    time.sleep(0.01)


def _parse_mountinfo(text: str) -> tuple[dict[str, tuple[Path, str]], tuple[Path, str] | None]:
    """(v1 controller -> (mount point, mount root), v2 (mount point, mount root) or None)."""
    v1: dict[str, tuple[Path, str]] = {}
    v2: tuple[Path, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        root, mount_point = fields[3], fields[4]
        fstype, super_options = fields[dash + 1], fields[dash + 3] if len(fields) > dash + 3 else ""
        if fstype == "cgroup2" and v2 is None:
            v2 = (Path(mount_point), root)
        elif fstype == "cgroup":
            for option in super_options.split(","):
                if option in {"memory", "pids", "cpu"}:
                    v1.setdefault(option, (Path(mount_point), root))
    return v1, v2


def _parse_self_cgroup(text: str) -> tuple[dict[str, str], str | None]:
    """(v1 controller -> own path, own v2 path or None)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            v2 = path
        for controller in controllers.split(","):
            v1[controller] = path
    return v1, v2


def _below(mount: tuple[Path, str], own: str) -> Path:
    mount_point, mount_root = mount
    relative = os.path.relpath(own, mount_root) if own.startswith(mount_root) else own.lstrip("/")
    return mount_point / relative if relative != "." else mount_point


class Cgroups:
    """Where per-run cgroups go on this host, or why they cannot be used."""

    def __init__(
        self,
        version: Literal["v1", "v2"] | None,
        parents: dict[str, Path],
        unavailable: str | None = None,
    ) -> None:
        self.version = version
        #: controller (v1) or "unified" (v2) -> parent directory of per-run groups
        self.parents = parents
        self.unavailable = unavailable

    @classmethod
    def disabled(cls, reason: str) -> Cgroups:
        return cls(None, {}, reason)

    @classmethod
    def for_backend(cls, *, enabled: bool, parent: str | None) -> Cgroups:
        """What a backend's ``use_cgroups`` / ``cgroup_parent`` options ask for."""
        return cls.discover(parent=parent) if enabled else cls.disabled("cgroups switched off in the backend options")

    @classmethod
    def discover(
        cls,
        *,
        parent: str | None = None,
        mountinfo: str | None = None,
        self_cgroup: str | None = None,
    ) -> Cgroups:
        """Find writable hierarchies. ``parent`` is a path inside each hierarchy to use instead of our own."""
        try:
            mounts_text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
            own_text = self_cgroup if self_cgroup is not None else Path("/proc/self/cgroup").read_text()
        except OSError as exc:
            return cls.disabled(f"cannot read cgroup membership: {exc}")
        mounts_v1, mount_v2 = _parse_mountinfo(mounts_text)
        own_v1, own_v2 = _parse_self_cgroup(own_text)

        def place(mount: tuple[Path, str], own: str | None) -> Path:
            if parent is not None:
                return mount[0] / parent.strip("/")
            return _below(mount, own or "/") / PARENT_NAME

        if {"memory", "pids"} <= mounts_v1.keys():
            parents = {name: place(mount, own_v1.get(name)) for name, mount in mounts_v1.items()}
            return cls._prepared("v1", parents)
        if mount_v2 is not None:
            return cls._prepared_v2(place(mount_v2, own_v2))
        return cls.disabled("no cgroup hierarchy with memory and pids controllers is mounted")

    @classmethod
    def _prepared(cls, version: Literal["v1", "v2"], parents: dict[str, Path]) -> Cgroups:
        try:
            for path in parents.values():
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return cls.disabled(f"cgroups not writable ({exc}); run as root or delegate a cgroup and pass its path")
        return cls(version, parents)

    @classmethod
    def _prepared_v2(cls, parent: Path) -> Cgroups:
        prepared = cls._prepared("v2", {"unified": parent})
        if prepared.version is None:
            return prepared
        # Run groups are children of ``parent``: it must itself have the controllers
        # (its parent's subtree_control hands them down) before it can pass them on.
        available = cls._v2_controllers(parent)
        missing = sorted({"memory", "pids"} - set(available))
        if missing:
            with contextlib.suppress(OSError):
                # Fails when the group above holds processes itself (no internal processes rule).
                _write(parent.parent / "cgroup.subtree_control", " ".join(f"+{name}" for name in missing))
            available = cls._v2_controllers(parent)
        if not {"memory", "pids"} <= set(available):
            return cls.disabled(
                f"cgroup v2 group {parent} does not get the memory and pids controllers "
                f"(has: {' '.join(available) or 'none'}); delegate a cgroup with them (systemd Delegate=yes) "
                "and pass its path as the cgroup parent"
            )
        wanted = [name for name in ("memory", "pids", "cpu") if name in available]
        try:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{name}" for name in wanted))
        except OSError as exc:
            return cls.disabled(f"cannot enable {' '.join(wanted)} for run groups in {parent}: {exc}")
        return prepared

    @staticmethod
    def _v2_controllers(group: Path) -> list[str]:
        try:
            return (group / "cgroup.controllers").read_text().split()
        except OSError:
            return []

    def create(self, name: str, limits: CgroupLimits) -> RunCgroup:
        """Create and configure the group for one run."""
        if self.version is None:
            raise CgroupError(self.unavailable or "cgroups unavailable")
        group = RunCgroup(self.version, {key: parent / name for key, parent in self.parents.items()})
        created: list[Path] = []
        try:
            for path in group.dirs.values():
                path.mkdir()
                created.append(path)
            if self.version == "v1":
                self._configure_v1(group, limits)
            else:
                self._configure_v2(group, limits)
        except OSError as exc:
            for path in reversed(created):
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise CgroupError(f"could not set up cgroup {name}: {exc}") from exc
        return group

    @staticmethod
    def _configure_v1(group: RunCgroup, limits: CgroupLimits) -> None:
        memory = group.dirs["memory"]
        _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
        swap = memory / "memory.memsw.limit_in_bytes"
        if swap.exists():
            # memory+swap equal to memory: the tool cannot spill into swap.
            _write(swap, str(limits.memory_bytes))
        _write(group.dirs["pids"] / "pids.max", str(limits.pids))
        cpu = group.dirs.get("cpu")
        if cpu is not None:
            _write(cpu / "cpu.cfs_period_us", str(_CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(max(1000, int(limits.cpu_cores * _CPU_PERIOD_US))))

    @staticmethod
    def _configure_v2(group: RunCgroup, limits: CgroupLimits) -> None:
        path = group.dirs["unified"]
        _write(path / "memory.max", str(limits.memory_bytes))
        if (path / "memory.swap.max").exists():
            _write(path / "memory.swap.max", "0")
        if (path / "memory.oom.group").exists():
            # One OOM kill takes the whole run down instead of leaving a half-dead tool.
            _write(path / "memory.oom.group", "1")
        _write(path / "pids.max", str(limits.pids))
        if (path / "cpu.max").exists():
            _write(path / "cpu.max", f"{max(1000, int(limits.cpu_cores * _CPU_PERIOD_US))} {_CPU_PERIOD_US}")

    def existing(self, name: str) -> RunCgroup | None:
        """The run group ``name`` as far as it still exists (for sweeping leftovers), or None."""
        if self.version is None:
            return None
        dirs = {key: parent / name for key, parent in self.parents.items() if (parent / name).is_dir()}
        return RunCgroup(self.version, dirs) if dirs else None

    def run_groups(self) -> list[Path]:
        """Per-run groups that currently exist (for leak checks)."""
        found: list[Path] = []
        for parent in self.parents.values():
            with contextlib.suppress(FileNotFoundError):
                found += [child for child in parent.iterdir() if child.is_dir()]
        return found
