"""An app process that runs one slow tool and prints its result; the leftover tests SIGKILL some mid-run.

Usage: ``python crash_child.py <backend> <run_id> <seconds> <cgroup parent>``. Prints one JSON
line when the run is about to start (with the gVisor work root), then the
result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from sandbox.base import Limits, ToolRun
from sandbox.factory import create_backend

SOURCE = "import time\n\ndef run(seconds):\n    time.sleep(seconds)\n    return 'slept'\n"


async def main(backend_name: str, run_id: str, seconds: float, cgroup_parent: str) -> None:
    backend = create_backend(backend_name, cgroup_parent=cgroup_parent)
    try:
        availability = await backend.available()
        if not availability:
            print(json.dumps({"unavailable": availability.reason}), flush=True)
            return
        work_root = getattr(backend, "work_root", None)
        print(json.dumps({"running": run_id, "work_root": str(work_root) if work_root else None}), flush=True)
        run = ToolRun(source=SOURCE, input={"seconds": seconds}, run_id=run_id, limits=Limits(wall_seconds=120))
        result = await backend.run(run)
        print(result.model_dump_json(), flush=True)
    finally:
        await backend.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]))
