#!/usr/bin/env bash
# Import header figures (crates/server/benches/import.rs), each beside a baseline in the same run:
#   - the headers of 10,000 MRC micrographs read through the runner as the lab's Unix account
#     (import::read_headers: read_heads in batches of 5,000), against std::fs in process;
#   - the headers of 1,000 TIFF movies of 40 frames (read_heads, then walk_chains over the IFDs);
#   - the glob listing the 10,000 files, against std::fs::read_dir.
# Run as root (the runner drops to cwlab1, created if missing). CRYOWARDEN_BENCH_TMP picks where
# the temporary tree goes (default $TMPDIR); the files are sparse.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p cryowarden-runner
export CRYOWARDEN_BENCH_RUNNER=${CARGO_TARGET_DIR:-$PWD/target}/release/cryowarden-runner
exec cargo bench -p cryowarden-server --bench import
