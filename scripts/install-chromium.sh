#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests of the desk console and the API docs pages (Playwright drives it through
# executable_path, so no browser download is needed), with CJK fonts so the Japanese labels render.
# Idempotent and quiet: does nothing when /usr/bin/chromium exists; prints apt's output only on failure.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get is not available; install Chromium at $CHROMIUM by other means" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "install-chromium: installing Debian's chromium for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-chromium: apt-get failed" >&2
  exit 1
fi
[ -x "$CHROMIUM" ] || { echo "install-chromium: $CHROMIUM is still missing after the install" >&2; exit 1; }
