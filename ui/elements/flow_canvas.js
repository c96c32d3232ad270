// The flow canvas: Vue Flow, controlled by Python (flow_canvas.py).
//
// Python sends the whole flow (the `flow` prop, re-applied only when its `rev` changes) and small
// updates through methods (patchNodes, setEdgeStates, select, fitView, autoLayout). The canvas never
// adds or removes nodes or edges itself: it reports what the person did as events and Python answers
// with the new state. Only a node drag moves locally, so dragging stays smooth.
import { markRaw, nextTick, ref, toRaw } from "vue";
import {
  Background,
  ControlButton,
  Controls,
  Graph,
  Handle,
  layout,
  MiniMap,
  Position,
  useVueFlow,
  VueFlow,
} from "crewcanvas-flow/vue_flow.js";

const NODE_MIME = "application/x-crewcanvas-node-type";
const NODE_TYPE = "crew";
const STATUS = {
  pending: { icon: "schedule", text: "Pending", colour: "#94a3b8" },
  running: { icon: "", text: "Running", colour: "#2563eb" },
  completed: { icon: "check", text: "Completed", colour: "#16a34a" },
  failed: { icon: "close", text: "Failed", colour: "#dc2626" },
  skipped: { icon: "skip_next", text: "Skipped", colour: "#94a3b8" },
  pinned: { icon: "push_pin", text: "Pinned output", colour: "#7c3aed" },
  waiting: { icon: "pause", text: "Waiting", colour: "#d97706" },
  cancelled: { icon: "block", text: "Cancelled", colour: "#64748b" },
};
const VIEWPORT_DEBOUNCE_MS = 250;
const SELECTION_DEBOUNCE_MS = 30;
const ARROW_MOVE_DEBOUNCE_MS = 400;
const ARROWS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"]);
// From this many nodes on, only what is in view is drawn: dragging among 500 nodes and 800 edges
// took 50 ms a frame with everything drawn, 17 ms without (headless Chromium, software rendering).
const VISIBLE_ONLY_FROM = 200;

// One clock for every running node's elapsed time, ticking only while one is shown.
const clock = { now: ref(Date.now()), users: 0, timer: null };
function watchClock() {
  if (clock.users++ === 0) {
    clock.now.value = Date.now();
    clock.timer = setInterval(() => (clock.now.value = Date.now()), 1000);
  }
}
function unwatchClock() {
  if (--clock.users === 0) {
    clearInterval(clock.timer);
    clock.timer = null;
  }
}

function seconds(ms, tenths) {
  const total = Math.max(0, ms) / 1000;
  if (tenths && total < 10) return `${total.toFixed(1)}s`;
  if (total < 60) return `${Math.floor(total)}s`;
  const minutes = Math.floor(total / 60);
  return `${minutes}m ${String(Math.floor(total % 60)).padStart(2, "0")}s`;
}

function rounded(point) {
  return { x: Math.round(point.x), y: Math.round(point.y) };
}

function portsKey(data) {
  const names = (ports) => (ports || []).map((port) => port.name).join(",");
  return `${names(data.inputs)}|${names(data.outputs)}`;
}

function toFlowNode(node) {
  return { id: node.id, type: NODE_TYPE, position: node.position || { x: 0, y: 0 }, data: node.data || {} };
}

function edgeClass(edge) {
  return edge.highlight ? `cc-edge--${edge.highlight}` : "";
}

// A run's edge states go into the path's style, not its classes: NiceGUI's Tailwind runtime rescans the
// page on every class change, which made a run's updates lag (bench/ui.py).
const EDGE_STYLES = {
  flowing: { stroke: "var(--cc-edge-flowing)", strokeWidth: 2, strokeDasharray: 5, animation: "dashdraw 0.5s linear infinite" },
  done: { stroke: "var(--cc-edge-done)", strokeWidth: 2 },
};

function edgeStyle(state) {
  return EDGE_STYLES[state] || {};
}

function toFlowEdge(edge) {
  return {
    id: edge.id,
    source: edge.source,
    target: edge.target,
    sourceHandle: edge.source_handle ?? null,
    targetHandle: edge.target_handle ?? null,
    class: edgeClass(edge),
    style: edgeStyle(edge.state),
    data: { highlight: edge.highlight || "", state: edge.state || "" },
  };
}

