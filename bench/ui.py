"""The flow canvas (FlowCanvas in NiceGUI) against plain Vue Flow, in the same headless Chromium and run.

- bare: a static page (`bench/_ui_bare.py`, a thread in this process) that loads NiceGUI's own Vue
  build and the canvas's bundle (`ui/elements/dist/vue_flow.js`) through an import map and mounts
  plain `<VueFlow>`: default nodes, no minimap, background or controls; the same nodes, edges,
  box size, fit, zoom limits and visible-only rule (from 200 nodes) as the canvas.
- ours: `bench/_ui_app.py`, FlowCanvas in a NiceGUI app (a subprocess, main.py's `ui.run` options).

Both pages get the same probe (`bench/_ui_probe.js`). Rounds are interleaved (bare, ours, bare,
ours...) so load on the machine hits both alike; each round measures every row on a fresh page, and
the table shows the median over rounds:

1. Time to interactive, 200 nodes / 320 edges and 500 / 800: from navigation start to the first
   animation frame after all nodes are in the DOM, measured and inside the framed view (with the
   HTTP cache warm: one unmeasured load of each page first). Target: ours within 1.2x of bare.
2. Drag frame time on the 500-node page: one node dragged by real mouse input, 60 moves, one per
   frame; p50 and p95 of the intervals between requestAnimationFrame timestamps. No target.
3. Event-to-DOM lag over a 100-node run: each node `running`, then `completed`, one patch every
   10 ms on a fixed timetable. Ours: from `time.time()` in the app just before
   `FlowCanvas.patch_nodes` to the `Date.now()` at which a MutationObserver saw the node's
   `data-status` change, so the lag covers serialising, NiceGUI's outbox, socket.io over loopback,
   the page's main thread being busy and Vue's re-render, not only the part after the message
   arrived. Both clocks are the machine's wall clock; their offset is measured (Date.now() read
   between two time.time() calls) and printed. Bare: the same patches applied by a local JS call
   (no network), timed with performance.now() from when each was due, so a busy main thread counts
   there too; the ratio is what the websocket, NiceGUI (with the prebuilt CSS, as main.py serves it)
   and the canvas's own nodes add. p50 and p99; target: ours' p99 under
   100 ms.

Targets are shown, not asserted: the exit status is 0 whatever the numbers. Without Chromium
(/usr/bin/chromium) or the bundle (`make jsbuild`) it prints "skipped: <why>" and exits 0.
Run: make bench, or .venv/bin/python bench/ui.py [--rounds 3] [--quick]
(--quick: one round, 30 drag moves, a 30-node run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).parents[1]))

from _ui_flow import drag_target, flow

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "ui" / "elements" / "dist" / "vue_flow.js"
PROBE = Path(__file__).with_name("_ui_probe.js")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags tests/e2e/conftest.py starts Debian's Chromium with.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SIDES = ("bare", "ours")
TTI_SIZES = (200, 500)
DRAG_SIZE = 500
STARTUP_TIMEOUT_S = 90.0
PAGE_TIMEOUT_MS = 90_000
SETTLE_MS = 300
NEXT_FRAME = "() => new Promise(resolve => requestAnimationFrame(() => resolve()))"
HANDSHAKE = "() => window.socket && window.socket.connected && window.did_handshake"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ours_app(folder: Path) -> Iterator[str]:
    """`bench/_ui_app.py` on a free port (its own session, cwd and log); yields its base URL."""
    import httpx

    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "NICEGUI_"))}
    env["PYTHONUNBUFFERED"] = "1"
    log_path = folder / "app.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_ui_app.py")), str(port)],
            cwd=folder,  # NiceGUI keeps its .nicegui/ storage in the working directory
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bench/_ui_app.py did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


@dataclass
class Side:
    """One of the two pages, in a browser context of its own (its own HTTP cache, warmed once)."""

    name: str
    base_url: str
    context: BrowserContext

    def load(self, count: int) -> tuple[Page, float]:
        """A fresh page with `count` nodes and its time to interactive in ms."""
        page = self.context.new_page()
        page.goto(f"{self.base_url}/?nodes={count}")
        # Polled on a timer, not on animation frames: a rAF poller would add work to the frames measured.
        page.wait_for_function("() => window.__bench.ready !== null", polling=50)
        ready = float(page.evaluate("window.__bench.ready"))
        if self.name == "ours":
            page.wait_for_function(HANDSHAKE, polling=50)  # patches and drags report over the socket
        page.wait_for_timeout(SETTLE_MS)
        return page, ready


def drag_frames(page: Page, count: int, moves: int) -> list[float]:
    """Frame intervals (ms) while one node is dragged by `moves` mouse moves, one per frame."""
    node = page.locator(f'.vue-flow__node[data-id="{drag_target(count)}"]')
    box = node.bounding_box()
    if box is None:
        raise RuntimeError(f"node {drag_target(count)} is not drawn")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    before = node.evaluate("node => node.style.transform")
    page.mouse.move(x, y)
    page.mouse.down()
    page.evaluate("window.__bench.framesStart()")
    for step in range(1, moves + 1):
        page.mouse.move(x + 3 * step, y + 2 * step)
        page.evaluate(NEXT_FRAME)
    page.mouse.up()
    frames: list[float] = page.evaluate("window.__bench.framesStop()")
    if node.evaluate("node => node.style.transform") == before:
        raise RuntimeError("the dragged node did not move: the drag measured nothing")
    return frames


def clock_offset(page: Page) -> tuple[float, float]:
    """Browser Date.now() minus Python time.time(), in ms, and how far off that reading can be."""
    before = time.time() * 1000
    browser = float(page.evaluate("Date.now()"))
    after = time.time() * 1000
    return browser - (before + after) / 2, (after - before) / 2


def status_lags(page: Page, side: str, count: int) -> list[float]:
    """Send each of the page's nodes running then completed; ms from each send to its DOM change."""
    page.evaluate("window.__bench.statuses = []")
    if side == "bare":
        sent: list[list[Any]] = page.evaluate("window.__bare.run()")
        column = 3  # performance.now() on both sides, from when the patch was due
    else:
        page.get_by_test_id("bench-patches").click()
        page.wait_for_function("() => window.__benchSent !== undefined", polling=100, timeout=PAGE_TIMEOUT_MS)
        sent = page.evaluate("window.__benchSent")
        column = 2  # time.time() in Python against Date.now() here
    page.wait_for_function(f"() => window.__bench.statuses.length >= {2 * count}", polling=100)
    seen: dict[tuple[str, str], float] = {}
    for record in page.evaluate("window.__bench.statuses"):
        seen.setdefault((record[0], record[1]), float(record[column]))
    lags = []
    for node_id, status, at in sent:
        if (node_id, status) not in seen:
            raise RuntimeError(f"{side}: node {node_id} never showed data-status={status!r}")
        lags.append(seen[(node_id, status)] - float(at))
    return lags


