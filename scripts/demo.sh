#!/usr/bin/env bash
# Set up glancesync and run it on the bundled example (examples/federation: backups of a
# master region and three destination regions in two clouds), offline: nothing is
# contacted, the CSV files of a scratch copy are the regions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/glancesync-demo.XXXXXX")
cp examples/federation/*.csv "$work/"
export GLANCESYNC_CONFIG=examples/federation/glancesync.conf
gs() { echo; echo "\$ glancesync --offline $work $*"; .venv/bin/glancesync --offline "$work" "$@" || echo "(exit code $?)"; }
gs --show-status master: other:
gs --dry-run master: other:
gs master: other:
gs --show-status master: other:
echo; echo "The regions are now the CSV files in $work"
