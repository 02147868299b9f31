#!/usr/bin/env bash
# A slowloris against the real server (issue 11, item 12), on the release build: p50/p99 of
# GET /login on fresh connections alone, then while 500 connections trickle their headers one
# byte a second (ratio in the same run; target p99 <= 100 ms), and when the server closed the
# slow connections (header_read_timeout_secs, default 10).
# Usage: bench/slowloris.sh [slow connections, default 500] [requests per phase, default 500]
# CRYOWARDEN_BIN=path runs that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
SLOW=${1:-500}; REQS=${2:-500}
if [ -n "${CRYOWARDEN_BIN:-}" ]; then BIN=$CRYOWARDEN_BIN; else
  cargo build --release --quiet --bin cryowarden
  BIN=$PWD/target/release/cryowarden
fi
WORK=$(mktemp -d); trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
CRYOWARDEN_LOG=error $BIN serve --data-dir "$WORK/data" --listen 127.0.0.1:$PORT > "$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -fs "$URL/api/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
ulimit -n 4096 2>/dev/null || true
python3 bench/slowloris.py "$URL" "$SLOW" "$REQS"
