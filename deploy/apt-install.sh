#!/usr/bin/env bash
# apt-install.sh PACKAGE...: installs Debian packages non-interactively, with
# sudo when not root. Used by ensure-postgres.sh and ensure-chromium.sh.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "apt-install: no apt-get here; install $* yourself" >&2
	exit 1
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@"
