#!/usr/bin/env bash
# The README's first command, run exactly as written (`cargo run --release`
# at the repository's root), so that it cannot break unseen: on a free port
# and in a fresh data directory (given as the environment variables every
# setting also reads), it must start the server, print its URL, and serve
# the chat page and /healthz. CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

data=$(mktemp -d)
out=$(mktemp)
CHAT_LISTEN=127.0.0.1:0 CHAT_DATA_DIR="$data" cargo run --release >"$out" 2>"$out.err" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data" "$out" "$out.err"
}
trap cleanup EXIT

# Building takes minutes on a fresh clone; the server prints its URL once
# it listens.
url=
for _ in $(seq 1800); do
    url=$(sed -n 's/^chat-server listening on //p' "$out")
    [ -n "$url" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "cargo run --release exited before the server listened:" >&2
        cat "$out" "$out.err" >&2
        exit 1
    fi
    sleep 0.5
done
if [ -z "$url" ]; then
    echo "no listening line from cargo run --release within 15 minutes" >&2
    exit 1
fi
page=$(curl -fsS "$url/")
grep -q '<title>Chat</title>' <<<"$page" || {
    echo "GET $url/ did not return the chat page" >&2
    exit 1
}
health=$(curl -fsS "$url/healthz")
[ "$health" = ok ] || {
    echo "GET $url/healthz: $health" >&2
    exit 1
}
echo "README's first command: the server at $url serves the page and /healthz"
