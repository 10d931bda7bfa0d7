#!/usr/bin/env bash
# The test command: sets everything up (idempotently) and runs the whole suite as root:
# typecheck, unit tests, then integration tests that build real labs of network namespaces.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/bootstrap.sh"
source "$here/scripts/node-env.sh"
cd "$here"
npm test
