// esbuild entry for ui/elements/dist/vue_flow.js: the parts of Vue Flow and dagre that
// flow_canvas.js uses, bundled into one ES module. `vue` stays external, so the bundle runs on
// NiceGUI's own Vue (its import map) and Vue Flow's components share that Vue's reactivity.
//
// The packages' CSS (and the canvas's own, flow_canvas.css) is inlined as text and injected
// once, when the module is first imported: Vue Flow measures nodes on mount, and nodes measured
// before their styles arrive keep wrong sizes (fitView then frames the wrong area).

import controlsCss from "@vue-flow/controls/dist/style.css";
import coreCss from "@vue-flow/core/dist/style.css";
import themeCss from "@vue-flow/core/dist/theme-default.css";
// The minimap package does not export its stylesheet, so it is imported by path.
import minimapCss from "../../node_modules/@vue-flow/minimap/dist/style.css";
import canvasCss from "./flow_canvas.css";

export { Graph, layout } from "@dagrejs/dagre";
export { Background } from "@vue-flow/background";
export { ControlButton, Controls } from "@vue-flow/controls";
export { Handle, MarkerType, Position, useVueFlow, VueFlow } from "@vue-flow/core";
export { MiniMap } from "@vue-flow/minimap";

const STYLE_ID = "crewcanvas-vue-flow-css";

if (typeof document !== "undefined" && !document.getElementById(STYLE_ID)) {
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = [coreCss, themeCss, controlsCss, minimapCss, canvasCss].join("\n");
  document.head.appendChild(style);
}
