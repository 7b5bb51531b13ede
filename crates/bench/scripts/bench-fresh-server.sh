#!/usr/bin/env bash
# Runs one chat-bench scenario against a fresh server process, each pinned to
# its own CPU so neither steals the other's cycles (server on CPU 0, bench on
# CPU 1; override with SERVER_CPU / BENCH_CPU). The server's PID is passed to
# the bench so the report includes the server's RSS and CPU time.
#
#   crates/bench/scripts/bench-fresh-server.sh idle --connections 10000 --rooms 100 --hold 10
#   SERVER=rust-minimal crates/bench/scripts/bench-fresh-server.sh fanout --rate 10 --duration 10
#
# SERVER picks the server under test:
#   ours               target/release/chat-server, SQLite in a new empty data
#                      directory (every ack after commit), no send rate limit,
#                      100 rooms per connection (the default)
#   ours-socketio      the same server, measured over Socket.IO (its own
#                      events: acks and seq) instead of /ws
#   rust-minimal       the "speed of light" peer (in memory)
#   node-ws            the Node `ws` peer (in memory)
#   node-socketio      the seed article's express + socket.io server
#   rust-socketioxide  the seed's handlers on socketioxide + axum
# The native peers speak the native protocol's subset the bench uses; the
# Socket.IO peers the seed's events (chat-bench --protocol socketio-seed: no
# acks, no seq; loss and order from the stamp in each message). PROTOCOL
# overrides the protocol (native | socketio | socketio-seed); the default
# follows SERVER. `durable` is native only.
#
# The peers are not part of this repository: they were given to this project
# in a directory beside it, ../shared/peers from the repository's root (the
# default of PEERS_DIR; set it to use a copy elsewhere). A peer is built
# (cargo, into target/peers/) or installed (npm ci, into target/peers/; the
# peers' directory stays as it was given) on first use.
#
# OBSERVER=1 runs a second, independent harness in the same run
# (observer.mjs: Node's own WebSocket client in rooms of its own, timing
# scheduled send to arrival) and prints its one-line JSON after the bench's
# report; OBSERVER_ARGS (default "--delay 5 --seconds 10") sets its rooms,
# rate and window, which should lie inside the bench's measured window.
#
# Other knobs: PORT (default 23400), BENCH_NICE (a nice level for server and
# bench, e.g. -10 on a machine shared with other work; default 0 = unchanged),
# BENCH_RT (a SCHED_RR priority, e.g. 10, for server and bench instead of
# BENCH_NICE: on a machine where other work steals the CPU for tens of ms at
# a time, which no nice level prevents; its cost is that threads of one
# process on one core then take turns in 100 ms slices when both are busy,
# which makes a multi-threaded server's overload point come a little early),
# PEERS_DIR (the peers' directory, above), BENCH_BIN (where
# chat-server and chat-bench are; default target/release: point it at a copy
# of another build to compare two builds run for run).
#
# Build ours first (bench-all.sh does): cargo build --release -p chat-server
# -p chat-bench.
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${BENCH_BIN:-$root/target/release}
peers=${PEERS_DIR:-$(cd "$root/.." && pwd)/shared/peers}
kind=${SERVER:-ours}
port=${PORT:-23400}
server_cpu=${SERVER_CPU:-0}
bench_cpu=${BENCH_CPU:-1}
nice_level=${BENCH_NICE:-0}
if [ -n "${BENCH_RT:-}" ]; then
    priority=(chrt -r "$BENCH_RT")
else
    priority=(nice -n "$nice_level")
fi
data=$(mktemp -d)
log=$(mktemp)

# Thousands of connections, each a file descriptor here and in the server.
ulimit -n "$(ulimit -Hn)"

# Builds a Rust peer into target/peers/<name> unless it is there.
rust_peer() {
    local name=$1 exe=$2
    if [ ! -x "$root/target/peers/$name/release/$exe" ]; then
        echo "building the $name peer" >&2
        cargo build --release --locked --manifest-path "$peers/$name/Cargo.toml" \
            --target-dir "$root/target/peers/$name" >&2
    fi
    echo "$root/target/peers/$name/release/$exe"
}

# Installs a Node peer's locked dependencies under target/peers/<name>
# (again when its lock file changed).
node_peer() {
    local name=$1 dir="$root/target/peers/$1"
    mkdir -p "$dir"
    if ! cmp -s "$peers/$name/package-lock.json" "$dir/package-lock.json" ||
        [ ! -d "$dir/node_modules" ]; then
        echo "installing the $name peer's dependencies" >&2
        cp "$peers/$name/package.json" "$peers/$name/package-lock.json" "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
    fi
    echo "$dir/node_modules"
}

case "$kind" in
ours | ours-socketio)
    server_cmd=("$bin/chat-server" --listen "127.0.0.1:$port" --data-dir "$data"
        --send-rate 1000000 --send-burst 1000000 --max-rooms-per-connection 100
        --log-level warn)
    ;;
rust-minimal)
    server_cmd=(env "PORT=$port" "$(rust_peer rust-minimal peer-rust-minimal)")
    ;;
rust-socketioxide)
    server_cmd=(env "PORT=$port" "$(rust_peer rust-socketioxide peer-rust-socketioxide)")
    ;;
node-ws | node-socketio)
    server_cmd=(env "PORT=$port" "NODE_PATH=$(node_peer "$kind")" node "$peers/$kind/server.js")
    ;;
*)
    echo "unknown SERVER=$kind (ours | ours-socketio | rust-minimal | node-ws | node-socketio | rust-socketioxide)" >&2
    exit 2
    ;;
esac
case "$kind" in
ours-socketio) default_protocol=socketio ;;
node-socketio | rust-socketioxide) default_protocol=socketio-seed ;;
*) default_protocol=native ;;
esac
protocol=${PROTOCOL:-$default_protocol}
if [ "$protocol" = native ]; then
    url="ws://127.0.0.1:$port/ws"
else
    # chat-bench adds /socket.io/?EIO=4&transport=websocket.
    url="ws://127.0.0.1:$port"
fi

# chrt, nice, taskset and env all exec what follows, so $! is the server
# itself.
"${priority[@]}" taskset -c "$server_cpu" "${server_cmd[@]}" >"$log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$data" "$log"
}
trap cleanup EXIT

# Ready when the port accepts a connection.
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 2; }
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
    echo "$kind did not start listening on $port" >&2
    cat "$log" >&2
    exit 2
}

scenario=$1
shift
observer=
if [ -n "${OBSERVER:-}" ]; then
    # A second harness in the same run (observer.mjs): its own rooms, its
    # own client, timed from its own clock. OBSERVER_ARGS places its window
    # inside chat-bench's measured one.
    [ "$protocol" = native ] || { echo "OBSERVER needs the native protocol" >&2; exit 2; }
    # shellcheck disable=SC2086 # OBSERVER_ARGS is a list of options.
    "${priority[@]}" taskset -c "$bench_cpu" node --no-warnings --experimental-websocket \
        "$root/crates/bench/scripts/observer.mjs" --url "$url" \
        ${OBSERVER_ARGS:---delay 5 --seconds 10} >"$data.observer" &
    observer=$!
fi
status=0
"${priority[@]}" taskset -c "$bench_cpu" "$bin/chat-bench" "$scenario" \
    --url "$url" --protocol "$protocol" --server-pid "$server" "$@" || status=$?
if [ -n "$observer" ]; then
    wait "$observer" || status=$?
    echo "observer (second harness): $(cat "$data.observer")"
    rm -f "$data.observer"
fi
exit "$status"
