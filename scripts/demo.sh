#!/usr/bin/env bash
# The main job: sets everything up (idempotently), brings up a 3-host lab cluster, deploys a
# web service across its hosts, scales it up and down, and shows where its tasks run.
# Leaves the lab running; `shoal lab down` removes it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/bootstrap.sh"
shoal="$here/bin/shoal"
"$shoal" lab up --hosts "${SHOAL_DEMO_HOSTS:-3}"
echo
"$shoal" node ls
echo
echo '$ shoal service create --name web --replicas 3 busybox:1.35.0 httpd -f -p 80 -h /var/www'
"$shoal" service create --name web --replicas 3 busybox:1.35.0 httpd -f -p 80 -h /var/www >/dev/null
echo '$ shoal service scale web=6'
"$shoal" service scale web=6 >/dev/null
echo '$ shoal service scale web=3'
"$shoal" service scale web=3 >/dev/null
echo
"$shoal" service ls
echo
"$shoal" service ps web
echo
# Each task's container answers on its host.
"$shoal" container ls --format json | node -e '
  const rows = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const c of rows.filter((c) => c.name.startsWith("web."))) console.log(c.node + "\t" + c.name);
' | while IFS=$'\t' read -r node name; do
  printf '%s: %s serves: %s\n' "$node" "$name" "$("$shoal" container exec "$name" wget -qO- http://127.0.0.1/)"
done
