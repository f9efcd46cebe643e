#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests of the desk console and the API docs pages (Playwright drives it through
# executable_path, so no browser download is needed), with CJK fonts so the Japanese labels render.
# Idempotent and quiet: does nothing when /usr/bin/chromium exists; prints apt's output only on failure.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

bash "$(dirname "$0")/apt-install.sh" install-chromium "Debian's chromium for the browser tests" \
  chromium fonts-noto-cjk
[ -x "$CHROMIUM" ] || { echo "install-chromium: $CHROMIUM is still missing after the install" >&2; exit 1; }
