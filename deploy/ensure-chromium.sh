#!/usr/bin/env bash
# Makes sure headless Chromium is installed: the web client's browser tests
# (gateway/web) drive Debian's chromium package through chromedp and fail,
# rather than skip, without it. MAYFLY_CHROMIUM points them at another binary.
set -euo pipefail

CHROMIUM="${MAYFLY_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
	exit 0
fi
echo "ensure-chromium: $CHROMIUM not found; installing the chromium package" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-chromium: no apt-get here; install Chromium yourself and set MAYFLY_CHROMIUM to its binary" >&2
	exit 1
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
[ -x "$CHROMIUM" ] || { echo "ensure-chromium: installed chromium but $CHROMIUM is still missing" >&2; exit 1; }
