#!/usr/bin/env bash
# Installs what the printed documents need (eventkit.documents): Debian's IPAex fonts, which every PDF embeds
# as a subset (DOCUMENT_FONT_PATH, default the Gothic one), and poppler-utils, with which the tests read the
# PDFs back (pdftotext, pdffonts, pdftoppm). Idempotent and quiet: does nothing when both are there; prints
# apt's output only on failure.
set -euo pipefail

FONT=/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf
[ -f "$FONT" ] && command -v pdftotext >/dev/null 2>&1 && command -v pdffonts >/dev/null 2>&1 && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-fonts: apt-get is not available; install the IPAex fonts ($FONT) and poppler-utils by other means" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "install-fonts: installing the IPAex fonts and poppler-utils for the printed documents" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends fonts-ipaexfont-gothic fonts-ipaexfont-mincho \
         poppler-utils; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-fonts: apt-get failed" >&2
  exit 1
fi
[ -f "$FONT" ] || { echo "install-fonts: $FONT is still missing after the install" >&2; exit 1; }
