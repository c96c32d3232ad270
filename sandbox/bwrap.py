"""The default backend: bubblewrap namespaces + seccomp + cgroups + rlimits.

Layers, outermost first, each one assuming the others may fail:

1. A shell joins the run's cgroups (memory, pids, CPU) and execs the rest.
2. ``setpriv`` (when the app runs as root) becomes a non-root uid: bubblewrap
   then builds an unprivileged user namespace whose ids map to that uid, so
   even a full escape lands as ``nobody`` rather than root, and RLIMIT_NPROC
   actually applies (it does nothing for uid 0).
3. ``bwrap`` unshares every namespace (no network at all: only a loopback
   device without listeners), forbids nested user namespaces, drops all
   capabilities, clears the environment, mounts only read-only system paths,
   a size-limited tmpfs at /work, and the job files from memfds.
4. The seccomp filter from ``seccomp.py`` is loaded by bwrap right before exec.
5. The harness lowers rlimits (address space, CPU, file size, files, tasks)
   before importing the tool.

Every process of a run is waited for by its parent, so no run leaves a zombie
for the host's init to collect (where the app is PID 1 of a container, nothing
would). bwrap's own init would be one: bwrap exits as soon as that init
reports the tool's exit, and ``--die-with-parent`` then kills the init with
nobody left to reap it. So ``--as-pid-1`` starts the harness itself as the
sandbox's pid 1, where it forks and reaps as init (see ``harness.py``), and
bwrap waits for it.

At the deadline the sandbox's pid 1 is SIGKILLed first, which takes every
process of the run with it, and bwrap reaps it and exits; only a launcher that
does not exit then is killed as well. The cgroup is swept in any case.
Each run holds a run lock while its cgroup exists, so after a crash of the app
``sweep()`` (any app process, at start) removes the cgroups of dead runs only;
nothing else is left on the host (job files are memfds, the work dir is a
tmpfs in the run's own mount namespace). See ``leftovers.py``.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from sandbox import job
from sandbox.base import Availability, MiB, SandboxBackend, SandboxFailure, SandboxUnavailable, ToolResult, ToolRun
from sandbox.cgroups import JOIN_FAILED, CgroupError, CgroupLimits, Cgroups, RunCgroup, join_argv
from sandbox.leftovers import RunLocks, sweep_cgroups
from sandbox.outcome import build_result
from sandbox.seccomp import compile_bpf
from sandbox.supervise import LAUNCHER_ENV, kill_launcher, supervise

log = logging.getLogger(__name__)

#: Top-level directories that merged-/usr systems make symlinks into /usr.
_USR_LINKS = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")
_PROBE_SOURCE = "def run():\n    return 'ready'\n"


def _require_file(path: str, what: str, fix: str) -> None:
    if not os.path.isfile(path):
        raise SandboxUnavailable(f"{what} not found at {path}: {fix}")
    if not os.access(path, os.X_OK):
        raise SandboxUnavailable(f"{what} at {path} is not executable: {fix}")


class BwrapBackend(SandboxBackend):
    """Run tools under bubblewrap on this host."""

    name = "bwrap"

    def __init__(
        self,
        *,
        bwrap_path: str = "/usr/bin/bwrap",
        python_path: str = "/usr/bin/python3",
        uid: int = 65534,
        gid: int = 65534,
        setpriv_path: str = "/usr/bin/setpriv",
        shell_path: str = "/bin/sh",
        ro_paths: Sequence[str] = ("/usr",),
        use_cgroups: bool = True,
        cgroup_parent: str | None = None,
        startup_grace_seconds: float = 2.0,
        memory_overhead_bytes: int = 64 * MiB,
        lock_dir: str | None = None,
    ) -> None:
        """``python_path`` must be readable by ``uid`` (a pyenv build under /root is not).

        ``cgroup_parent`` is a path inside each cgroup hierarchy to create run
        groups under; by default they nest below this process's own cgroup.
        ``lock_dir`` holds the run locks; every app process sharing the cgroup
        parent must share it (the default is per uid in the temp dir).
        """
        super().__init__()
        self.bwrap_path = bwrap_path
        self.python_path = python_path
        self.uid = uid
        self.gid = gid
        self.setpriv_path = setpriv_path
        self.shell_path = shell_path
        self.ro_paths = tuple(ro_paths)
        self.use_cgroups = use_cgroups
        self.cgroup_parent = cgroup_parent
        self.startup_grace_seconds = startup_grace_seconds
        self.memory_overhead_bytes = memory_overhead_bytes
        self.locks = RunLocks(lock_dir)
        self._cgroups: Cgroups | None = None

    @property
    def cgroups(self) -> Cgroups:
        """Where this backend puts run cgroups (discovered on first use)."""
        if self._cgroups is None:
            self._cgroups = Cgroups.for_backend(enabled=self.use_cgroups, parent=self.cgroup_parent)
        return self._cgroups

    def check_prerequisites(self) -> None:
        _require_file(self.bwrap_path, "bubblewrap", "install the apt package bubblewrap or fix the bwrap path")
        _require_file(self.shell_path, "POSIX shell", "fix the shell path")
        if not os.path.isfile(self.python_path):
            raise SandboxUnavailable(
                f"python for the sandbox not found at {self.python_path}: install the apt package python3-minimal"
            )
        if os.geteuid() == 0:
            _require_file(self.setpriv_path, "setpriv", "install the apt package util-linux")
        compile_bpf()
        self.locks.check()

    async def sweep(self) -> int:
        """Remove the cgroups of runs whose app process died (never a live run's)."""
        if not self.use_cgroups:
            return 0
        removed = sweep_cgroups(self.cgroups, self.locks)
        self.locks.sweep_stale()
        return len(removed)

    async def _probe(self) -> Availability:
        result = await self._execute(ToolRun(source=_PROBE_SOURCE, run_id=f"probe-{secrets.token_hex(4)}"))
        if result.ok and result.output == "ready":
            return Availability(True)
        detail = (result.error or "") + " " + result.stderr_tail.strip()[-500:]
        return Availability(
            False,
            f"bubblewrap could not start a sandbox ({detail.strip()}); the kernel must allow unprivileged user "
            f"namespaces (user.max_user_namespaces > 0) and {self.python_path} must be readable by uid {self.uid}",
        )

    def _system_binds(self) -> list[str]:
        args: list[str] = []
        for path in self.ro_paths:
            args += ["--ro-bind", path, path]
        for name in _USR_LINKS:
            host = Path("/", name)
            if f"/{name}" in self.ro_paths:
                continue
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{name}"]
        return args

    def bwrap_argv(self, run: ToolRun, fds: dict[str, int], seccomp_fd: int) -> list[str]:
        """The bubblewrap command line for one run (``fds``: sandbox path -> memfd)."""
        limits = run.limits
        args = [
            self.bwrap_path,
            "--unshare-all",
            "--unshare-user",  # --unshare-all only *tries* the user namespace
            "--disable-userns",
            "--uid", str(self.uid),
            "--gid", str(self.gid),
            "--hostname", "sandbox",
            "--die-with-parent",
            "--as-pid-1",  # the harness is the sandbox's init: bwrap's own would be orphaned
            "--new-session",
            "--cap-drop", "ALL",
            "--clearenv",
        ]  # fmt: skip
        for key, value in job.run_env(run).items():
            args += ["--setenv", key, value]
        args += self._system_binds()
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(limits.disk_bytes), "--perms", "0700", "--tmpfs", job.WORK_DIR]
        args += ["--size", str(min(limits.disk_bytes, 64 * MiB)), "--perms", "1777", "--tmpfs", "/dev/shm"]
        # bwrap's /dev is an unbounded tmpfs; the device nodes are bind mounts and stay usable.
        args += ["--remount-ro", "/dev"]
        # /tmp lives inside the size-limited work dir (the harness creates .tmp).
        args += ["--symlink", f"{job.WORK_DIR}/.tmp", "/tmp"]
        for path, fd in fds.items():
            args += ["--perms", "0444", "--ro-bind-data", str(fd), path]
        args += ["--seccomp", str(seccomp_fd), "--remount-ro", "/", "--chdir", job.WORK_DIR, "--"]
        return args + job.harness_argv(self.python_path)

    def _launcher(self, argv: list[str], group: RunCgroup | None) -> list[str]:
        if os.geteuid() == 0:
            argv = [
                self.setpriv_path,
                f"--reuid={self.uid}",
                f"--regid={self.gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
                *argv,
            ]
        if group is not None:
            argv = join_argv(group.procs_files, argv, self.shell_path)
        return argv

    def _create_group(self, run: ToolRun, name: str, notes: list[str]) -> RunCgroup | None:
        cgroups = self.cgroups
        if cgroups.version is None:
            notes.append(f"cgroups unavailable ({cgroups.unavailable}); memory and tasks limited by rlimits only")
            return None
        limits = run.limits
        # Memory covers the tool, its tmpfs pages (charged to the writer) and bwrap itself.
        spec = CgroupLimits(
            memory_bytes=limits.memory_bytes + limits.disk_bytes + self.memory_overhead_bytes,
            pids=limits.processes + 4,
            cpu_cores=limits.cpu_cores,
        )
        try:
            return cgroups.create(name, spec)
        except CgroupError as exc:
            notes.append(f"{exc}; memory and tasks limited by rlimits only")
            return None

    async def _execute(self, run: ToolRun) -> ToolResult:
        name = f"{run.run_id}-{secrets.token_hex(3)}"
        # Held until the cgroup is gone: a sweeper in any process then knows the run is alive.
        lock = self.locks.hold(name)
        try:
            return await self._execute_locked(run, name)
        finally:
            lock.release()

    async def _execute_locked(self, run: ToolRun, name: str) -> ToolResult:
        notes: list[str] = []
        group = self._create_group(run, name, notes)
        files = {job.HARNESS_FILE: job.harness_source()}
        files.update({f"{job.JOB_DIR}/{name}": data for name, data in job.job_files(run).items()})
        fds: dict[str, int] = {}
        seccomp_fd = -1
        try:
            for path, data in files.items():
                fds[path] = job.memfd(os.path.basename(path), data)
            seccomp_fd = job.memfd("seccomp", compile_bpf())

            async def kill(pid: int) -> None:
                await kill_launcher(pid)
                if group is not None:
                    group.kill_all()

            argv = self._launcher(self.bwrap_argv(run, fds, seccomp_fd), group)
            captured = await supervise(
                argv,
                env=LAUNCHER_ENV,
                deadline_seconds=run.limits.wall_seconds + self.startup_grace_seconds,
                output_bytes=run.limits.output_bytes,
                kill=kill,
                pass_fds=[*fds.values(), seccomp_fd],
            )
            if group is not None and captured.returncode == JOIN_FAILED and not captured.stdout:
                raise SandboxFailure(
                    f"could not enter the run's cgroup: {captured.stderr_tail.decode(errors='replace')}"
                )
            memory_exhausted = group.oom_killed() if group is not None else False
        finally:
            for fd in [*fds.values(), seccomp_fd]:
                if fd >= 0:
                    os.close(fd)
            if group is not None:
                try:
                    group.remove()
                except CgroupError:
                    log.exception("sandbox run %s left its cgroup behind", run.run_id)
        return build_result(run, self.name, captured, memory_exhausted=memory_exhausted, notes=tuple(notes))
