#!/usr/bin/env bash
# Compares builds of our server in alternating runs, with peers measured in
# the same rounds: for each round, one fresh-server run per build, then one
# per peer, so a host that speeds up or slows down during the series
# affects every build alike.
#
#   BUILDS="before=/tmp/build-before after=target/release" PEERS=rust-minimal ROUNDS=6 \
#     crates/bench/scripts/bench-alternate.sh fanout --rooms 100 --members 50 --senders 1 \
#     --rate 10 --warmup 3 --duration 20
#
# BUILDS: space-separated label=dir pairs, each dir holding a chat-server
# (and chat-bench; every run uses the first build's chat-bench unless
# BENCH_TOOL_BIN names another dir). PEERS: servers of bench-fresh-server.sh
# to run after the builds in each round (default rust-minimal; empty for
# none). ROUNDS (default 3). Other knobs (BENCH_NICE, BENCH_RT, SERVER_CPU,
# BENCH_CPU) pass through to bench-fresh-server.sh. Writes one JSON line per
# run, {"build","round","scenario","report"}, to
# target/bench/alternate-<UTC time>.jsonl and prints its path; for `ramp`, also
# every run's p99 against its offered rate on one chart beside it, as
# alternate-<UTC time>-ramp.svg.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
scenario=${1:?usage: bench-alternate.sh SCENARIO [chat-bench arguments]}
shift
read -r -a builds <<<"${BUILDS:?set BUILDS=\"label=dir ...\"}"
read -r -a peers <<<"${PEERS-rust-minimal}"
rounds=${ROUNDS:-3}
tool_bin=$(cd "${BENCH_TOOL_BIN:-${builds[0]#*=}}" && pwd)
mkdir -p "$root/target/bench"
out="$root/target/bench/alternate-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
port=${PORT:-24000}

run() {
    local label=$1 round=$2 report
    shift 2
    port=$((port + 1))
    echo "== $scenario round $round: $label (port $port)" >&2
    report=$(env "$@" PORT=$port "$here/bench-fresh-server.sh" "$scenario" --json "${args[@]}") || true
    printf '{"build":"%s","round":%d,"scenario":"%s","report":%s}\n' \
        "$label" "$round" "$scenario" "${report:-null}" >>"$out"
    # Let the previous server's sockets and memory go before the next.
    sleep 2
}

args=("$@")
for round in $(seq "$rounds"); do
    for build in "${builds[@]}"; do
        label=${build%%=*}
        dir=$(cd "${build#*=}" && pwd)
        # bench-fresh-server.sh takes chat-server and chat-bench from one
        # dir: give it this build's server beside the common bench.
        staged="$root/target/bench/alternate-bin/$label"
        mkdir -p "$staged"
        cp -f "$dir/chat-server" "$staged/chat-server"
        cp -f "$tool_bin/chat-bench" "$staged/chat-bench"
        run "$label" "$round" SERVER=ours BENCH_BIN="$staged"
    done
    for peer in "${peers[@]}"; do
        run "$peer" "$round" SERVER="$peer" BENCH_BIN="$tool_bin"
    done
done
# A ramp series: every run's p99 against its offered rate on one chart.
if [ "$scenario" = ramp ] && grep -q '"report":{' "$out"; then
    "$tool_bin/chat-bench" plot ramp "$out" -o "${out%.jsonl}-ramp.svg" >&2
fi
echo "$out"
