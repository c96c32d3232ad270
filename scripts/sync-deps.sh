#!/usr/bin/env bash
# Install the locked Python dependencies into .venv with uv, showing progress.
#
# llama-cpp-python has no binary wheel on PyPI: the first install compiles it (about 13
# minutes on 2 cores). uv caches the wheel it builds, but keyed on a revision of the sdist
# that uv renews when it revalidates the download, which made clean clones compile again.
# So the wheel built from the locked sdist is also kept in a wheelhouse of our own
# (~/.cache/crewcanvas/wheels, shared by every clone on this machine) and installed from
# there; everything else comes from uv.lock as usual.
#
# The installed packages are then compiled to bytecode once: these machines set
# PYTHONDONTWRITEBYTECODE=1, so Python never caches what it compiles, and every process of a
# test run (each pytest worker, each app and CLI process the tests start) compiled every module
# it imported from source again: about 3 s of CPU per `main.py` run, more for crewai and litellm.
set -euo pipefail
uv="$1"; python="$2"

pkg=llama-cpp-python
version=$(awk -v name="name = \"$pkg\"" '$0 == name { getline; gsub(/"/, "", $3); print $3; exit }' uv.lock)
[ -n "$version" ] || { echo "cannot find $pkg in uv.lock"; exit 1; }
house="${XDG_CACHE_HOME:-$HOME/.cache}/crewcanvas/wheels"
wheel_glob="llama_cpp_python-${version}-*.whl"

have_version() {
  [ -x .venv/bin/python ] && .venv/bin/python - "$version" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(version("llama-cpp-python") != sys.argv[1])
EOF
}

compile_bytecode() {
  echo "==> compiling the installed packages to bytecode"
  local site
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  # Some packages ship templates named *.py that are not Python (crewai_cli's): compileall
  # reports them and compiles the rest, so its exit status says nothing useful here.
  .venv/bin/python -m compileall -q -j 0 "$site" >/dev/null || true
}

wheel=$(ls "$house"/$wheel_glob 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ]; then
  "$uv" sync --frozen --python "$python" --no-install-package "$pkg"
  if ! have_version; then
    echo "==> installing $pkg $version from the wheelhouse ($wheel)"
    "$uv" pip install --python .venv/bin/python --no-deps "$wheel"
  fi
  compile_bytecode
  exit 0
fi

if have_version; then
  "$uv" sync --frozen --python "$python"
else
  echo "==> first install: $pkg $version is compiled from source (about 13 minutes on 2 cores, once;"
  echo "    the wheel is kept in $house afterwards). Compiler progress lines ([n/m]) and a heartbeat follow."
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
fi

# Keep the wheel uv built (from the locked, hash-checked sdist) for the next clone.
built=$(find "$("$uv" cache dir)" -name "$wheel_glob" -type f 2>/dev/null | head -n 1 || true)
if [ -n "$built" ]; then
  mkdir -p "$house"
  cp "$built" "$house/.partial.whl" && mv "$house/.partial.whl" "$house/$(basename "$built")"
  echo "==> kept $(basename "$built") in $house"
fi
compile_bytecode
