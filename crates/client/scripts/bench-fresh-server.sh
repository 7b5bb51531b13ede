#!/usr/bin/env bash
# Runs one chat-bench scenario against a fresh chat-server, each pinned to
# its own CPU so neither steals the other's cycles (server on CPU 0, bench on
# CPU 1; override with SERVER_CPU / BENCH_CPU). The server gets a new empty
# data directory and the flags the bench needs (no send rate limit, 100 rooms
# per connection), and its PID is passed to the bench so the report includes
# the server's RSS and CPU time.
#
#   crates/client/scripts/bench-fresh-server.sh idle --connections 10000 --rooms 100 --hold 10
#   crates/client/scripts/bench-fresh-server.sh durable --rooms 100 --senders-per-room 1 --messages 2000
#
# Build first: cargo build --release -p chat-server -p chat-client
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
bin="$root/target/release"
port=${PORT:-3900}
server_cpu=${SERVER_CPU:-0}
bench_cpu=${BENCH_CPU:-1}
data=$(mktemp -d)
log=$(mktemp)

taskset -c "$server_cpu" "$bin/chat-server" --listen "127.0.0.1:$port" --data-dir "$data" \
    --send-rate 1000000 --send-burst 1000000 --max-rooms-per-connection 100 \
    --log-level warn >"$log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$data" "$log"
}
trap cleanup EXIT

for _ in $(seq 100); do
    grep -q "chat-server listening on" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 2; }
    sleep 0.1
done
grep -q "chat-server listening on" "$log" || { echo "server did not start" >&2; cat "$log" >&2; exit 2; }

scenario=$1
shift
taskset -c "$bench_cpu" "$bin/chat-bench" "$scenario" --url "ws://127.0.0.1:$port/ws" \
    --server-pid "$server" "$@"
