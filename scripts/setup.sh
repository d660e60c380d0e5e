#!/usr/bin/env bash
# Create .venv with glancesync (editable) and its dependencies; with --test also the pinned
# test tools (the "test" extra) and the system packages the integration test bed needs
# (gcc, python3-dev: its server venv compiles uWSGI). Without --test nothing needs root.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# extras: the REST API (glancesync-api) and its PostgreSQL driver
target=".[api,postgresql]"
if [ "${1:-}" = --test ]; then
  target=".[test,api,postgresql]"
  # Asks for root/sudo only when a package is actually missing; without them the unit
  # tests still run, the integration tests then say what is missing.
  bash scripts/install-system-deps.sh || echo "setup.sh: continuing without them" >&2
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || {
    echo "cannot create a venv with $PY: install python3-venv (Debian/Ubuntu:" \
      "apt-get install python3-venv) or set PYTHON=/path/to/python3.10+" >&2
    exit 1
  }
fi
.venv/bin/pip install -q --disable-pip-version-check -e "$target" 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
echo "glancesync is installed in $(pwd)/.venv (run .venv/bin/glancesync --help)" >&2
