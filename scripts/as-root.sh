# Sourced first by the scripts: they build network namespaces and install packages, so they
# run as root. Root runs them as they are; anyone else is re-run under sudo; where neither
# works, one line says what to do.
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=PATH,SHOAL_DEMO_HOSTS,CI "$0" "$@"
  fi
  echo "$(basename "$0"): needs root (it installs packages and builds network namespaces): run it in a root shell (su -), or install sudo" >&2
  exit 1
fi
