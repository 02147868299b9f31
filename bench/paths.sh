#!/usr/bin/env bash
# Path resolution figures (crates/paths/benches/paths.rs), each beside a baseline in the same run:
#   1. opening a file 8 levels deep beneath a root (openat2 RESOLVE_BENEATH), p50/p99 over
#      100,000 opens, against std::fs::File::open of the same absolute path;
#   2. listing a directory of 100,000 files, first page of 200, against std::fs::read_dir
#      collecting the names of the same directory.
# Usage: bench/paths.sh. CRYOWARDEN_BENCH_TMP picks where the temporary tree goes (default $TMPDIR).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p cryowarden-paths --bench paths
