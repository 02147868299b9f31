#!/usr/bin/env bash
# Project listing and data-root browsing figures (crates/server/benches/projects.rs), each beside
# a baseline in the same run:
#   - a lab member's project page (10,000 projects in their lab, 100,000 in the instance) against
#     the bare indexed query of one lab's page;
#   - the first page of 200 entries of a 100,000-file directory listed through the runner as the
#     lab's Unix account, against the same listing in process.
# Run as root (the runner drops to cwlab1, created if missing). CRYOWARDEN_BENCH_TMP picks where
# the temporary database and tree go (default $TMPDIR).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p cryowarden-runner
export CRYOWARDEN_BENCH_RUNNER=$PWD/target/release/cryowarden-runner
exec cargo bench -p cryowarden-server --bench projects
