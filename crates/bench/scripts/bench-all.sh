#!/usr/bin/env bash
# The benchmark of BENCHMARKS.md, in one command: builds everything, then runs
# every scenario against a fresh process of every server (ours with SQLite
# durability over /ws and over Socket.IO, the rust-minimal, node-ws,
# node-socketio and rust-socketioxide peers), one after another, server pinned to CPU 0 and chat-bench to CPU 1, and
# collects the JSON summaries into target/bench/results-<UTC time>.jsonl,
# one line per run: {"server", "scenario", "args", "exit", "report"}.
# Finally prints the markdown tables (chat-bench summarize) and saves them
# beside the results as .md, and the ramps' p99 against their offered rate
# on one chart beside them as -ramp.svg (chat-bench plot ramp). Progress and each run's human table go to
# target/bench/logs-<UTC time>/<scenario>-<server>.log.
#
#   crates/bench/scripts/bench-all.sh
#
# Knobs (environment): SERVERS (default "ours rust-minimal node-ws
# ours-socketio node-socketio rust-socketioxide"; see bench-fresh-server.sh),
# SCENARIOS (default "fanout ramp idle durable"; durable is skipped for the
# Socket.IO ones, which have no durable acks to measure), BENCH_NICE and BENCH_RT
# (see bench-fresh-server.sh), QUICK=1 for a short smoke run (smaller loads and
# windows; its figures are not the benchmark's).
#
# Needs: cargo, node + npm (for the Node peers), taskset, and the peer servers.
# The peers are not part of this repository: they were given to this project
# in a directory beside it, ../shared/peers from the repository's root, which
# is the default; set PEERS_DIR to use a copy elsewhere. Takes about 20 minutes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
peers=${PEERS_DIR:-$(cd "$root/.." && pwd)/shared/peers}
export PEERS_DIR="$peers"
read -r -a servers <<<"${SERVERS:-ours rust-minimal node-ws ours-socketio node-socketio rust-socketioxide}"
read -r -a scenarios <<<"${SCENARIOS:-fanout ramp idle durable}"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$root/target/bench"
logs="$out/logs-$stamp"
results="$out/results-$stamp.jsonl"
mkdir -p "$logs"

echo "== build" >&2
(cd "$root" && cargo build --release -p chat-server -p chat-bench) >&2
for server in "${servers[@]}"; do
    case "$server" in
    rust-minimal | rust-socketioxide)
        # Built into our target/ so the peers' directory stays untouched
        # (also done by bench-fresh-server.sh on first use; here so that no
        # build happens between runs).
        cargo build --release --locked --manifest-path "$peers/$server/Cargo.toml" \
            --target-dir "$root/target/peers/$server" >&2
        ;;
    node-ws | node-socketio)
        dir="$root/target/peers/$server"
        mkdir -p "$dir"
        if ! cmp -s "$peers/$server/package-lock.json" "$dir/package-lock.json" ||
            [ ! -d "$dir/node_modules" ]; then
            cp "$peers/$server/package.json" "$peers/$server/package-lock.json" "$dir/"
            (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
        fi
        ;;
    esac
done

# The loads of BENCHMARKS.md. Warm-ups come before every measured window.
declare -A load
if [ "${QUICK:-0}" = 1 ]; then
    load[fanout]="--rooms 20 --members 20 --rate 10 --warmup 1 --duration 3"
    load[ramp]="--rooms 20 --members 20 --start-rate 10 --factor 2 --warmup 1 --step-secs 2 --max-steps 3"
    load[idle]="--connections 1000 --rooms 10 --hold 2"
    load[durable]="--rooms 10 --senders-per-room 1 --messages 200 --window 32"
else
    load[fanout]="--rooms 100 --members 50 --senders 1 --rate 10 --warmup 3 --duration 20"
    load[ramp]="--rooms 100 --members 50 --senders 1 --start-rate 2 --factor 1.5 --warmup 2 --step-secs 5 --max-steps 12 --p99-bound-ms 100"
    load[idle]="--connections 10000 --rooms 100 --hold 10 --concurrency 200"
    load[durable]="--rooms 100 --senders-per-room 1 --messages 2000 --window 32"
fi

machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs; \
kernel $(uname -r); $(rustc --version); node $(node --version 2>/dev/null || echo none); \
commit $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"

# A new port per run (below the ephemeral range, so no client socket holds
# it): the previous run's connections linger in TIME_WAIT.
port=${PORT:-23400}
for scenario in "${scenarios[@]}"; do
    for server in "${servers[@]}"; do
        case "$scenario:$server" in
        durable:ours-socketio | durable:node-socketio | durable:rust-socketioxide)
            continue
            ;;
        esac
        port=$((port + 1))
        echo "== $scenario vs $server (port $port)" >&2
        log="$logs/$scenario-$server.log"
        status=0
        # shellcheck disable=SC2086 # the loads are word lists on purpose
        report=$(SERVER=$server PORT=$port "$here/bench-fresh-server.sh" "$scenario" --json \
            ${load[$scenario]} 2>"$log") || status=$?
        tail -n 40 "$log" | grep -v '^\[' >&2 || true
        if [ -z "$report" ]; then
            report=null
        fi
        printf '{"server":"%s","scenario":"%s","args":"%s","exit":%d,"report":%s}\n' \
            "$server" "$scenario" "${load[$scenario]}" "$status" "$report" >>"$results"
        # Let the previous server's sockets and memory go before the next.
        sleep 2
    done
done

{
    echo "# chat-bench results $stamp"
    echo
    echo "Machine: $machine. Server on CPU ${SERVER_CPU:-0}, bench on CPU ${BENCH_CPU:-1}, nice ${BENCH_NICE:-0}, SCHED_RR priority ${BENCH_RT:-none}."
    echo
    "$root/target/release/chat-bench" summarize "$results"
} | tee "$out/results-$stamp.md"
# Every server's ramp on one chart: p99 against the offered rate.
if grep -q '"scenario":"ramp","args":"[^"]*","exit":[0-9]*,"report":{' "$results"; then
    "$root/target/release/chat-bench" plot ramp "$results" -o "$out/results-$stamp-ramp.svg" >&2
fi
echo "results: $results" >&2
