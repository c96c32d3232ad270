"""``unsafe-subprocess``: the harness as a plain child process, with NO isolation.

Only for development machines without bubblewrap, and only when selected by
name: the factory never falls back to it. The tool runs with this process's
uid, file system and network; only the harness's rlimits, the deadline and the
output cap apply. ``UNSAFE = True`` lets the UI show a banner, and every
instance logs a warning when it is created.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from sandbox import job
from sandbox.base import SandboxBackend, SandboxUnavailable, ToolResult, ToolRun
from sandbox.outcome import build_result
from sandbox.supervise import supervise

log = logging.getLogger(__name__)

_NOTE = "UNSAFE: no isolation; the tool ran as the app's user with only rlimits, deadline and output cap"


class UnsafeSubprocessBackend(SandboxBackend):
    """Run the harness directly with ``python_path``; never use with untrusted tools."""

    name = "unsafe-subprocess"
    UNSAFE = True

    def __init__(self, *, python_path: str = "/usr/bin/python3", startup_grace_seconds: float = 1.0) -> None:
        super().__init__()
        self.python_path = python_path
        self.startup_grace_seconds = startup_grace_seconds
        log.warning(
            "UNSAFE sandbox backend %r selected: tool code runs without isolation, with this process's user, "
            "files and network. Use it only on a development machine with trusted tools.",
            self.name,
        )

    def check_prerequisites(self) -> None:
        if not os.access(self.python_path, os.X_OK):
            raise SandboxUnavailable(f"python not found or not executable at {self.python_path}")

    async def _execute(self, run: ToolRun) -> ToolResult:
        root = Path(tempfile.mkdtemp(prefix=f"crewcanvas-unsafe-{run.run_id}-"))
        job_dir, work_dir = root / "job", root / "work"
        try:
            job_dir.mkdir()
            work_dir.mkdir()
            harness = root / "harness.py"
            harness.write_bytes(job.harness_source())
            for name, data in job.job_files(run, workdir=str(work_dir)).items():
                (job_dir / name).write_bytes(data)

            async def kill(pid: int) -> None:
                # start_new_session made the harness a process-group leader.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)

            captured = await supervise(
                job.harness_argv(self.python_path, str(harness), str(job_dir)),
                env=job.run_env(run, workdir=str(work_dir)),
                deadline_seconds=run.limits.wall_seconds + self.startup_grace_seconds,
                output_bytes=run.limits.output_bytes,
                kill=kill,
                cwd=str(work_dir),
            )
            # Children the tool left in its process group die with the run; a
            # child that called setsid() escapes: that is what "unsafe" means.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(captured.pid, signal.SIGKILL)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return build_result(run, self.name, captured, notes=(_NOTE,))
