#!/usr/bin/env bash
# Audit log figures (crates/server/benches/audit.rs) at 1,000,000 events, each beside a baseline
# measured in the same run, on the release build:
#   1. a filtered page (audit::list, 100 events) per filter kind: actor, impersonator, action
#      prefix, outcome, time range, target, a combination, a later cursor page: p50/p99 against
#      the bare indexed `SELECT ... ORDER BY seq DESC LIMIT 101` (target: p50 <= 50 ms);
#   2. full chain verification (audit::verify): events/s against a bare SELECT scan through the
#      pool, a bare rusqlite scan and the bare SHA-256 of the same events (target: >= 500,000/s).
# Events are loaded by multi-row INSERTs with real chained hashes (not HTTP). SQLite always;
# PostgreSQL too with CRYOWARDEN_BENCH_POSTGRES_URL=postgres://... (a fresh schema is created).
# Needs ~1.5 GiB free in $CRYOWARDEN_BENCH_TMP (default: the system temp dir), removed at the end.
# CRYOWARDEN_BENCH_EVENTS overrides the count. Usage: bench/audit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p cryowarden-server --bench audit
