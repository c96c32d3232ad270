#!/usr/bin/env bash
# Install the locked Python dependencies into .venv with uv, showing progress.
# The first install compiles llama-cpp-python from source (about 13 minutes on 2 cores);
# uv keeps the built wheel in its cache, so later installs take seconds.
set -euo pipefail
uv="$1"; python="$2"

if [ -x .venv/bin/python ] && .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  exec "$uv" sync --frozen --python "$python"
fi

echo "==> first install: llama-cpp-python may be compiled from source (about 13 minutes on 2 cores, once;"
echo "    the wheel is cached afterwards). Compiler progress lines ([n/m]) and a heartbeat follow."
start=$(date +%s)
( while sleep 30; do echo "    ... still installing, $(( ($(date +%s) - start) / 60 ))m$(( ($(date +%s) - start) % 60 ))s elapsed"; done ) &
heartbeat=$!
trap 'kill $heartbeat 2>/dev/null || true' EXIT
# -v streams the build backend's output; keep the lines that show how far the build is.
set +e
"$uv" sync --frozen --python "$python" -v 2>&1 \
  | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]|Building|Built|Prepared|Installed|Uninstalled|error|Error' \
  | grep --line-buffered -v 'DEBUG'
status=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] || { echo "dependency install failed (uv exit $status); rerun: $uv sync --frozen -v"; exit "$status"; }
echo "==> dependencies installed in $(( $(date +%s) - start ))s"
