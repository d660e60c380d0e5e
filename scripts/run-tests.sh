#!/usr/bin/env bash
# Set up everything (system packages, .venv, the Keystone + Glance test bed venv) and run
# the whole suite: unit, offline scenarios, and integration tests against real servers
# that the suite starts on 127.0.0.1 and stops at the end. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check glancesync tests scripts bench
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
