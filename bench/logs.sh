#!/usr/bin/env bash
# Instance logs figures (crates/server/benches/logs.rs), each beside a baseline in the same run:
#   1. tail(…, 500) on a 1 MiB and a 1 GiB log against GNU `tail -n 500 FILE > /dev/null` (a
#      subprocess, spawn included; GNU tail's own time per file is also measured without the spawn);
#   2. the report of the 1 GiB log directory to io::sink: time and peak RSS increase (child process);
#   3. report_stream: time to the first bytes and to the first 64 KiB.
# Needs ~1.1 GiB free in $CRYOWARDEN_BENCH_TMP (default: the system temp dir); the files are deleted
# at the end. Usage: bench/logs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tail >/dev/null || { echo "bench/logs.sh: GNU tail (coreutils) is needed" >&2; exit 1; }
tail --version | head -n1
cargo bench -p cryowarden-server --bench logs
