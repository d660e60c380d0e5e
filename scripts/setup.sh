#!/usr/bin/env bash
# Create .venv with glancesync and its dependencies (and pytest with --test).
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then
  bash scripts/install-system-deps.sh
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
reqs=requirements.txt
[ "${1:-}" = "--test" ] && reqs=requirements-test.txt
.venv/bin/pip install -q --disable-pip-version-check -r "$reqs" -e . 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
echo "glancesync is installed in $(pwd)/.venv (run .venv/bin/glancesync --help)" >&2
