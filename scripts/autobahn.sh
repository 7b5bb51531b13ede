#!/usr/bin/env bash
# WebSocket conformance: runs Autobahn|Testsuite's fuzzing client (cases 1-7,
# 9, 10) against chat-server's /ws-echo route, which is /ws with an echo in
# place of the chat session: the same handshake, reader, connection loop,
# pump and writer, so every case covers the code path /ws frames take (only
# the message limit differs: 16 MiB). Exits non-zero if any case is FAILED
# or UNIMPLEMENTED (OK, NON-STRICT and INFORMATIONAL pass).
#
#   scripts/autobahn.sh            # everything: install, build, run, check
#   AUTOBAHN_CASES='["6.*"]' scripts/autobahn.sh     # a subset
#
# wstest runs on Python 2.7 only. Installs what is missing:
# - python2.7: an existing /usr/bin/python2.7, else Debian 11's package from
#   this machine's Debian mirror (the bullseye suite is added with an apt pin
#   so that only python2.7 and the libraries it needs come from it);
# - pip 20.3.4 for it (the last for Python 2; Debian's python2.7 has no
#   ensurepip), fetched as a wheel with python3's pip;
# - autobahntestsuite 0.8.2 with its dependencies pinned to py2-compatible
#   versions, pure Python (no compiler, no headers), under
#   target/autobahn/py (PYTHONUSERBASE).
# The report (HTML and JSON) goes to target/autobahn/report.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work="${CARGO_TARGET_DIR:-$root/target}/autobahn"
pybase="$work/py"
mkdir -p "$work"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- python2.7 ----------------------------------------------------------
python=/usr/bin/python2.7
if ! "$python" -c 'import ssl' >/dev/null 2>&1; then
  echo "== python2.7 from Debian 11 (bullseye), pinned"
  mirror=$(grep -hoE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  as_root tee /etc/apt/sources.list.d/bullseye-python2.sources >/dev/null <<EOF
# Debian 11 for python2.7 only (Autobahn|Testsuite's wstest); see
# /etc/apt/preferences.d/bullseye-python2 and scripts/autobahn.sh.
Types: deb
URIs: ${mirror%/}
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  as_root tee /etc/apt/preferences.d/bullseye-python2 >/dev/null <<'EOF'
# Only python2.7 and the libraries it needs that bookworm lacks come from bullseye.
Package: *
Pin: release n=bullseye
Pin-Priority: -1

Package: python2.7 python2.7-minimal libpython2.7-stdlib libpython2.7-minimal libssl1.1 libffi7
Pin: release n=bullseye
Pin-Priority: 500
EOF
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python2.7
fi

# --- pip and wstest -----------------------------------------------------
export PYTHONUSERBASE="$pybase"
export PYTHONWARNINGS=ignore
py() { "$python" "$@"; }
if ! py -m pip --version >/dev/null 2>&1; then
  echo "== pip 20.3.4 for python2.7"
  wheels="$work/pip-wheels"
  python3 -m pip download --quiet --no-deps --only-binary :all: --python-version 2.7 \
    --dest "$wheels" pip==20.3.4 setuptools==44.1.1 wheel==0.37.1
  py "$wheels/pip-20.3.4-py2.py3-none-any.whl/pip" install --quiet --user --no-index \
    --no-warn-script-location "$wheels"/*.whl
fi
wstest="$pybase/bin/wstest"
if ! "$wstest" --help >/dev/null 2>&1; then
  echo "== autobahntestsuite 0.8.2 (pinned, pure Python)"
  # Every package is listed and installed with --no-deps: the exact set
  # below, nothing resolved at install time. autobahn's "accelerate" extra
  # (wsaccel, ujson: C) is left out; wstest works without it.
  cat >"$work/requirements.txt" <<'EOF'
autobahntestsuite==0.8.2
autobahn==0.10.9
txaio==2.1.0
six==1.16.0
Twisted==20.3.0
zope.interface==5.5.2
constantly==15.1.0
incremental==21.3.0
Automat==20.2.0
hyperlink==21.0.0
PyHamcrest==1.10.1
attrs==21.4.0
idna==2.10
typing==3.10.0.0
Jinja2==2.11.3
MarkupSafe==1.1.1
Werkzeug==1.0.1
klein==17.10.0
pyOpenSSL==20.0.1
cryptography==3.3.2
cffi==1.15.1
pycparser==2.21
enum34==1.1.10
ipaddress==1.0.23
service-identity==18.1.0
pyasn1==0.4.8
pyasn1-modules==0.2.8
unittest2==1.1.0
traceback2==1.4.0
linecache2==1.0.0
argparse==1.4.0
EOF
  PURE_PYTHON=1 py -m pip install --quiet --user --no-deps --no-warn-script-location \
    --disable-pip-version-check -r "$work/requirements.txt"
fi

# --- the server ---------------------------------------------------------
# The debug build by default (CI has it already from the tests);
# AUTOBAHN_PROFILE=release for the optimized one.
profile="${AUTOBAHN_PROFILE:-dev}"
echo "== cargo build --profile $profile -p chat-server"
cargo build --profile "$profile" --locked -p chat-server --bin chat-server
[ "$profile" = dev ] && profile_dir=debug || profile_dir=$profile
server_bin="${CARGO_TARGET_DIR:-$root/target}/$profile_dir/chat-server"
data_dir=$(mktemp -d)
server_log="$work/server.log"
"$server_bin" --listen 127.0.0.1:0 --data-dir "$data_dir" --ws-echo --log-level warn \
  >"$work/server.out" 2>"$server_log" &
server_pid=$!
cleanup() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$data_dir"
}
trap cleanup EXIT
url=""
for _ in $(seq 1 100); do
  url=$(grep -oE 'http://[0-9.]+:[0-9]+' "$work/server.out" 2>/dev/null | head -n1 || true)
  [ -n "$url" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$server_log" >&2
    echo "chat-server did not start" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$url" ] || { echo "chat-server printed no URL" >&2; exit 1; }
ws_url="ws://${url#http://}/ws-echo"

# --- wstest -------------------------------------------------------------
report="$work/report"
rm -rf "$report"
cases="${AUTOBAHN_CASES:-[\"1.*\", \"2.*\", \"3.*\", \"4.*\", \"5.*\", \"6.*\", \"7.*\", \"9.*\", \"10.*\"]}"
cat >"$work/fuzzingclient.json" <<EOF
{
  "outdir": "$report",
  "servers": [{"agent": "chat-server", "url": "$ws_url"}],
  "cases": $cases,
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF
echo "== wstest -m fuzzingclient against $ws_url (cases $cases)"
started=$(date +%s)
(cd "$work" && "$wstest" -m fuzzingclient -s "$work/fuzzingclient.json") >"$work/wstest.log" 2>&1 || {
  tail -n 30 "$work/wstest.log" >&2
  echo "wstest failed" >&2
  exit 1
}
echo "   took $(($(date +%s) - started)) s; report: $report/index.html"

# --- verdict ------------------------------------------------------------
python3 - "$report/index.json" <<'EOF'
import collections, json, sys
with open(sys.argv[1]) as f:
    results = json.load(f)
bad = []
counts = collections.Counter()
for agent, cases in results.items():
    for case, r in cases.items():
        for key in ("behavior", "behaviorClose"):
            if r[key] in ("FAILED", "UNIMPLEMENTED"):
                bad.append((case, key, r[key]))
        counts[r["behavior"]] += 1
key = lambda c: [int(p) for p in c.split(".")]
total = sum(counts.values())
print("   %d cases: %s" % (total, ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
if total == 0:
    sys.exit("no case ran")
for case, key_, status in sorted(bad, key=lambda b: key(b[0])):
    print("   case %s: %s %s" % (case, key_, status))
sys.exit(1 if bad else 0)
EOF
echo "== Autobahn: no case failed"
