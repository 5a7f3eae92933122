#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, postgres) are installed:
# mayflyd runs a private Postgres from them when no database URL is given,
# and the tests run against a real Postgres started the same way.
set -euo pipefail

have_pg() {
	if [ -n "${MAYFLY_PG_BINDIR:-}" ] && [ -x "$MAYFLY_PG_BINDIR/initdb" ] && [ -x "$MAYFLY_PG_BINDIR/postgres" ]; then
		return 0
	fi
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then return 0; fi
	done
	command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

if have_pg; then
	exit 0
fi
echo "ensure-postgres: PostgreSQL server binaries not found; installing the postgresql package" >&2
"$(dirname "$0")/apt-install.sh" postgresql
have_pg || { echo "ensure-postgres: installed postgresql but initdb/postgres still not found" >&2; exit 1; }
