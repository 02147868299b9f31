#!/usr/bin/env bash
# HTTP figures of issue 2, each beside a baseline measured in the same run:
#   1. authenticated GET /api/v1/users/me (bearer token) with wrk, 64 connections, against the
#      unauthenticated static file GET /static/style.css as baseline (ratio = cost of authentication + JSON);
#   2. p99 of GET /api/v1/users/me from a steady prober while 50 clients, each from its own
#      loopback address, send wrong passwords — against the same prober with no flood;
#   3. idle RSS of the server, and time from exec to the first answered request (SQLite).
# Usage: bench/http.sh [seconds per wrk run, default 10]. Needs root only to install wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin cryowarden
BIN=$PWD/target/release/cryowarden
WORK=$(mktemp -d); trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PW="benchmark passphrase 99"
echo "$PW" | $BIN admin bootstrap --data-dir "$WORK" --username bench --email bench@example.org --password-stdin >/dev/null

PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
START_NS=$(date +%s%N)
CRYOWARDEN_LOG=warn $BIN serve --data-dir "$WORK" --listen 127.0.0.1:$PORT > "$WORK/serve.log" 2>&1 &
PID=$!
python3 bench/first_answer.py "$URL/api/v1/health" "$START_NS" > "$WORK/startup.txt"
sleep 1
RSS_IDLE=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
echo "startup: $(cat "$WORK/startup.txt")"
echo "idle RSS: $((RSS_IDLE / 1024)) MiB ($RSS_IDLE KiB)"

TOKEN=$(python3 bench/token.py "$URL" bench "$PW")

run_wrk() { wrk -t2 -c64 -d${SECS}s --latency "$@" 2>&1; }
echo; echo "== baseline: GET /static/style.css (static, no authentication)"
BASE=$(run_wrk "$URL/static/style.css"); echo "$BASE" | grep -E 'Requests/sec|^ +(50|99)%'
echo; echo "== GET /api/v1/users/me with a bearer token"
ME=$(run_wrk -H "Authorization: Bearer $TOKEN" "$URL/api/v1/users/me"); echo "$ME" | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx'
python3 - "$BASE" "$ME" <<'PY'
import sys, re
rps = [float(re.search(r'Requests/sec:\s+([\d.]+)', t).group(1)) for t in sys.argv[1:3]]
print(f"ratio users/me : baseline = {rps[1]/rps[0]:.2f}  ({rps[1]:.0f} vs {rps[0]:.0f} req/s)")
PY
echo "RSS after load: $(( $(awk '/VmRSS/{print $2}' /proc/$PID/status) / 1024 )) MiB"

# wrk keeps 64 requests always in flight, so its p99 is mostly queueing behind the load
# generator on the same two cores. At the required rate the question is the service latency:
# oha (crates.io) sends an open-loop 20,000 req/s over 64 connections, with latency
# correction, for both URLs.
if command -v oha >/dev/null || [ -x "$HOME/.cargo/bin/oha" ]; then
  OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
  echo; echo "== fixed rate: 20,000 req/s, 64 connections (oha, open loop)"
  for target in "/static/style.css" "/api/v1/users/me"; do
    $OHA -z ${SECS}s -c 64 -q 20000 --latency-correction --no-tui --output-format json \
      -H "Authorization: Bearer $TOKEN" "$URL$target" > "$WORK/oha.json" 2>/dev/null
    python3 - "$target" "$WORK/oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2])); p = d["latencyPercentiles"]; s = d["summary"]
codes = d.get("statusCodeDistribution", {})
print(f"{sys.argv[1]:<18} {s['requestsPerSec']:8.0f} req/s  p50 {p['p50']*1000:.2f} ms  p99 {p['p99']*1000:.2f} ms  status {codes}")
PY
  done
else
  echo; echo "(oha not installed: 'cargo install oha' for the fixed-rate p99)"
fi

echo; echo "== p99 of GET /api/v1/users/me: alone, then under a flood of wrong passwords from 50 addresses"
python3 bench/login_flood.py "$URL" "$TOKEN" "$SECS"
