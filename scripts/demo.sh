#!/usr/bin/env bash
# The main job: sets everything up (idempotently), brings up a 3-host lab cluster, deploys a
# web service across its hosts, scales it up and down, shows where its tasks run, then deploys
# compose-examples/web-api-data.yaml as a stack, and builds build-examples/web into an image
# that runs as a service on every host.
# Leaves the lab running; `shoal lab down` removes it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$here/scripts/as-root.sh"
"$here/scripts/bootstrap.sh"
. "$here/scripts/node-env.sh"
shoal="$here/bin/shoal"
"$shoal" lab up --hosts "${SHOAL_DEMO_HOSTS:-3}"
echo
"$shoal" node ls
echo
echo '$ shoal network create -d overlay web-net'
"$shoal" network create -d overlay web-net >/dev/null
echo '$ shoal service create --name web --replicas 3 --network web-net -p 8080:80 busybox:1.35.0 httpd -f -p 80 -h /var/www'
"$shoal" service create --name web --replicas 3 --network web-net -p 8080:80 busybox:1.35.0 httpd -f -p 80 -h /var/www >/dev/null
echo '$ shoal service create --name api --network web-net busybox:1.35.0 sleep 3600'
"$shoal" service create --name api --network web-net busybox:1.35.0 sleep 3600 >/dev/null
echo '$ shoal service scale web=6'
"$shoal" service scale web=6 >/dev/null
echo '$ shoal service scale web=3'
"$shoal" service scale web=3 >/dev/null
echo
"$shoal" service ls
echo
"$shoal" service ps web
echo
"$shoal" network ls
echo
# Each task fetches the page of the next one, on another host, across the overlay (VXLAN).
"$shoal" service ps web --format json | node -e '
  const tasks = JSON.parse(require("fs").readFileSync(0, "utf8")).filter((t) => t.desiredState === "running");
  tasks.forEach((t, i) => {
    const peer = tasks[(i + 1) % tasks.length];
    console.log([t.node, t.name, peer.node, peer.attachments[0].address].join("\t"));
  });
' | while IFS=$'\t' read -r node name peer_node address; do
  printf '%s on %s -> %s on %s: %s\n' "$name" "$node" "$address" "$peer_node" "$("$shoal" container exec "$name" wget -qO- "http://$address/")"
done
echo
# Names: the api task finds web by its name, through the embedded DNS (127.0.0.11) and web's VIP.
api_task=$("$shoal" service ps api --format json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).find((t) => t.desiredState === "running").name)')
echo "\$ shoal container exec $api_task nslookup web"
"$shoal" container exec "$api_task" nslookup web | grep -A1 '^Name:' || true
echo "\$ shoal container exec $api_task wget -qO- http://web/"
"$shoal" container exec "$api_task" wget -qO- http://web/
echo
# The published port: every host answers on 8080 (the routing mesh), asked from outside the cluster.
labns="shoal-lab-infra"  # the lab's infra namespace: outside the cluster, on the underlay
"$shoal" node ls --format json | node -e 'for (const n of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(n.description.hostname + "\t" + n.description.address)' |
  while IFS=$'\t' read -r host address; do
    printf 'outside -> %s (%s):8080: %s\n' "$host" "$address" "$(ip netns exec "$labns" busybox wget -qO- "http://$address:8080/" 2>&1)"
  done
echo
# A stack: a compose file's front, API and data services on two overlays, named shop_*,
# finding each other by their short names; the front is published on 8090 of every node.
echo '$ FRONT_PORT=8090 shoal stack deploy -c compose-examples/web-api-data.yaml shop'
FRONT_PORT=8090 "$shoal" stack deploy -q -c "$here/compose-examples/web-api-data.yaml" shop
"$shoal" stack services shop
for _ in $(seq 30); do
  page=$(ip netns exec "$labns" busybox wget -qO- http://198.18.0.1:8090/ 2>/dev/null || true)
  case "$page" in *data*) break ;; esac
  sleep 1
done
printf 'outside -> h1 (198.18.0.1):8090: %s\n' "$page"
echo
# An image built from a Dockerfile of the repository on h1 (two stages), pushed to the lab's
# registry and run as a service on every host; the second build comes from the cache.
registry=198.18.0.250:5000
echo "\$ shoal image build --node h1 -t $registry/demo-web:1 --build-arg MESSAGE=built-by-shoal --push build-examples/web"
"$shoal" image build --node h1 -t "$registry/demo-web:1" --build-arg MESSAGE=built-by-shoal --push "$here/build-examples/web" | grep -E '^(Step|Successfully|.*digest)'
echo "\$ shoal image build ... (again: every step from the cache)"
"$shoal" image build --node h1 -t "$registry/demo-web:1" --build-arg MESSAGE=built-by-shoal "$here/build-examples/web" | grep -cE 'Using cache' | sed 's/^/steps from the cache: /'
echo "\$ shoal service create --name built --mode global -p 8095:80 $registry/demo-web:1"
"$shoal" service create --name built --mode global -p 8095:80 "$registry/demo-web:1" >/dev/null
for _ in $(seq 30); do
  page=$(ip netns exec "$labns" busybox wget -qO- http://198.18.0.2:8095/ 2>/dev/null || true)
  [ -n "$page" ] && break
  sleep 1
done
printf 'outside -> h2 (198.18.0.2):8095: %s\n' "$page"
echo
echo "The lab stays up: \`shoal ui\` shows it live (3 for networks, Enter on web-net for the overlay across the hosts; ? for every key); \`shoal lab down\` removes it."