function isTextField(target) {
  return target instanceof Element && !!target.closest("input, textarea, select, [contenteditable='true']");
}

const FlowNode = {
  name: "CcFlowNode",
  components: { Handle },
  inheritAttrs: false,
  props: { id: String, data: Object },
  data() {
    return { left: Position.Left, right: Position.Right, clockUsed: false };
  },
  computed: {
    status() {
      return this.data.status || "";
    },
    statusIcon() {
      return STATUS[this.status]?.icon || "help";
    },
    statusText() {
      return STATUS[this.status]?.text || this.status;
    },
    problems() {
      return this.data.problems || [];
    },
    problemsText() {
      return this.problems.join("\n");
    },
    classes() {
      return {
        [`cc-node--${this.data.highlight}`]: !!this.data.highlight,
        "cc-node--problems": this.problems.length > 0,
      };
    },
    elapsed() {
      const started = this.data.started_at;
      if (typeof started !== "number") return null;
      if (this.status === "running") return seconds(clock.now.value - started, false);
      return typeof this.data.ended_at === "number" ? seconds(this.data.ended_at - started, true) : null;
    },
  },
  watch: {
    status: { handler: "useClock", immediate: true },
  },
  unmounted() {
    if (this.clockUsed) unwatchClock();
  },
  methods: {
    useClock() {
      const wanted = this.status === "running";
      if (wanted && !this.clockUsed) watchClock();
      if (!wanted && this.clockUsed) unwatchClock();
      this.clockUsed = wanted;
    },
  },
  template: `
    <div class="cc-node" :class="classes" :data-testid="'canvas-node-' + id" :data-status="status">
      <div class="cc-node__head">
        <i class="q-icon material-icons notranslate cc-node__icon" aria-hidden="true">{{ data.icon || 'widgets' }}</i>
        <div class="cc-node__titles">
          <div class="cc-node__label" :title="data.label">{{ data.label || id }}</div>
          <div class="cc-node__detail" :title="data.detail || ''">{{ data.detail || "" }}</div>
        </div>
        <div class="cc-node__marks">
          <i v-if="data.pinned" class="q-icon material-icons notranslate cc-node__pin" role="img"
             aria-label="Output pinned" title="Output pinned" :data-testid="'canvas-pin-' + id">push_pin</i>
          <span v-if="problems.length" class="cc-node__problems" role="img" :title="problemsText"
                :aria-label="problems.length + ' problem' + (problems.length === 1 ? '' : 's') + ': ' + problemsText"
                :data-testid="'canvas-problems-' + id">{{ problems.length }}</span>
          <span v-if="status" class="cc-status" :data-status="status" :title="statusText"
                :data-testid="'canvas-status-' + id">
            <span class="cc-spinner" :data-testid="'canvas-spinner-' + id"></span>
            <i class="q-icon material-icons notranslate cc-status__icon" aria-hidden="true">{{ statusIcon }}</i>
            <span class="cc-sr">{{ statusText }}</span>
            <span class="cc-status__time">{{ elapsed ?? "" }}</span>
          </span>
        </div>
      </div>
      <div v-if="(data.inputs || []).length || (data.outputs || []).length" class="cc-node__ports">
        <div class="cc-node__inputs">
          <div v-for="port in data.inputs || []" :key="port.name" class="cc-port cc-port--in">
            <Handle type="target" :position="left" :id="port.name"
                    :data-testid="'handle-' + id + '-in-' + port.name" :title="port.label || port.name" />
            <span>{{ port.label || port.name }}</span>
          </div>
        </div>
        <div class="cc-node__outputs">
          <div v-for="port in data.outputs || []" :key="port.name" class="cc-port cc-port--out">
            <span>{{ port.label || port.name }}</span>
            <Handle type="source" :position="right" :id="port.name"
                    :data-testid="'handle-' + id + '-out-' + port.name" :title="port.label || port.name" />
          </div>
        </div>
      </div>
    </div>`,
};

let instances = 0;

