#!/usr/bin/env bash
# The main job: sets everything up (idempotently), brings up a 3-host lab cluster, shows its
# nodes, and runs a web server container on each host from the lab registry's busybox image.
# Leaves the lab running; `shoal lab down` removes it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/bootstrap.sh"
shoal="$here/bin/shoal"
hosts=${SHOAL_DEMO_HOSTS:-3}
"$shoal" lab up --hosts "$hosts"
echo
"$shoal" node ls
echo
for i in $(seq 1 "$hosts"); do
  "$shoal" container run -d --node "h$i" --name "web-h$i" --memory 32m busybox:1.35.0 httpd -f -p 80 -h /var/www >/dev/null
  printf 'h%s: %s\n' "$i" "$("$shoal" container exec "web-h$i" sh -c 'echo "container $(hostname) serves: $(wget -qO- http://127.0.0.1/)"')"
done
echo
"$shoal" container ls
