"""gVisor backend: every run is ``runsc run`` of a fresh OCI bundle.

The tool talks to gVisor's user-space kernel (the Sentry), not to the host
kernel. The bundle has a read-only root, no network (``--network=none``), its
own /dev/shm, a size-limited tmpfs work dir, the job files on a read-only bind
mount, no capabilities, and the syscall filter from ``seccomp.py`` enforced
inside the Sentry (``--oci-seccomp``). Like bubblewrap, runsc runs inside a
per-run cgroup (joined race-free by a shell before exec) which limits the
Sentry, gofer and tool together; the harness's rlimits apply inside.

``runsc do`` is never used: it exposes the host file system.

runsc does not reap its own helpers: when its sandbox process exits, the
ptrace stubs it started are orphaned, several zombies a run for the host's
init to collect (where the app is PID 1 of a container, nobody). As root,
``runsc run`` therefore starts as pid 1 of a pid namespace of its own
(``unshare --pid --fork --kill-child``): orphans stay inside it, the kernel
reaps them when runsc exits, and ``unshare`` waits for runsc. At a limit runsc
is killed before ``unshare`` (see ``supervise.kill_launcher``).

After a crash of the app, ``runsc run`` keeps the container going (it has no
die-with-parent) and the work root stays in the temp dir. Each backend holds a
lock on its private work root and each run a run lock (``leftovers.py``), so
``sweep()`` in any app process can kill and delete the containers of dead runs,
remove their cgroups, bundles and state, and remove work roots whose owner
died, without touching another process's live runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sandbox import job
from sandbox.base import Availability, MiB, SandboxBackend, SandboxUnavailable, ToolResult, ToolRun
from sandbox.cgroups import CgroupError, CgroupLimits, Cgroups, RunCgroup, join_argv
from sandbox.leftovers import GRACE_SECONDS, HeldLock, RunLocks, claim, hold, sweep_cgroups
from sandbox.outcome import build_result
from sandbox.seccomp import to_oci
from sandbox.supervise import LAUNCHER_ENV, kill_launcher, supervise

log = logging.getLogger(__name__)

_PROBE_SOURCE = "def run():\n    return 'ready'\n"
_RUNSC_CLEANUP_SECONDS = 15.0
#: Private work roots are made in the temp dir with this prefix; ``sweep()`` looks for dead ones there.
WORK_ROOT_PREFIX = "crewcanvas-gvisor-"
_OWNER_LOCK = ".owner.lock"
_CONTAINER_PREFIX = "cc-"
_NO_CAPS: dict[str, list[str]] = {key: [] for key in ("bounding", "effective", "inheritable", "permitted", "ambient")}


def oci_spec(
    run: ToolRun,
    *,
    uid: int,
    gid: int,
    python_path: str,
    ro_paths: Sequence[str],
    sandbox_dir: str,
) -> dict[str, Any]:
    """The OCI runtime spec (config.json) for one run. Pure: no files touched."""
    limits = run.limits
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=64k"]},
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "nodev", "noexec", "mode=1777", f"size={min(limits.disk_bytes, 64 * MiB)}"],
        },
        *({"destination": path, "type": "bind", "source": path, "options": ["rbind", "ro"]} for path in ro_paths),
        {"destination": job.SANDBOX_DIR, "type": "bind", "source": sandbox_dir, "options": ["rbind", "ro"]},
        {
            "destination": job.WORK_DIR,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=0700", f"uid={uid}", f"gid={gid}", f"size={limits.disk_bytes}"],
        },
    ]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid, "additionalGids": []},
            "args": job.harness_argv(python_path),
            "env": [f"{key}={value}" for key, value in job.run_env(run).items()],
            "cwd": job.WORK_DIR,
            "capabilities": _NO_CAPS,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": limits.open_files, "soft": limits.open_files}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")],
            "seccomp": to_oci(),
        },
    }


def _make_rootfs(path: Path) -> None:
    """An empty read-only root: mount points plus the merged-/usr symlinks."""
    path.mkdir(mode=0o755)
    for name in ("usr", "proc", "dev", "sandbox", "work", "etc"):
        (path / name).mkdir(mode=0o755)
    for name, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        (path / name).symlink_to(target)
    (path / "tmp").symlink_to(f"{job.WORK_DIR}/.tmp")


class GVisorBackend(SandboxBackend):
    """Run tools in gVisor containers started with ``runsc run``."""

    name = "gvisor"

    def __init__(
        self,
        *,
        runsc_path: str = "/usr/bin/runsc",
        unshare_path: str = "/usr/bin/unshare",
        python_path: str = "/usr/bin/python3",
        uid: int = 65534,
        gid: int = 65534,
        platform: str = "ptrace",
        rootless: bool | None = None,
        work_root: str | None = None,
        ro_paths: Sequence[str] = ("/usr",),
        shell_path: str = "/bin/sh",
        use_cgroups: bool = True,
        cgroup_parent: str | None = None,
        startup_grace_seconds: float = 5.0,
        memory_overhead_bytes: int = 256 * MiB,
        tasks_overhead: int = 512,
        tasks_per_process: int = 32,
        lock_dir: str | None = None,
    ) -> None:
        """``platform``: ptrace works everywhere; kvm needs /dev/kvm (and hung on Firecracker VMs).

        The run's host cgroup allows ``tasks_overhead + processes * tasks_per_process``
        tasks. The tool's own limit (``processes``) is enforced inside gVisor; the host limit
        is a backstop for runsc itself, which on the ptrace platform runs a host thread per
        busy guest task plus, for every guest process, a stub process with a thread per
        sentry thread that enters it. A fork bomb at 32 guest processes took up to ~300 host
        tasks on an idle machine and more under load; the sentry dies (exit 2, nothing on
        stderr) when a thread cannot be created, so the backstop is kept well above that.

        ``rootless`` defaults to "not running as root". ``work_root`` holds
        bundles and runsc state (a private temp dir by default). ``lock_dir``
        holds the run locks (see ``leftovers.py``; per uid in the temp dir by default).
        """
        super().__init__()
        self.runsc_path = runsc_path
        self.unshare_path = unshare_path
        self.python_path = python_path
        self.uid = uid
        self.gid = gid
        self.platform = platform
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        self.ro_paths = tuple(ro_paths)
        self.shell_path = shell_path
        self.use_cgroups = use_cgroups
        self.cgroup_parent = cgroup_parent
        self.startup_grace_seconds = startup_grace_seconds
        self.memory_overhead_bytes = memory_overhead_bytes
        self.tasks_overhead = tasks_overhead
        self.tasks_per_process = tasks_per_process
        self._work_root = Path(work_root) if work_root else None
        self._owns_work_root = work_root is None
        self._root_lock: HeldLock | None = None
        self.locks = RunLocks(lock_dir)
        self._cgroups: Cgroups | None = None

    def check_prerequisites(self) -> None:
        if not os.path.isfile(self.runsc_path) or not os.access(self.runsc_path, os.X_OK):
            raise SandboxUnavailable(
                f"gVisor runsc not found at {self.runsc_path}: install the apt package runsc or fix the runsc path"
            )
        if not os.path.isfile(self.python_path):
            raise SandboxUnavailable(f"python for the sandbox not found at {self.python_path}")
        if not self.rootless and not os.access(self.unshare_path, os.X_OK):
            raise SandboxUnavailable(
                f"unshare not found at {self.unshare_path}: install the apt package util-linux or fix the unshare path"
            )
        self.locks.check()

    @property
    def work_root(self) -> Path:
        if self._work_root is None:
            self._work_root = Path(tempfile.mkdtemp(prefix=WORK_ROOT_PREFIX))
            # Held for the backend's life: a sweeper sees a free lock only once this process is gone.
            self._root_lock = hold(self._work_root / _OWNER_LOCK)
        root = self._work_root
        if not (root / "rootfs").exists():
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            (root / "state").mkdir(mode=0o700, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=root))
            _make_rootfs(staging / "rootfs")
            # Concurrent first runs: whoever renames first wins, the others discard.
            with contextlib.suppress(OSError):
                (staging / "rootfs").rename(root / "rootfs")
            shutil.rmtree(staging, ignore_errors=True)
        return root

    async def aclose(self) -> None:
        """Remove the private work root (rootfs skeleton and runsc state) if this backend made it."""
        if self._owns_work_root and self._work_root is not None:
            shutil.rmtree(self._work_root, ignore_errors=True)
            self._work_root = None
        if self._root_lock is not None:
            self._root_lock.release()
            self._root_lock = None

    @property
    def cgroups(self) -> Cgroups:
        if self._cgroups is None:
            self._cgroups = Cgroups.for_backend(enabled=self.use_cgroups, parent=self.cgroup_parent)
        return self._cgroups

    def runsc_argv(self, *extra: str, state_dir: Path | None = None) -> list[str]:
        state = state_dir if state_dir is not None else self.work_root / "state"
        argv = [self.runsc_path, "--root", str(state), f"--platform={self.platform}"]
        argv += ["--network=none", "--oci-seccomp", "--ignore-cgroups"]
        if self.rootless:
            argv.append("--rootless")
        return [*argv, *extra]

    def _state_files(self, container_id: str, state_dir: Path | None = None) -> list[Path]:
        """runsc's bookkeeping files for one container (they name it, never as a prefix of another id)."""
        state = state_dir if state_dir is not None else self.work_root / "state"
        try:
            return [path for path in state.iterdir() if f"{container_id}." in path.name]
        except FileNotFoundError:
            return []

    async def _probe(self) -> Availability:
        result = await self._execute(ToolRun(source=_PROBE_SOURCE, run_id=f"probe-{secrets.token_hex(4)}"))
        if result.ok and result.output == "ready":
            return Availability(True)
        detail = f"{result.reason}: {result.error or ''} {result.stderr_tail.strip()[-500:]}".strip()
        return Availability(
            False,
            f"runsc could not start a container here ({detail}); check that platform={self.platform!r} works "
            "(ptrace is the portable one) and that runsc runs as root or with rootless=True",
        )

    async def _runsc(self, *args: str, state_dir: Path | None = None) -> None:
        """Run a runsc housekeeping command, ignoring failures (the container may be gone)."""
        process = await asyncio.create_subprocess_exec(
            *self.runsc_argv(*args, state_dir=state_dir), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with asyncio.timeout(_RUNSC_CLEANUP_SECONDS):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning("runsc %s did not finish in %.0f s", " ".join(args), _RUNSC_CLEANUP_SECONDS)

    def _create_group(self, run: ToolRun, name: str, notes: list[str]) -> RunCgroup | None:
        cgroups = self.cgroups
        if cgroups.version is None:
            notes.append(f"cgroups unavailable ({cgroups.unavailable}); memory and tasks limited by rlimits only")
            return None
        limits = run.limits
        spec = CgroupLimits(
            memory_bytes=limits.memory_bytes + limits.disk_bytes + self.memory_overhead_bytes,
            pids=self.tasks_overhead + limits.processes * self.tasks_per_process,
            cpu_cores=limits.cpu_cores,
        )
        try:
            return cgroups.create(name, spec)
        except CgroupError as exc:
            notes.append(f"{exc}; memory and tasks limited by rlimits only")
            return None

    def _write_bundle(self, run: ToolRun, bundle: Path) -> None:
        sandbox_dir = bundle / "sandbox"
        job_dir = sandbox_dir / "job"
        job_dir.mkdir(parents=True, mode=0o755)
        sandbox_dir.chmod(0o755)
        (sandbox_dir / "harness.py").write_bytes(job.harness_source())
        for name, data in job.job_files(run).items():
            (job_dir / name).write_bytes(data)
        for path in (sandbox_dir / "harness.py", *job_dir.iterdir()):
            path.chmod(0o444)
        (bundle / "rootfs").symlink_to(self.work_root / "rootfs")
        spec = oci_spec(
            run,
            uid=self.uid,
            gid=self.gid,
            python_path=self.python_path,
            ro_paths=self.ro_paths,
            sandbox_dir=str(sandbox_dir),
        )
        (bundle / "config.json").write_text(json.dumps(spec))

    async def _execute(self, run: ToolRun) -> ToolResult:
        name = f"{run.run_id}-{secrets.token_hex(3)}"
        work_root = self.work_root
        # Held until bundle, container and cgroup are gone: sweepers leave the run alone meanwhile.
        lock = self.locks.hold(name)
        try:
            return await self._execute_locked(run, name, work_root)
        finally:
            lock.release()

    async def _execute_locked(self, run: ToolRun, name: str, work_root: Path) -> ToolResult:
        notes: list[str] = []
        container_id = f"{_CONTAINER_PREFIX}{name}"
        bundle = work_root / container_id
        bundle.mkdir(mode=0o700)
        group = self._create_group(run, name, notes)
        try:
            self._write_bundle(run, bundle)

            async def kill(pid: int) -> None:
                await self._runsc("kill", "--all", container_id, "KILL")
                await kill_launcher(pid)
                if group is not None:
                    group.kill_all()

            argv = self.runsc_argv("run", "--bundle", str(bundle), container_id)
            if group is not None:
                argv = join_argv(group.procs_files, argv, self.shell_path)
            if not self.rootless:
                # A new pid namespace needs CAP_SYS_ADMIN; its own /proc keeps /proc/self right for runsc.
                argv = [self.unshare_path, "--pid", "--fork", "--kill-child", "--mount-proc", "--", *argv]
            captured = await supervise(
                argv,
                env=LAUNCHER_ENV,
                deadline_seconds=run.limits.wall_seconds + self.startup_grace_seconds,
                output_bytes=run.limits.output_bytes,
                kill=kill,
            )
            memory_exhausted = group.oom_killed() if group is not None else False
            if group is not None and group.pids_exhausted():
                notes.append(
                    "runsc reached the host task limit of its cgroup; if the run crashed, raise "
                    "tasks_overhead or tasks_per_process of the gVisor backend"
                )
        finally:
            # A container that exited by itself has removed its state; one killed
            # at a limit leaves "<id>_sandbox:<id>.state" (and a lock) behind.
            if self._state_files(container_id) or group is None:
                await self._runsc("delete", "--force", container_id)
                for leftover in self._state_files(container_id):
                    leftover.unlink(missing_ok=True)
            if group is not None:
                try:
                    group.remove()
                except CgroupError:
                    log.exception("gVisor run %s left its cgroup behind", run.run_id)
            shutil.rmtree(bundle, ignore_errors=True)
        return build_result(run, self.name, captured, memory_exhausted=memory_exhausted, notes=tuple(notes))

    # -- leftovers of dead app processes ---------------------------------------------------------

    async def sweep(self) -> int:
        """Kill and remove what runs of dead app processes left (containers, state, bundles, cgroups).

        Looks at every private work root in the temp dir and at this backend's
        own work root; runs and roots whose lock is held are never touched.
        """
        removed = 0
        for root, lock in self._dead_roots():
            try:
                removed += await self._sweep_bundles(root, owner_dead=True)
                shutil.rmtree(root, ignore_errors=True)
            finally:
                if lock is not None:
                    lock.release()
            log.warning("swept the gVisor work root %s left behind by a dead app process", root)
            removed += 1
        if self._work_root is not None and self._work_root.is_dir():
            removed += await self._sweep_bundles(self._work_root, owner_dead=False)
        if self.use_cgroups:
            removed += len(sweep_cgroups(self.cgroups, self.locks))
        self.locks.sweep_stale()
        return removed

    def _dead_roots(self) -> list[tuple[Path, HeldLock | None]]:
        """Private work roots in the temp dir whose owner died, each with its claimed lock (None: unlocked)."""
        dead: list[tuple[Path, HeldLock | None]] = []
        now = time.time()
        for root in Path(tempfile.gettempdir()).glob(f"{WORK_ROOT_PREFIX}*"):
            if root == self._work_root or not _owned_dir(root):
                continue
            lock = claim(root / _OWNER_LOCK)
            if lock is not None:
                # Stays locked until the tree (and the lock file in it) is removed.
                dead.append((root, lock))
            elif not (root / _OWNER_LOCK).exists() and _unlocked_root_is_dead(root, now):
                dead.append((root, None))
        return dead

    async def _sweep_bundles(self, root: Path, *, owner_dead: bool) -> int:
        """Clean every dead run under ``root`` (all of them when its owner is dead)."""
        state_dir = root / "state"
        ids = {path.name for path in root.glob(f"{_CONTAINER_PREFIX}*") if path.is_dir()}
        if owner_dead:
            ids |= {
                path.name.split("_sandbox:", 1)[-1].rsplit(".", 1)[0]
                for path in state_dir.glob(f"*{_CONTAINER_PREFIX}*.state")
            }
        removed = 0
        for container_id in sorted(ids):
            name = container_id.removeprefix(_CONTAINER_PREFIX)
            lock = self.locks.claim(name)
            if lock is None and (self.locks.exists(name) or not owner_dead):
                continue
            try:
                await self._runsc("kill", "--all", container_id, "KILL", state_dir=state_dir)
                group = self.cgroups.existing(name) if self.use_cgroups else None
                if group is not None:
                    try:
                        group.remove()
                    except CgroupError as exc:
                        log.warning("could not sweep the cgroup of gVisor run %s: %s", name, exc)
                await self._runsc("delete", "--force", container_id, state_dir=state_dir)
                for leftover in self._state_files(container_id, state_dir):
                    leftover.unlink(missing_ok=True)
                shutil.rmtree(root / container_id, ignore_errors=True)
            finally:
                if lock is not None:
                    lock.release()
            log.warning("swept gVisor run %s left behind by a dead app process", name)
            removed += 1
        return removed


def _owned_dir(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return path.is_dir() and not path.is_symlink() and info.st_uid == os.geteuid()


def _unlocked_root_is_dead(root: Path, now: float) -> bool:
    """A root without an owner lock (made by an older version, or a crash right at creation).

    Judged dead once it is older than the grace period and no process names it
    on its command line (runsc gets ``--root <root>/state``).
    """
    try:
        if now - root.lstat().st_mtime < GRACE_SECONDS:
            return False
    except OSError:
        return False
    needle = str(root).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    return False
    return True
