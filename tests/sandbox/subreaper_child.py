"""An app process that stands in for PID 1: a child subreaper that runs many tools, then lists its zombies.

Usage: ``python subreaper_child.py <backend> <runs> <concurrency>``. As a
subreaper it is handed every orphan of its descendants, like the app where it
is PID 1 of a container; nothing here reaps them on purpose. Every tenth run
is killed, alternately at its deadline and at its output limit. Prints one
JSON line: how many runs ended with each reason, and the zombie children of
this process (pid, name, pids in nested namespaces) after the runs.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.base import Limits, ToolRun
from sandbox.factory import create_backend

PR_SET_CHILD_SUBREAPER = 36
#: Orphans are reparented when their parent exits; give the last ones a moment.
SETTLE_SECONDS = 1.0

FINISHES = "def run(index):\n    return index\n"
SLEEPS = "import time\n\ndef run(index):\n    time.sleep(60)\n"
FLOODS = "import sys\n\ndef run(index):\n    while True:\n        sys.stdout.write('x' * 65536)\n"


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def zombie_children() -> list[dict[str, Any]]:
    """Zombies whose parent is this process, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if int(status["PPid"]) == os.getpid() and status["State"].split()[0] == "Z":
            found.append({"pid": int(entry.name), "name": status["Name"].strip(), "nspid": status["NSpid"].split()})
    return found


def tool_run(index: int) -> ToolRun:
    if index % 20 == 5:
        return ToolRun(source=SLEEPS, input={"index": index}, limits=Limits(wall_seconds=0.5))
    if index % 20 == 15:
        return ToolRun(source=FLOODS, input={"index": index}, limits=Limits(output_bytes=64 * 1024))
    return ToolRun(source=FINISHES, input={"index": index})


async def main(backend_name: str, runs: int, concurrency: int) -> None:
    become_subreaper()
    # A short start-up grace keeps the runs killed at their deadline quick.
    backend = create_backend(backend_name, startup_grace_seconds=0.5)
    try:
        availability = await backend.available()
        if not availability:
            print(json.dumps({"unavailable": availability.reason}), flush=True)
            return
        slots = asyncio.Semaphore(concurrency)

        async def one(index: int) -> str:
            async with slots:
                return (await backend.run(tool_run(index))).reason.value

        started = time.monotonic()
        reasons = await asyncio.gather(*(one(index) for index in range(runs)))
        seconds = time.monotonic() - started
    finally:
        await backend.aclose()
    await asyncio.sleep(SETTLE_SECONDS)
    report = {"reasons": dict(collections.Counter(reasons)), "seconds": round(seconds, 1), "zombies": zombie_children()}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
