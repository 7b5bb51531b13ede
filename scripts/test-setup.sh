# Sourced by scripts/test (and .ci/run): makes this machine ready for every
# suite, installing what it lacks and starting what must run, and exports
# where the tests find their services. Safe to source again: what is there
# is left as it is.
#
# - cargo-nextest (pinned);
# - Debian packages: Chromium and the Noto CJK and emoji fonts (the browser
#   tests and their screenshots), nginx (the cluster test runs it in front
#   of three nodes), redis-server (private Redis servers of the cluster
#   tests), Node.js and npm, the PostgreSQL client, the CA bundle
#   (ca-certificates: the Rust client's wss:// tests trust the platform's
#   roots), and sqlite3 (the JavaScript client's tests lock the server's
#   database with it);
# - the npm packages of tests/browser, tests/socketio and its seed client,
#   and of the JavaScript client (clients/js);
# - PostgreSQL at CHAT_TEST_DATABASE_URL (default
#   postgres://postgres@127.0.0.1:5432/test) and Redis at
#   CHAT_TEST_REDIS_URL (default redis://127.0.0.1:6379/): when one does
#   not answer, a private one is started (PostgreSQL from the `postgresql`
#   package, in a throwaway cluster with trust authentication) and the
#   variable pointed at it.
# shellcheck shell=bash

NEXTEST_VERSION=0.9.143

apt_get() {
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get "$@"
    fi
}

# Installs the Debian packages of "$@" that are not installed.
apt_install_missing() {
    local missing=() package status
    for package in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
        if [[ "$status" != *"install ok installed"* ]]; then missing+=("$package"); fi
    done
    if ((${#missing[@]})); then
        echo "== apt-get install ${missing[*]}"
        if ! apt_get install -y "${missing[@]}"; then
            apt_get update
            apt_get install -y "${missing[@]}"
        fi
    fi
}

# `npm ci` in "$1" unless its node_modules matches its lock file.
npm_ci() {
    if ! cmp -s "$1/package-lock.json" "$1/node_modules/.package-lock-ci.json" 2>/dev/null; then
        echo "== npm ci ($1)"
        (cd "$1" && npm ci --no-audit --no-fund)
        cp "$1/package-lock.json" "$1/node_modules/.package-lock-ci.json"
    fi
}

if ! cargo nextest --version 2>/dev/null | grep -q "^cargo-nextest $NEXTEST_VERSION "; then
    cargo install cargo-nextest --version "$NEXTEST_VERSION" --locked
fi

apt_install_missing chromium fonts-noto-cjk fonts-noto-color-emoji nginx redis-server \
    postgresql-client ca-certificates sqlite3
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install_missing nodejs npm
fi
npm_ci tests/browser
npm_ci tests/socketio
npm_ci tests/socketio/seed-client
npm_ci clients/js

# --- PostgreSQL -------------------------------------------------------
export CHAT_TEST_DATABASE_URL=${CHAT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
if ! psql "$CHAT_TEST_DATABASE_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    echo "== PostgreSQL at $CHAT_TEST_DATABASE_URL does not answer: starting a private one"
    apt_install_missing postgresql
    pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
    pg_dir=/tmp/chat-test-postgres
    pg_port=55432
    as_owner=()
    if [ "$(id -u)" -eq 0 ]; then
        # initdb refuses to run as root; the package made this user.
        as_owner=(runuser -u postgres --)
    fi
    if [ ! -f "$pg_dir/PG_VERSION" ]; then
        mkdir -p "$pg_dir"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pg_dir"
        "${as_owner[@]}" "$pg_bin/initdb" -D "$pg_dir" -U postgres --auth=trust >/dev/null
    fi
    "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -w \
        -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null ||
        "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_dir" status >/dev/null
    psql "postgres://postgres@127.0.0.1:$pg_port/postgres" -qtAc 'CREATE DATABASE test' \
        >/dev/null 2>&1 || true
    export CHAT_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/test"
    psql "$CHAT_TEST_DATABASE_URL" -qtAc 'SELECT 1' >/dev/null
fi

# --- Redis ------------------------------------------------------------
export CHAT_TEST_REDIS_URL=${CHAT_TEST_REDIS_URL:-redis://127.0.0.1:6379/}
if [ "$(redis-cli -u "$CHAT_TEST_REDIS_URL" ping 2>/dev/null)" != PONG ]; then
    echo "== Redis at $CHAT_TEST_REDIS_URL does not answer: starting a private one"
    redis_port=56379
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --dir /tmp >/dev/null
    export CHAT_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/"
    for _ in $(seq 50); do
        [ "$(redis-cli -u "$CHAT_TEST_REDIS_URL" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
fi
echo "== services: PostgreSQL $CHAT_TEST_DATABASE_URL, Redis $CHAT_TEST_REDIS_URL"
