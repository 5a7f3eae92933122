#!/usr/bin/env bash
# Runs a three-node NATS JetStream cluster on 127.0.0.1 for mayflyd's
# --nats-url (the scale-out shape, R3 mailboxes), built from the
# nats-server version in go.mod. For benchmarks and trying things by hand,
# not production: plain-text passwords, no TLS, loopback only.
#
#   deploy/nats/cluster.sh start DIR   # prints the service URL for --nats-url
#   deploy/nats/cluster.sh stop DIR
#
# Then, e.g.:
#   mayflyd --nats-url "$(cat DIR/service.url)" --replicas 3 --data DIR/mayflyd
#
# Client ports 14222-14224, route ports 16222-16224. JetStream syncs every
# write (sync_interval: always), like the embedded server.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
	echo "usage: $0 start|stop DIR" >&2
	exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

stop() {
	for pid in "$dir"/n*.pid; do
		[[ -e $pid ]] || continue
		kill "$(cat "$pid")" 2>/dev/null || true
		rm -f "$pid"
	done
}

if [[ $cmd == stop ]]; then
	stop
	exit 0
fi
if [[ $cmd != start ]]; then
	echo "usage: $0 start|stop DIR" >&2
	exit 2
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$root" && go build -o "$dir/nats-server" github.com/nats-io/nats-server/v2)

if [[ ! -s $dir/service.password ]]; then
	head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/service.password"
	chmod 600 "$dir/service.password"
fi
pw=$(cat "$dir/service.password")

routes="nats-route://127.0.0.1:16222, nats-route://127.0.0.1:16223, nats-route://127.0.0.1:16224"
for i in 1 2 3; do
	cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:1422$((i + 1))
max_payload: 262144
jetstream { store_dir: "$dir/n$i", sync_interval: always }
cluster { name: mayfly, listen: 127.0.0.1:1622$((i + 1)), routes: [ $routes ] }
accounts {
  MAYFLY { jetstream: enabled, users: [ { user: mayfly-service, password: "$pw" } ] }
  SYS { users: [ { user: mayfly-sys, password: "$pw" } ] }
}
system_account: SYS
CONF
	"$dir/nats-server" -c "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
	echo $! > "$dir/n$i.pid"
done

# Wait until JetStream has a meta leader: a stream can be created then.
for _ in $(seq 1 100); do
	if grep -q "JetStream cluster new metadata leader\|Self is new JetStream cluster metadata leader" "$dir"/n*.log 2>/dev/null; then
		url="nats://mayfly-service:$pw@127.0.0.1:14222,nats://mayfly-service:$pw@127.0.0.1:14223,nats://mayfly-service:$pw@127.0.0.1:14224"
		echo "$url" > "$dir/service.url"
		chmod 600 "$dir/service.url"
		echo "$url"
		exit 0
	fi
	sleep 0.2
done
echo "cluster not ready after 20 s; see $dir/n*.log" >&2
stop
exit 1