@dataclass
class Results:
    """Per-round numbers: row name -> side -> one value per round."""

    rows: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    offsets: list[tuple[float, float]] = field(default_factory=list)

    def add(self, row: str, side: str, value: float) -> None:
        self.rows.setdefault(row, {name: [] for name in SIDES})[side].append(value)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    ratio_limit: float | None = None  # ours / bare at most
    ours_limit_ms: float | None = None  # ours under this many ms


def table(results: Results, rows: list[Row]) -> None:
    print(f"  {'measure':44} {'bare':>9} {'ours':>9} {'ratio':>7}  {'target':14}")
    for row in rows:
        values = results.rows[row.key]
        bare, ours = statistics.median(values["bare"]), statistics.median(values["ours"])
        ratio = ours / bare if bare > 0 else float("inf")
        if row.ratio_limit is not None:
            target, verdict = f"<= {row.ratio_limit:.1f}x", "ok" if ratio <= row.ratio_limit else "over"
        elif row.ours_limit_ms is not None:
            target, verdict = f"ours < {row.ours_limit_ms:.0f} ms", "ok" if ours < row.ours_limit_ms else "over"
        else:
            target, verdict = "-", ""
        print(f"  {row.label:44} {bare:6.1f} ms {ours:6.1f} ms {ratio:6.2f}x  {target:14} {verdict}")


