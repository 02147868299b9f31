#!/usr/bin/env bash
# SLURM submission rate through cryowarden against a plain sbatch loop, and the cost of polling
# 1,000 jobs in one squeue call (crates/server/benches/slurm.rs). Run as root; starts the test
# command's single-node cluster (scripts/slurm-fixture.sh) when SLURM_CONF is not set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SLURM_CONF:-}" ]; then
  DIR=${CRYOWARDEN_TEST_SLURM_DIR:-/var/tmp/cryowarden-slurm}
  scripts/slurm-fixture.sh start "$DIR" >/dev/null
  export SLURM_CONF=$DIR/slurm.conf
fi
cargo build --release --quiet -p cryowarden-runner
export CRYOWARDEN_BENCH_RUNNER=$PWD/target/release/cryowarden-runner
exec cargo bench -p cryowarden-server --bench slurm
