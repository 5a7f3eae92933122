#!/usr/bin/env bash
# Runs Mayfly's three-city disaster-recovery shape on 127.0.0.1: one NATS
# JetStream cluster stretched over three sites (a, b, c; one server each,
# tagged site:<city>, unique_tag "site:", so an R3 stream keeps one replica
# per city), with the accounts mayflyd expects and the auth callout for
# NATS-native clients configured in every city; a Postgres primary in city a
# and a synchronous standby in city b (Debian's postgresql-15 binaries,
# streaming replication); one token signing key and one callout issuer key
# for every city. For the DR drill, tests and trying the shape by hand, not
# production: loopback only, no TLS. docs/dr.md explains the topology.
#
#   deploy/dr/sites.sh start DIR          build, configure (first time) and start everything
#   deploy/dr/sites.sh stop DIR           stop everything (SIGTERM)
#   deploy/dr/sites.sh kill DIR SITE      SIGKILL one city's NATS server and Postgres
#   deploy/dr/sites.sh start-site DIR SITE  restart one city's NATS server; its Postgres
#                                         comes back as the standby of the current primary
#   deploy/dr/sites.sh promote DIR SITE   promote SITE's standby to primary (failover)
#   deploy/dr/sites.sh env DIR SITE       print the mayflyd environment for SITE
#   deploy/dr/sites.sh add-site DIR SITE  start a replacement city SITE (d): its NATS
#                                         server, and its Postgres as a standby of the primary
#   deploy/dr/sites.sh remove-site DIR SITE  a city lost for good: fence it (SIGKILL), drop
#                                         its server from JetStream (mayflyd dr-remove-site)
#                                         and its standby from synchronous_standby_names
#
# DR_SINGLE_SITE=1 at the first start tags all three servers site:a and
# drops unique_tag: the single-site R3 baseline the drill compares with.
#
# Ports: DR_PORT_BASE (default 24200): NATS clients base+0..3, routes
# base+10..13, monitoring base+20..23, Postgres base+30..33 (sites a, b, c
# and the replacement d; the drill's mayflyd HTTP base+40..43).
# Everything is under DIR, which user postgres must be able to reach when
# this runs as root (postgres refuses to run as root): /tmp/... works.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
site=${3:-}
sites=(a b c)
base=${DR_PORT_BASE:-24200}
usage() {
	sed -n '/^#   deploy/p' "$0" | sed 's/^#   /usage: /' >&2
	exit 2
}
[[ -n $cmd && -n $dir ]] || usage
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ -s $dir/ports ]] || echo "$base" > "$dir/ports"
base=$(cat "$dir/ports") # the ports chosen at the first start stay

idx() { case $1 in a) echo 0 ;; b) echo 1 ;; c) echo 2 ;; d) echo 3 ;; *) echo "unknown site $1 (want a, b, c or d)" >&2; exit 2 ;; esac; }
# The cities of this deployment: a, b, c, and d once added; minus removed ones.
[[ -e $dir/nats-d.conf ]] && sites+=(d)
for s in "${sites[@]}"; do
	[[ -e $dir/removed-$s ]] && sites=("${sites[@]/$s/}")
done
read -r -a sites <<< "${sites[*]}"
nats_port() { echo $((base + $(idx "$1"))); }
route_port() { echo $((base + 10 + $(idx "$1"))); }
mon_port() { echo $((base + 20 + $(idx "$1"))); }
pg_port() { echo $((base + 30 + $(idx "$1"))); }

