#!/usr/bin/env bash
# The test command: sets everything up (idempotently) and runs the whole suite as root:
# typecheck, unit tests, then integration tests that build real labs of network namespaces.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$here/scripts/as-root.sh"
"$here/scripts/bootstrap.sh"
source "$here/scripts/node-env.sh"
cd "$here"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
npm test 2>&1 | tee "$log"
# One closing line over both ava runs (unit and integration).
awk '/^ +[0-9]+ tests? passed/ { p += $1 } /^ +[0-9]+ tests? failed/ { f += $1 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
