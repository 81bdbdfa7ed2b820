#!/usr/bin/env bash
# System packages some checks need, from Debian/Ubuntu: chromium (the rendered-site test opens every
# page in it), bubblewrap, podman and runc (sandboxed autograding). `make test` runs this first.
# Installs what is missing when it can (root, or sudo without a password); otherwise it says what
# to install and carries on: those tests then skip, except on CI (CI=true), where they fail.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: please install ${need[*]} with your package manager (no apt-get here)" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "system_deps: missing ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 0
fi
echo "system_deps: installing ${need[*]} (apt-get)"
$SUDO apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${need[@]}" >/dev/null; }