# as_pg runs a command as user postgres when we are root.
as_pg() {
	if [[ $(id -u) == 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
pgbin() { echo "$(pg_config --bindir)/$1"; }

# keys makes the secrets every city shares, once.
keys() {
	mkdir -p "$dir/bin" "$dir/keys"
	chmod 700 "$dir/keys"
	(cd "$root" && go build -o "$dir/bin/" github.com/nats-io/nats-server/v2 github.com/nats-io/nkeys/nk)
	if [[ ! -s $dir/keys/password ]]; then
		head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/keys/password"
	fi
	if [[ ! -s $dir/keys/token.pem ]]; then
		openssl genpkey -algorithm ed25519 -out "$dir/keys/token.pem" 2>/dev/null
	fi
	if [[ ! -s $dir/keys/callout.nk ]]; then
		"$dir/bin/nk" -gen account > "$dir/keys/callout.nk"
	fi
	"$dir/bin/nk" -inkey "$dir/keys/callout.nk" -pubout > "$dir/keys/callout.pub"
	chmod 600 "$dir"/keys/*
}

nats_conf() {
	local s=$1 pw issuer routes="" tag=$1 unique='unique_tag: "site:"'
	if [[ -n ${DR_SINGLE_SITE:-} ]]; then
		tag=a unique=""
	fi
	pw=$(cat "$dir/keys/password")
	issuer=$(cat "$dir/keys/callout.pub")
	for o in "${sites[@]}"; do
		routes+="nats-route://127.0.0.1:$(route_port "$o"), "
	done
	cat > "$dir/nats-$s.conf" <<CONF
server_name: $s
listen: 127.0.0.1:$(nats_port "$s")
http: 127.0.0.1:$(mon_port "$s")
server_tags: ["site:$tag"]
max_payload: 262144
jetstream { store_dir: "$dir/nats-$s", sync_interval: always, $unique }
cluster { name: mayfly, listen: 127.0.0.1:$(route_port "$s"), routes: [ ${routes%, } ] }
accounts {
  MAYFLY { jetstream: enabled, users: [ { user: mayfly-service, password: "$pw" } ] }
  AUTH { users: [ { user: mayfly-auth, password: "$pw" } ] }
  SYS { users: [ { user: mayfly-sys, password: "$pw" } ] }
}
system_account: SYS
authorization {
  timeout: 3s
  auth_callout { issuer: "$issuer", account: AUTH, auth_users: [ mayfly-service, mayfly-auth, mayfly-sys ] }
}
CONF
	chmod 600 "$dir/nats-$s.conf"
}

start_nats() {
	local s=$1
	[[ -e $dir/nats-$s.conf ]] || nats_conf "$s"
	"$dir/bin/nats-server" -c "$dir/nats-$s.conf" >> "$dir/nats-$s.log" 2>&1 &
	echo $! > "$dir/nats-$s.pid"
}

# pg_common writes the settings every Postgres of the deployment shares.
pg_common() {
	local s=$1
	local data=$dir/pg-$s/data
	cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $(pg_port "$s")
unix_socket_directories = '$dir/pg-$s'
cluster_name = '$s'
wal_level = replica
wal_log_hints = on
max_wal_senders = 8
hot_standby = on
synchronous_commit = on
CONF
}

pg_start() {
	local s=$1
	as_pg "$(pgbin pg_ctl)" -D "$dir/pg-$s/data" -l "$dir/pg-$s/log" -w -t 60 start > /dev/null
}

# pg_init makes the primary in city a with database mayfly, once.
pg_init() {
	local s=a data=$dir/pg-a/data
	[[ -e $data/PG_VERSION ]] && return
	mkdir -p "$dir/pg-a"
	cp "$dir/keys/password" "$dir/pg-a/pw"
	chown -R postgres: "$dir/pg-a" 2>/dev/null || true
	chmod 700 "$dir/pg-a"
	as_pg "$(pgbin initdb)" -D "$data" -U postgres --pwfile="$dir/pg-a/pw" --auth-host=scram-sha-256 --auth-local=trust > "$dir/pg-a/initdb.log"
	rm -f "$dir/pg-a/pw"
	pg_common a
	echo "host replication all 127.0.0.1/32 scram-sha-256" >> "$data/pg_hba.conf"
	pg_start a
	as_pg "$(pgbin psql)" -qAt -h "$dir/pg-a" -p "$(pg_port a)" -U postgres -c "CREATE DATABASE mayfly" > /dev/null
}

# pg_standby makes SITE a streaming standby of the primary at port $2.
pg_standby() {
	local s=$1 from=$2
	local data=$dir/pg-$s/data
	rm -rf "$dir/pg-$s"
	mkdir -p "$dir/pg-$s"
	chown postgres: "$dir/pg-$s" 2>/dev/null || true
	chmod 700 "$dir/pg-$s"
	as_pg env PGPASSWORD="$(cat "$dir/keys/password")" \
		"$(pgbin pg_basebackup)" -h 127.0.0.1 -p "$from" -U postgres -D "$data" -R -X stream -c fast
	# The copied postgresql.conf names the primary's port and socket: ours win (read last).
	pg_common "$s"
	echo "synchronous_standby_names = ''" >> "$data/postgresql.conf"
	pg_start "$s"
}

# primary prints the site whose Postgres answers as read-write, if any.
primary() {
	for s in "${sites[@]}"; do
		[[ -e $dir/pg-$s/data/PG_VERSION ]] || continue
		if [[ $(as_pg "$(pgbin psql)" -qAt -h "$dir/pg-$s" -p "$(pg_port "$s")" -U postgres -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; then
			echo "$s"
			return
		fi
	done
}

sql() { as_pg "$(pgbin psql)" -qAt -h "$dir/pg-$1" -p "$(pg_port "$1")" -U postgres -c "$2"; }

service_url() {
	local s=$1 pw u="" o
	pw=$(cat "$dir/keys/password")
	u="nats://$2:$pw@127.0.0.1:$(nats_port "$s")"
	for o in "${sites[@]}"; do
		[[ $o == "$s" ]] || u+=",nats://$2:$pw@127.0.0.1:$(nats_port "$o")"
	done
	echo "$u"
}

# pg_hosts lists the Postgres servers of the cities that have one.
pg_hosts() {
	local s out=""
	for s in "${sites[@]}"; do
		[[ -e $dir/pg-$s/data ]] && out+="${out:+,}127.0.0.1:$(pg_port "$s")"
	done
	echo "$out"
}

env_of() {
	local s=$1 pw
	pw=$(cat "$dir/keys/password")
	cat <<ENV
MAYFLY_NATS_URL='$(service_url "$s" mayfly-service)'
MAYFLY_NATS_AUTH_URL='$(service_url "$s" mayfly-auth)'
MAYFLY_NATS_SYS_URL='$(service_url "$s" mayfly-sys)'
MAYFLY_DATABASE_URL='postgres://postgres:$pw@$(pg_hosts)/mayfly?target_session_attrs=read-write&connect_timeout=2'
MAYFLY_REPLICAS=3
MAYFLY_TOKEN_KEY='$dir/keys/token.pem'
MAYFLY_TOKEN_KEY_REQUIRED=true
MAYFLY_CALLOUT_KEY='$dir/keys/callout.nk'
ENV
}

wait_meta() {
	for _ in $(seq 1 150); do
		if curl -fsS "http://127.0.0.1:$(mon_port "$1")/healthz?js-enabled-only=true" > /dev/null 2>&1 &&
			grep -q "metadata leader" "$dir"/nats-*.log 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	echo "nats not ready after 30 s; see $dir/nats-*.log" >&2
	return 1
}

killpid() { # killpid SIGNAL FILE: signal the pid in FILE and its children
	local sig=$1 f=$2 pid
	[[ -e $f ]] || return 0
	pid=$(head -1 "$f")
	pkill "-$sig" -P "$pid" 2>/dev/null || true
	kill "-$sig" "$pid" 2>/dev/null || true
	rm -f "$f"
}

case $cmd in
start)
	keys
	for s in "${sites[@]}"; do start_nats "$s"; done
	wait_meta a
	pg_init
	if [[ ! -e $dir/pg-b/data/PG_VERSION ]]; then
		pg_standby b "$(pg_port a)"
		# From now on a commit returns once b has flushed it too.
		sql a "ALTER SYSTEM SET synchronous_standby_names = 'b'" > /dev/null
		sql a "SELECT pg_reload_conf()" > /dev/null
	fi
	for s in "${sites[@]}"; do env_of "$s" > "$dir/env-$s"; chmod 600 "$dir/env-$s"; done
	echo "running in $dir; mayflyd for city a: (set -a; . $dir/env-a; mayflyd --data $dir/mayflyd-a --http 127.0.0.1:8080)"
	;;
stop)
	for s in "${sites[@]}"; do killpid TERM "$dir/nats-$s.pid"; done
	for s in "${sites[@]}"; do
		[[ -e $dir/pg-$s/data/postmaster.pid ]] && as_pg "$(pgbin pg_ctl)" -D "$dir/pg-$s/data" -m fast -w stop > /dev/null 2>&1 || true
	done
	;;
kill)
	[[ -n $site ]] || usage
	killpid KILL "$dir/nats-$site.pid"
	if [[ -e $dir/pg-$site/data/postmaster.pid ]]; then
		pid=$(head -1 "$dir/pg-$site/data/postmaster.pid")
		pkill -KILL -P "$pid" 2>/dev/null || true
		kill -KILL "$pid" 2>/dev/null || true
	fi
	;;
start-site)
	[[ -n $site ]] || usage
	start_nats "$site"
	p=$(primary)
	if [[ -e $dir/pg-$site/data/PG_VERSION && $p != "$site" ]]; then
		if [[ -n $p ]]; then
			# Rebuild it as the current primary's standby: its WAL may hold
			# commits nobody acknowledged (or the old timeline), so never
			# start it as a primary next to the promoted one.
			pg_standby "$site" "$(pg_port "$p")"
			sql "$p" "ALTER SYSTEM SET synchronous_standby_names = '$site'" > /dev/null
			sql "$p" "SELECT pg_reload_conf()" > /dev/null
		else
			pg_start "$site"
		fi
	fi
	;;
promote)
	[[ -n $site ]] || usage
	as_pg "$(pgbin pg_ctl)" -D "$dir/pg-$site/data" -w promote > /dev/null
	# No standby is left: wait for none, or every commit would hang until
	# the old primary returns (start-site makes it the new standby).
	sql "$site" "ALTER SYSTEM SET synchronous_standby_names = ''" > /dev/null
	sql "$site" "SELECT pg_reload_conf()" > /dev/null
	;;
env)
	[[ -n $site ]] || usage
	env_of "$site"
	;;
add-site)
	[[ -n $site ]] || usage
	[[ ! -e $dir/nats-$site.conf ]] || { echo "site $site exists already" >&2; exit 2; }
	sites+=("$site")
	start_nats "$site"
	p=$(primary)
	[[ -n $p ]] || { echo "no Postgres primary to copy from" >&2; exit 1; }
	pg_standby "$site" "$(pg_port "$p")"
	sql "$p" "ALTER SYSTEM SET synchronous_standby_names = '$site'" > /dev/null
	sql "$p" "SELECT pg_reload_conf()" > /dev/null
	for s in "${sites[@]}"; do env_of "$s" > "$dir/env-$s"; chmod 600 "$dir/env-$s"; done
	;;
remove-site)
	[[ -n $site ]] || usage
	# Fence first: a removed server that came back would rejoin with its
	# old replicas, and its Postgres must never run as a primary again.
	killpid KILL "$dir/nats-$site.pid"
	if [[ -e $dir/pg-$site/data/postmaster.pid ]]; then
		pid=$(head -1 "$dir/pg-$site/data/postmaster.pid")
		kill -KILL "$pid" 2>/dev/null || true
	fi
	touch "$dir/removed-$site"
	sites=("${sites[@]/$site/}")
	read -r -a sites <<< "${sites[*]}"
	live=${sites[0]}
	[[ -x $dir/bin/mayflyd ]] || (cd "$root" && go build -o "$dir/bin/" ./cmd/mayflyd)
	(set -a; . "$dir/env-$live"; "$dir/bin/mayflyd" dr-remove-site "$site")
	p=$(primary)
	if [[ -n $p ]]; then
		names=""
		for s in "${sites[@]}"; do
			[[ $s == "$p" || ! -e $dir/pg-$s/data/PG_VERSION ]] || names+="${names:+, }$s"
		done
		sql "$p" "ALTER SYSTEM SET synchronous_standby_names = '${names:+ANY 1 ($names)}'" > /dev/null
		sql "$p" "SELECT pg_reload_conf()" > /dev/null
	fi
	rm -rf "$dir/nats-$site" "$dir/pg-$site" "$dir/env-$site"
	for s in "${sites[@]}"; do env_of "$s" > "$dir/env-$s"; chmod 600 "$dir/env-$s"; done
	;;
*) usage ;;
esac
