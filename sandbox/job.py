"""The files a run hands to the in-sandbox harness, identical for every backend.

Backends decide *where* the files land (``--ro-bind-data`` for bubblewrap, a
read-only bind mount for gVisor, a ConfigMap for Kubernetes); this module
decides *what* they contain. See ``harness.py`` for the protocol.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from sandbox.base import ToolRun

#: Where the harness and job files appear inside an isolated sandbox.
SANDBOX_DIR = "/sandbox"
JOB_DIR = "/sandbox/job"
HARNESS_FILE = "/sandbox/harness.py"
WORK_DIR = "/work"

#: Environment every sandboxed run starts from (the host environment is never inherited).
BASE_ENV: dict[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORK_DIR,
    "TMPDIR": f"{WORK_DIR}/.tmp",
    "LANG": "C.UTF-8",
    # glibc reserves 64 MiB of address space per thread arena; under RLIMIT_AS
    # a few threads would otherwise exhaust the memory limit without using it.
    "MALLOC_ARENA_MAX": "2",
}


@functools.cache
def harness_source() -> bytes:
    """The harness script, read once from beside this module."""
    return Path(__file__).with_name("harness.py").read_bytes()


def tool_filename(run: ToolRun) -> str:
    return "tool.sh" if run.kind == "command" else "tool.py"


def job_files(run: ToolRun, *, workdir: str = WORK_DIR) -> dict[str, bytes]:
    """Job directory contents keyed by file name."""
    config = {
        "kind": run.kind,
        "entrypoint": run.entrypoint,
        "workdir": workdir,
        "limits": run.limits.model_dump(),
    }
    return {
        "config.json": json.dumps(config).encode(),
        "input.json": run.input_json(),
        tool_filename(run): run.source.encode(),
    }


def run_env(run: ToolRun, *, workdir: str = WORK_DIR) -> dict[str, str]:
    """The complete environment of the harness: base variables plus the run's own."""
    env = dict(BASE_ENV, HOME=workdir, TMPDIR=f"{workdir}/.tmp")
    env.update(run.env)
    return env


def harness_argv(python: str, harness: str = HARNESS_FILE, job_dir: str = JOB_DIR) -> list[str]:
    # -I: ignore PYTHON* variables and user site-packages; -B: the root is read-only anyway.
    return [python, "-I", "-B", harness, job_dir]


def memfd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding ``data``, positioned at the start.

    Backends hand these to the sandbox by fd, so job content never touches a
    host directory that tool code could plant symlinks in.
    """
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd
