#!/usr/bin/env bash
# The cluster scenario of BENCHMARKS.md: the same fan-out load against one
# node over PostgreSQL, then against three nodes over the same PostgreSQL
# and Redis, with the connections dealt over the three (every room has
# members on every node, so most deliveries cross Redis).
#
#   crates/bench/scripts/bench-cluster.sh
#
# Knobs: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
# REDIS_URL (default redis://127.0.0.1:6379/), PORT (default 23500; the
# nodes take PORT..PORT+2), FANOUT (the chat-bench fanout arguments),
# RUNS (default "single cluster"). Each run gets a fresh schema and Redis
# prefix, dropped at the end. Build first: cargo build --release -p
# chat-server -p chat-bench.
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${BIN:-$root/target/release}
db=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
redis=${REDIS_URL:-redis://127.0.0.1:6379/}
port=${PORT:-23500}
fanout=${FANOUT:---rooms 100 --members 50 --senders 1 --rate 10 --warmup 3 --duration 20}
runs=${RUNS:-single cluster}
ulimit -n "$(ulimit -Hn)"

cpu_ticks() { # utime + stime of a process, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

for run in $runs; do
    id="bench_$(date +%s)_$run"
    nodes=1
    extra=()
    if [ "$run" = cluster ]; then
        nodes=3
        extra=(--redis-url "$redis" --redis-prefix "$id:")
    fi
    pids=()
    urls=()
    for ((i = 0; i < nodes; i++)); do
        p=$((port + i))
        "$bin/chat-server" --listen "127.0.0.1:$p" --database-url "$db" \
            --database-schema "$id" --send-rate 1000000 --send-burst 1000000 \
            --log-level warn "${extra[@]}" >/dev/null 2>"/tmp/$id-node$i.log" &
        pids+=($!)
        urls+=("ws://127.0.0.1:$p/ws")
        for _ in $(seq 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then break; fi
            sleep 0.1
        done
    done
    before=0
    for pid in "${pids[@]}"; do before=$((before + $(cpu_ticks "$pid"))); done
    started=$(date +%s.%N)
    url=$(IFS=,; echo "${urls[*]}")
    echo "== $run: $nodes node(s), chat-bench fanout $fanout"
    # shellcheck disable=SC2086
    "$bin/chat-bench" fanout --url "$url" $fanout --json | tee "/tmp/$id.json"
    after=0
    for pid in "${pids[@]}"; do after=$((after + $(cpu_ticks "$pid"))); done
    secs=$(echo "$(date +%s.%N) - $started" | bc)
    echo "servers' CPU: $(echo "scale=2; ($after - $before) / $(getconf CLK_TCK) / $secs" | bc) cores over ${secs}s (all nodes, whole run)"
    for pid in "${pids[@]}"; do kill "$pid"; done
    wait "${pids[@]}" 2>/dev/null || true
    psql "$db" -qc "DROP SCHEMA IF EXISTS \"$id\" CASCADE" >/dev/null
    if [ "$run" = cluster ]; then
        host_port=${redis#redis://}
        host_port=${host_port%%/*}
        redis-cli -h "${host_port%%:*}" -p "${host_port##*:}" --scan --pattern "$id:*" |
            xargs -r redis-cli -h "${host_port%%:*}" -p "${host_port##*:}" DEL >/dev/null
    fi
done
