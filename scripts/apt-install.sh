#!/usr/bin/env bash
# Installs Debian packages quietly for one of the install-*.sh scripts: `apt-install.sh WHO WHY PACKAGE...`.
# Uses sudo when not root; prints apt's output only on failure, with WHO before each message.
set -euo pipefail

who=$1 why=$2
shift 2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: apt-get is not available; install $* by other means" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "$who: installing $why" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "$who: apt-get failed" >&2
  exit 1
fi
