#!/usr/bin/env bash
# The User Management page with 10,000 users (50 rows, sorted, filtered), server-rendered,
# against the same page as JSON from the API, on the release binary with SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin cryowarden
BIN=$PWD/target/release/cryowarden
WORK=$(mktemp -d); trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PW="benchmark passphrase 99"
echo "$PW" | $BIN admin bootstrap --data-dir "$WORK" --username bench --email bench@example.org --password-stdin >/dev/null
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
CRYOWARDEN_LOG=warn $BIN serve --data-dir "$WORK" --listen 127.0.0.1:$PORT > "$WORK/serve.log" 2>&1 &
PID=$!
python3 bench/first_answer.py "http://127.0.0.1:$PORT/api/v1/health" "$(date +%s%N)" >/dev/null
python3 bench/users_table.py "http://127.0.0.1:$PORT" bench "$PW" "${1:-10000}"