def one_round(sides: list[Side], results: Results, drag_moves: int, lag_nodes: int) -> None:
    """Every row once, bare then ours for each, each on a fresh page."""
    for count in TTI_SIZES:
        for side in sides:
            page, ready = side.load(count)
            results.add(f"tti-{count}", side.name, ready)
            if count == DRAG_SIZE:
                frames = drag_frames(page, count, drag_moves)
                results.add("drag-p50", side.name, statistics.median(frames))
                results.add("drag-p95", side.name, percentile(frames, 0.95))
            page.close()
    for side in sides:
        page, _ = side.load(lag_nodes)
        if side.name == "ours":
            results.offsets.append(clock_offset(page))
        lags = status_lags(page, side.name, lag_nodes)
        results.add("lag-p50", side.name, statistics.median(lags))
        results.add("lag-p99", side.name, percentile(lags, 0.99))
        page.close()


def measure(rounds: int, drag_moves: int, lag_nodes: int) -> Results:
    from _ui_bare import bare_server
    from playwright.sync_api import sync_playwright

    results = Results()
    with (
        tempfile.TemporaryDirectory(prefix="bench-ui-") as folder,
        ours_app(Path(folder)) as ours_url,
        bare_server(BUNDLE) as bare_url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        sides = []
        for name, url in zip(SIDES, (bare_url, ours_url), strict=True):
            context = browser.new_context(viewport={"width": 1200, "height": 800})
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            context.add_init_script(path=str(PROBE))
            side = Side(name, url, context)
            page, _ = side.load(max(TTI_SIZES))  # warms the HTTP cache, and the app's first page
            page.close()
            sides.append(side)
        for round_number in range(1, rounds + 1):
            print(f"  round {round_number}/{rounds}...", flush=True)
            one_round(sides, results, drag_moves, lag_nodes)
        browser.close()
    return results


def report(results: Results, rounds: int, drag_moves: int, lag_nodes: int) -> None:
    tti_rows = [
        Row(f"tti-{count}", f"time to interactive, {count} nodes / {len(flow(count)[1])} edges", ratio_limit=1.2)
        for count in TTI_SIZES
    ]
    print(f"flow canvas vs plain Vue Flow, median of {rounds} interleaved round(s), headless Chromium:")
    table(
        results,
        [
            *tti_rows,
            Row("drag-p50", f"drag frame p50, {DRAG_SIZE} nodes, {drag_moves} moves"),
            Row("drag-p95", f"drag frame p95, {DRAG_SIZE} nodes, {drag_moves} moves"),
            Row("lag-p50", f"event-to-DOM lag p50, {lag_nodes}-node run"),
            Row("lag-p99", f"event-to-DOM lag p99, {lag_nodes}-node run", ours_limit_ms=100),
        ],
    )
    offset = statistics.median(offset for offset, _ in results.offsets)
    spread = max(spread for _, spread in results.offsets)
    print(f"  clock check: browser Date.now() - Python time.time() = {offset:+.1f} ms (read to within {spread:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round, 30 drag moves, a 30-node run")
    options = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"skipped: {CHROMIUM} is missing (make sysdeps installs Debian's chromium)")
        return
    if not BUNDLE.is_file():
        print(f"skipped: {BUNDLE.relative_to(ROOT)} is missing (make jsbuild builds it)")
        return
    try:
        import playwright  # noqa: F401 (only whether it is there)
    except ImportError:
        print("skipped: playwright is not installed in this environment (make deps)")
        return
    rounds, drag_moves, lag_nodes = (1, 30, 30) if options.quick else (max(1, options.rounds), 60, 100)
    report(measure(rounds, drag_moves, lag_nodes), rounds, drag_moves, lag_nodes)


if __name__ == "__main__":
    main()
