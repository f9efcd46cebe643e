#!/usr/bin/env bash
# Installs what the printed documents need (eventkit.documents): Debian's IPAex fonts, which every PDF embeds
# as a subset (DOCUMENT_FONT_PATH, default the Gothic one), and poppler-utils, with which the tests read the
# PDFs back (pdftotext, pdffonts, pdftoppm). Idempotent and quiet: does nothing when both are there; prints
# apt's output only on failure.
set -euo pipefail

FONT=/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf
[ -f "$FONT" ] && command -v pdftotext >/dev/null 2>&1 && command -v pdffonts >/dev/null 2>&1 && exit 0

bash "$(dirname "$0")/apt-install.sh" install-fonts "the IPAex fonts and poppler-utils for the printed documents" \
  fonts-ipaexfont-gothic fonts-ipaexfont-mincho poppler-utils
[ -f "$FONT" ] || { echo "install-fonts: $FONT is still missing after the install" >&2; exit 1; }
