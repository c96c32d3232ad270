"""Runs leave no zombies behind, even where the app is PID 1 and nothing else would reap them.

Inside a run the harness is the pid namespace's init and reaps the tool's
orphans. On the host, a fresh app process (``subreaper_child.py``) makes itself a child subreaper,
so every orphan of its runs is reparented to it exactly as to an app that is
PID 1 of a container; it never reaps them. After its runs, /proc must show no
zombie children of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.base import ExitReason, SandboxBackend
from tests.sandbox.helpers import run_tool

CHILD = Path(__file__).with_name("subreaper_child.py")
REPO = Path(__file__).resolve().parents[2]

#: (runs, concurrent runs): gVisor runs take seconds each on this kind of machine.
RUNS = {"bwrap": (200, 8), "gvisor": (20, 4)}


@pytest.mark.parametrize("backend", sorted(RUNS))
def test_runs_killed_or_not_leave_no_zombies_for_pid_1(backend: str) -> None:
    runs, concurrency = RUNS[backend]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env["PYTHONPATH"] = str(REPO)
    finished = subprocess.run(
        [sys.executable, str(CHILD), backend, str(runs), str(concurrency)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    if "unavailable" in report:
        if backend == "bwrap":
            pytest.fail(f"bubblewrap (the default backend) cannot sandbox in a fresh process: {report['unavailable']}")
        pytest.skip(f"{backend} unavailable in a fresh process: {report['unavailable']}")
    killed = runs // 20
    assert report["reasons"] == {"ok": runs - 2 * killed, "timeout": killed, "output_limit": killed}
    assert report["zombies"] == [], f"{len(report['zombies'])} zombies left for PID 1, e.g. {report['zombies'][:3]}"


async def test_orphans_inside_a_run_are_reaped_while_it_runs(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import os, time
        def run():
            if os.fork() == 0:
                if os.fork() == 0:
                    os._exit(0)  # orphaned: its parent exits without waiting for it
                os._exit(0)
            os.wait()
            time.sleep(0.5)
            states = {}
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        states[pid] = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
                    except OSError:
                        pass
            return {"tool_pid": os.getpid(), "zombies": sorted(pid for pid, state in states.items() if state == "Z")}
        """,
    )
    assert result.reason is ExitReason.OK, result
    # The tool is not the namespace's init: that is the harness's parent, which reaps.
    assert result.output == {"tool_pid": 2, "zombies": []}
