// bench/ui.py's probe, added to both pages before their own scripts run (Playwright's add_init_script).
// It only watches; both pages get exactly the same one.
//
// - ready: performance.now() (ms since navigation start) of the first animation frame after the one in
//   which all `?nodes=N` nodes were in the DOM, measured (Vue Flow shows a node once it has its size)
//   and inside the canvas's box (so the view has been framed): the page drew them and answers again.
// - frames: requestAnimationFrame timestamps between framesStart() and framesStop().
// - statuses: every change of a `data-status` attribute, seen by a MutationObserver, with the node id,
//   the new value, Date.now() (to compare with Python's time.time()) and performance.now().
(() => {
  const expected = Number(new URLSearchParams(location.search).get("nodes") || 0);
  const bench = { ready: null, frames: [], recording: false, statuses: [] };
  window.__bench = bench;

  function allDrawn() {
    const root = document.querySelector(".vue-flow");
    if (!root) return false;
    const nodes = root.querySelectorAll(".vue-flow__node");
    if (nodes.length < expected) return false;
    for (const node of nodes) if (node.style.visibility === "hidden") return false;
    // Only now the boxes: reading them lays the page out, which this frame is about to do anyway.
    const box = root.getBoundingClientRect();
    for (const node of nodes) {
      const r = node.getBoundingClientRect();
      if (r.right <= box.left || r.left >= box.right || r.bottom <= box.top || r.top >= box.bottom) return false;
    }
    return true;
  }
  function poll() {
    if (expected > 0 && allDrawn()) requestAnimationFrame(() => (bench.ready = performance.now()));
    else requestAnimationFrame(poll);
  }
  requestAnimationFrame(poll);

  function frame(timestamp) {
    if (!bench.recording) return;
    bench.frames.push(timestamp);
    requestAnimationFrame(frame);
  }
  bench.framesStart = () => {
    bench.frames = [];
    bench.recording = true;
    requestAnimationFrame(frame);
  };
  bench.framesStop = () => {
    bench.recording = false;
    return bench.frames.slice(1).map((timestamp, i) => timestamp - bench.frames[i]);
  };

  const observer = new MutationObserver((mutations) => {
    const wall = Date.now();
    const mono = performance.now();
    for (const mutation of mutations) {
      const node = mutation.target.closest(".vue-flow__node");
      if (!node) continue;
      bench.statuses.push([node.dataset.id, mutation.target.getAttribute("data-status"), wall, mono]);
    }
  });
  observer.observe(document, { subtree: true, attributes: true, attributeFilter: ["data-status"] });
})();
