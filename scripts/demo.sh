#!/usr/bin/env bash
# The main job: sets everything up (idempotently), brings up a 3-host lab cluster and shows
# its nodes. Leaves the lab running; `shoal lab down` removes it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/bootstrap.sh"
shoal="$here/bin/shoal"
"$shoal" lab up --hosts "${SHOAL_DEMO_HOSTS:-3}"
echo
"$shoal" node ls
