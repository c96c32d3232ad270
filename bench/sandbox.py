"""Sandbox overhead: a trivial tool through plain subprocess, bubblewrap and gVisor, in the same run.

1. Latency: ``--runs`` runs per backend, interleaved round-robin so load on the
   machine hits every backend alike; p50/p95 of the host-measured wall time and
   the ratio to the plain subprocess (the ``unsafe-subprocess`` backend runs the
   same harness with no isolation).
2. Throughput: ``--batch`` runs per backend with ``--concurrency`` at a time,
   printed as runs per second.

A backend that cannot run here (gVisor without runsc) is reported and skipped.
Run: .venv/bin/python bench/sandbox.py [--runs 50] [--batch 30] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from sandbox.base import SandboxBackend, SandboxUnavailable, ToolRun
from sandbox.factory import create_backend

TRIVIAL = "def run(x):\n    return x + 1\n"
BACKENDS = ("unsafe-subprocess", "bwrap", "gvisor")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def one_run(backend: SandboxBackend, index: int) -> float:
    started = time.perf_counter()
    result = await backend.run(ToolRun(source=TRIVIAL, input={"x": index}))
    elapsed = time.perf_counter() - started
    if result.output != index + 1:
        raise SystemExit(f"{backend.name}: unexpected result {result}")
    return elapsed


async def ready_backends() -> dict[str, SandboxBackend]:
    ready: dict[str, SandboxBackend] = {}
    for name in BACKENDS:
        try:
            backend = create_backend(name)
        except SandboxUnavailable as exc:
            print(f"{name:18} skipped: {exc}")
            continue
        availability = await backend.available()
        if not availability:
            print(f"{name:18} skipped: {availability.reason}")
            await backend.aclose()
            continue
        await one_run(backend, 0)  # warm caches (rootfs skeleton, seccomp program, page cache)
        ready[name] = backend
    return ready


async def main(runs: int, batch: int, concurrency: int) -> None:
    backends = await ready_backends()
    if "unsafe-subprocess" not in backends:
        raise SystemExit("the plain subprocess baseline cannot run; nothing to compare against")
    samples: dict[str, list[float]] = {name: [] for name in backends}
    for index in range(runs):
        for name, backend in backends.items():
            samples[name].append(await one_run(backend, index))
    base = statistics.median(samples["unsafe-subprocess"])
    print(f"latency of a trivial tool, {runs} runs each (interleaved):")
    for name, values in samples.items():
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"  {name:18} p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  p50 ratio to plain {p50 / base:5.2f}x")

    print(f"throughput, {batch} runs with {concurrency} concurrent:")
    base_rate = 0.0
    for name, backend in backends.items():
        gate = asyncio.Semaphore(concurrency)

        async def gated(index: int, backend: SandboxBackend = backend, gate: asyncio.Semaphore = gate) -> float:
            async with gate:
                return await one_run(backend, index)

        started = time.perf_counter()
        await asyncio.gather(*(gated(index) for index in range(batch)))
        rate = batch / (time.perf_counter() - started)
        base_rate = base_rate or rate
        print(f"  {name:18} {rate:6.1f} runs/s  ratio to plain {rate / base_rate:5.2f}x")
    for backend in backends.values():
        await backend.aclose()


if __name__ == "__main__":
    # The unsafe backend warns on creation; the bench knows what it is using.
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=2)
    options = parser.parse_args()
    asyncio.run(main(options.runs, options.batch, options.concurrency))
