"""NiceGUI custom elements of our own: each is `name.py` (the Python side) beside `name.js` (its Vue component).

`flow_canvas` wraps Vue Flow, bundled by `make jsbuild` into `dist/vue_flow.js` from `vue_flow_lib.js`.
"""
