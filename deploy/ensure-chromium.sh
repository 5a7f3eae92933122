#!/usr/bin/env bash
# Makes sure headless Chromium is installed: the web client's browser tests
# (gateway/internal/web) drive Debian's chromium package through chromedp and fail,
# rather than skip, without it. MAYFLY_CHROMIUM points them at another binary.
set -euo pipefail

CHROMIUM="${MAYFLY_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
	exit 0
fi
echo "ensure-chromium: $CHROMIUM not found; installing the chromium package" >&2
"$(dirname "$0")/apt-install.sh" chromium
[ -x "$CHROMIUM" ] || { echo "ensure-chromium: installed chromium but $CHROMIUM is still missing" >&2; exit 1; }
