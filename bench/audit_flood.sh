#!/usr/bin/env bash
# A flood of refusals against the audit chain (crates/server/benches/audit_flood.rs), before
# (one chain event per refusal) and after (repeats counted, a budget per actor) in the same
# run, on the release build: refusals/s, chain events/s written by the flood, and the commit
# latency of real changes made meanwhile. SQLite always; PostgreSQL too with
# CRYOWARDEN_BENCH_POSTGRES_URL=postgres://... (a fresh schema). CRYOWARDEN_BENCH_SECS sets each
# phase's length (default 5). Usage: bench/audit_flood.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p cryowarden-server --bench audit_flood
