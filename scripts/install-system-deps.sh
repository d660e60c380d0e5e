#!/usr/bin/env bash
# install-system-deps.sh - Debian/Ubuntu packages glancesync and its integration test bed need:
#   python3 + venv + pip    the tool's own virtualenv
#   python3-dev gcc         the test bed's server venv builds uWSGI from source
#                           (tests/integration/testbed.py)
#   postgresql              the REST API's live tests run once more against a throwaway
#                           PostgreSQL cluster (initdb/pg_ctl; nothing is left running)
# Idempotent: installs only what dpkg says is missing ("apt-get update" only then); a no-op
# when everything is there.  Needs root (or sudo) when something is missing.
#   scripts/install-system-deps.sh [--check]   --check: only report, exit 1 if missing
set -euo pipefail

PACKAGES=(python3 python3-venv python3-pip python3-dev gcc libc6-dev ca-certificates postgresql)

log() { echo "[install-system-deps] $*" >&2; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "not a Debian/Ubuntu system: install the equivalents of: ${PACKAGES[*]}"
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" = 0 ]; then
  log "all present: ${PACKAGES[*]}"
  exit 0
fi
if [ "${1:-}" = --check ]; then
  log "missing: ${missing[*]}"
  exit 1
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { log "missing ${missing[*]}; run as root"; exit 1; }
  SUDO=(sudo)
fi
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
log "done"
