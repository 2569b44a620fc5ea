#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine with Python 3.11+:
#   ./dev.sh serve [streamre serve flags...]   set up, then run the server on the bundled model
#   ./dev.sh test  [pytest args...]            set up with test dependencies, then run the suite
# Set TORCH_INDEX=https://download.pytorch.org/whl/cpu where PyPI's torch would pull CUDA.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX=${TORCH_INDEX:-}

apt_install() {  # install the Debian packages not yet there
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "==> apt-get install ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

setup() {  # $1: "" or "[test]"
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local pip=("$VENV/bin/python" -m pip install -q)
  # torch first and pinned: a CPU machine keeps the CPU build, nothing pulls CUDA later.
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "==> installing $TORCH_SPEC"
    "${pip[@]}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH_SPEC"
  fi
  echo "==> installing streamre$1"
  "${pip[@]}" -e ".$1"
  # The speaker encoder's weights (voices) ship inside Resemblyzer's wheel; streamre reads them
  # with its own code, so the package's dependencies (librosa) are not installed.
  "${pip[@]}" --no-deps resemblyzer==0.1.4
  # The browser client's third-party code (cytoscape.js), pinned, from the npm registry.
  command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d clients/web/node_modules ] || [ clients/web/package-lock.json -nt clients/web/node_modules ]; then
    echo "==> npm ci (clients/web)"
    (cd clients/web && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

cmd=${1:-}; shift || true
case "$cmd" in
  serve)
    setup ""
    exec "$VENV/bin/streamre" serve "$@"
    ;;
  test)
    apt_install espeak-ng flite mosquitto chromium
    setup "[test]"
    # Two workers, each test file on one: much of the suite waits on real time (speech
    # streamed live, servers killed and restarted), so two share the machine's cores well.
    exec "$VENV/bin/python" -m pytest -n 2 --dist loadfile "$@"
    ;;
  *)
    echo "usage: ./dev.sh serve [flags] | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