export default {
  components: { VueFlow, Background, ControlButton, Controls, MiniMap },
  props: {
    flow: { type: Object, default: null },
    readOnly: { type: Boolean, default: false },
  },
  // Declared so that NiceGUI's listeners (onDrop, onCopy, onPaste, ...) never land on the root div as DOM listeners.
  emits: ["moved", "connect", "drop", "selection", "node_click", "delete", "copy", "paste", "undo", "redo", "save", "viewport"],
  setup() {
    // NiceGUI sets the element's own id on the root div; Vue Flow gets an id of its own.
    const flowId = `cc-flow-${++instances}`;
    return { flowId, store: markRaw(useVueFlow(flowId)), nodeTypes: { [NODE_TYPE]: markRaw(FlowNode) } };
  },
  data() {
    return { nodeCount: 0, miniMapReady: false };
  },
  computed: {
    visibleOnly() {
      return this.nodeCount >= VISIBLE_ONLY_FROM;
    },
  },
  created() {
    this.pointer = null;
    this.dragFrom = new Map();
    this.ports = new Map();
    this.pendingFit = false;
    this.lastSelection = "[[],[]]";
    this.timers = {};
    this.onDocumentKeydown = (event) => this.keydown(event);
    this.onDocumentDragStart = (event) => this.paletteDragStart(event);
  },
  mounted() {
    document.addEventListener("keydown", this.onDocumentKeydown);
    document.addEventListener("dragstart", this.onDocumentDragStart);
    if (this.flow) this.applyFlow(this.flow);
    this.timers.miniMap = setTimeout(() => this.showMiniMap(), 1500); // a flow with no nodes to wait for
  },
  unmounted() {
    document.removeEventListener("keydown", this.onDocumentKeydown);
    document.removeEventListener("dragstart", this.onDocumentDragStart);
    Object.values(this.timers).forEach(clearTimeout);
  },
  watch: {
    "flow.rev"() {
      if (this.flow) this.applyFlow(this.flow);
    },
  },
  methods: {
    // -- from Python --------------------------------------------------------------------------------
    applyFlow(flow) {
      // A plain copy: Vue Flow's own reactivity wraps it once, instead of NiceGUI's deep proxies.
      const nodes = structuredClone(toRaw(flow.nodes) || []);
      const edges = structuredClone(toRaw(flow.edges) || []);
      // Vue Flow measures handles when a node's size changes; nodes whose handles changed are re-measured.
      const ports = new Map(nodes.map((node) => [node.id, portsKey(node.data || {})]));
      const changedPorts = [...ports].filter(([id, key]) => this.ports.has(id) && this.ports.get(id) !== key);
      this.ports = ports;
      this.nodeCount = nodes.length;
      this.store.setNodes(nodes.map(toFlowNode));
      this.store.setEdges(edges.map(toFlowEdge));
      if (changedPorts.length) nextTick(() => this.store.updateNodeInternals(changedPorts.map(([id]) => id)));
      if (flow.fit) this.fitWhenMeasured();
      this.queueSelection();
    },
    patchNodes(patches) {
      const changedPorts = [];
      for (const [id, patch] of Object.entries(patches)) {
        const node = this.store.findNode(id);
        if (!node) continue;
        node.data = { ...node.data, ...patch };
        if ("inputs" in patch || "outputs" in patch) {
          this.ports.set(id, portsKey(node.data));
          changedPorts.push(id);
        }
      }
      if (changedPorts.length) nextTick(() => this.store.updateNodeInternals(changedPorts));
    },
    setEdgeStates(states) {
      for (const [id, state] of Object.entries(states)) {
        const edge = this.store.findEdge(id);
        if (!edge) continue;
        edge.data = { ...edge.data, state };
        edge.style = edgeStyle(state);
      }
    },
    select(nodeIds) {
      const nodes = nodeIds.map((id) => this.store.findNode(id)).filter(Boolean);
      if (nodes.length) this.store.addSelectedNodes(nodes);
      else this.store.removeSelectedElements();
      // Python chose this selection: it is not reported back.
      this.lastSelection = JSON.stringify(this.selected());
    },
    fitView() {
      this.pendingFit = false;
      return this.store.fitView({ padding: 0.15, maxZoom: 1.25 });
    },
    autoLayout() {
      const nodes = this.store.nodes.value; // all of them: getNodes has only those in view
      if (!nodes.length) return;
      const graph = new Graph();
      graph.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 90 });
      graph.setDefaultEdgeLabel(() => ({}));
      for (const node of nodes) {
        graph.setNode(node.id, { width: node.dimensions.width || 200, height: node.dimensions.height || 80 });
      }
      for (const edge of this.store.edges.value) graph.setEdge(edge.source, edge.target);
      layout(graph);
      const positions = {};
      for (const node of nodes) {
        const placed = graph.node(node.id);
        const position = rounded({ x: placed.x - placed.width / 2, y: placed.y - placed.height / 2 });
        node.position = position;
        positions[node.id] = position;
      }
      if (!this.readOnly) this.$emit("moved", { positions, layout: true });
      nextTick(() => this.fitView());
    },

    // -- Vue Flow's events ----------------------------------------------------------------------------
    nodesInitialized() {
      if (this.pendingFit) this.fitView();
      this.showMiniMap();
    },
    // The minimap draws every node again: it comes once the nodes are on screen, so a big flow is usable
    // sooner (bench/ui.py's time to interactive).
    showMiniMap() {
      if (this.miniMapReady) return;
      requestAnimationFrame(() => requestAnimationFrame(() => (this.miniMapReady = true)));
    },
    fitWhenMeasured() {
      this.pendingFit = true;
      nextTick(() => {
        if (this.pendingFit && this.store.nodes.value.every((node) => node.dimensions.width > 0)) this.fitView();
      });
    },
    dragStart({ nodes }) {
      this.dragFrom = new Map(nodes.map((node) => [node.id, { ...node.position }]));
    },
    dragStop({ nodes }) {
      if (this.readOnly) return;
      const positions = {};
      let moved = false;
      for (const node of nodes) {
        positions[node.id] = rounded(node.position);
        const from = this.dragFrom.get(node.id);
        moved ||= !from || from.x !== node.position.x || from.y !== node.position.y;
      }
      this.dragFrom = new Map();
      if (moved) this.$emit("moved", { positions, layout: false });
    },
    connect(connection) {
      if (this.readOnly) return;
      this.$emit("connect", {
        source: connection.source,
        source_handle: connection.sourceHandle ?? null,
        target: connection.target,
        target_handle: connection.targetHandle ?? null,
      });
    },
    nodeClick({ node }) {
      this.$emit("node_click", { id: node.id });
    },
    changed(changes) {
      if (changes.some((change) => change.type === "select")) this.queueSelection();
    },
    queueSelection() {
      this.debounce("selection", SELECTION_DEBOUNCE_MS, () => {
        if (this.store.userSelectionActive.value) return this.queueSelection();  // box selection still open
        const [nodes, edges] = this.selected();
        const key = JSON.stringify([nodes, edges]);
        if (key === this.lastSelection) return;
        this.lastSelection = key;
        this.$emit("selection", { nodes, edges });
      });
    },
    selected() {
      return [
        this.store.getSelectedNodes.value.map((node) => node.id),
        this.store.getSelectedEdges.value.map((edge) => edge.id),
      ];
    },
    moveEnd() {
      this.debounce("viewport", VIEWPORT_DEBOUNCE_MS, () => {
        const { x, y, zoom } = this.store.viewport.value;
        this.$emit("viewport", { x, y, zoom });
      });
    },
    miniMapColour(node) {
      return STATUS[node.data?.status]?.colour || "#94a3b8";
    },

    // -- the page: palette drops, keys, pointer -------------------------------------------------------
    paletteDragStart(event) {
      const item = event.target instanceof Element ? event.target.closest("[data-node-type]") : null;
      if (!item || item.getAttribute("draggable") !== "true" || !event.dataTransfer) return;
      event.dataTransfer.setData(NODE_MIME, item.getAttribute("data-node-type"));
      event.dataTransfer.effectAllowed = "copy";
    },
    dragOver(event) {
      if (this.readOnly || !event.dataTransfer?.types.includes(NODE_MIME)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    },
    drop(event) {
      const type = event.dataTransfer?.getData(NODE_MIME);
      if (this.readOnly || !type) return;
      event.preventDefault();
      const position = this.store.screenToFlowCoordinate({ x: event.clientX, y: event.clientY });
      this.$emit("drop", { type, position: rounded(position) });
    },
    focusCanvas() {
      // Vue Flow's pane swallows mousedown's default, which would otherwise have focused the canvas.
      if (!this.$el.contains(document.activeElement)) this.$el.focus({ preventScroll: true });
    },
    trackPointer(event) {
      this.pointer = { x: event.clientX, y: event.clientY };
    },
    forgetPointer() {
      this.pointer = null;
    },
    pastePosition() {
      let point = this.pointer;
      if (!point) {
        const box = this.$el.getBoundingClientRect();
        point = { x: box.left + box.width / 2, y: box.top + box.height / 2 };
      }
      return rounded(this.store.screenToFlowCoordinate(point));
    },
    keydown(event) {
      if (this.readOnly) return;
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (mod && !event.altKey && key === "s") {
        event.preventDefault();
        this.$emit("save", {});
        return;
      }
      if (!this.$el.contains(event.target) || isTextField(event.target) || event.altKey) return;
      const [nodes, edges] = this.selected();
      if (!mod && (key === "delete" || key === "backspace")) {
        if (nodes.length || edges.length) {
          event.preventDefault();
          this.$emit("delete", { nodes, edges });
        }
      } else if (mod && (key === "y" || (key === "z" && event.shiftKey))) {
        event.preventDefault();
        this.$emit("redo", {});
      } else if (mod && key === "z") {
        event.preventDefault();
        this.$emit("undo", {});
      } else if (mod && key === "c" && nodes.length) {
        event.preventDefault();
        this.$emit("copy", { nodes });
      } else if (mod && key === "v") {
        event.preventDefault();
        this.$emit("paste", { position: this.pastePosition() });
      } else if (!mod && ARROWS.has(event.key) && nodes.length) {
        // Vue Flow moves the selected nodes with the arrow keys; report where they ended up.
        this.debounce("arrows", ARROW_MOVE_DEBOUNCE_MS, () => {
          const positions = {};
          for (const node of this.store.getSelectedNodes.value) positions[node.id] = rounded(node.position);
          if (Object.keys(positions).length) this.$emit("moved", { positions, layout: false });
        });
      }
    },
    debounce(name, ms, callback) {
      clearTimeout(this.timers[name]);
      this.timers[name] = setTimeout(callback, ms);
    },
  },
  template: `
    <div class="cc-flow-canvas" tabindex="0" role="application" aria-label="Flow canvas"
         :data-read-only="readOnly ? 'true' : 'false'"
         @pointerdown.capture="focusCanvas" @pointermove="trackPointer" @pointerleave="forgetPointer"
         @dragover="dragOver" @drop="drop">
      <VueFlow :id="flowId" class="cc-flow" :node-types="nodeTypes"
               :nodes-draggable="!readOnly" :nodes-connectable="!readOnly" :elements-selectable="true"
               :edges-updatable="false" :delete-key-code="null" :auto-connect="false" :connect-on-click="false"
               :multi-selection-key-code="['Meta', 'Control', 'Shift']" :elevate-edges-on-select="true"
               :min-zoom="0.05" :max-zoom="2" :only-render-visible-elements="visibleOnly"
               @nodes-change="changed" @edges-change="changed" @selection-end="queueSelection"
               @nodes-initialized="nodesInitialized" @node-drag-start="dragStart" @node-drag-stop="dragStop"
               @connect="connect" @node-click="nodeClick" @move-end="moveEnd">
        <Background :gap="20" :size="1.2" pattern-color="#94a3b8" />
        <!-- Our own buttons: Vue Flow's have no accessible names, and its lock button would fight read_only. -->
        <Controls :show-zoom="false" :show-fit-view="false" :show-interactive="false">
          <ControlButton aria-label="Zoom in" title="Zoom in" @click="store.zoomIn()">
            <i class="q-icon material-icons notranslate" aria-hidden="true">add</i>
          </ControlButton>
          <ControlButton aria-label="Zoom out" title="Zoom out" @click="store.zoomOut()">
            <i class="q-icon material-icons notranslate" aria-hidden="true">remove</i>
          </ControlButton>
          <ControlButton aria-label="Fit the flow into view" title="Fit the flow into view" @click="fitView()">
            <i class="q-icon material-icons notranslate" aria-hidden="true">fit_screen</i>
          </ControlButton>
        </Controls>
        <MiniMap v-if="miniMapReady" pannable zoomable :node-color="miniMapColour" :node-stroke-width="0" />
      </VueFlow>
    </div>`,
};
