//! The SLURM cluster the test command provides (`scripts/slurm-fixture.sh`, a single node with
//! real slurmctld, slurmd and munge, two fake GPUs as gres).

use std::path::PathBuf;

/// The `slurm.conf` of the test cluster: `SLURM_CONF` when the test command exported it with
/// `CRYOWARDEN_TEST_SLURM=1`. Missing: a failure under CI, else `None` (the SLURM part of a test
/// then says so and passes only outside CI).
pub fn slurm_conf() -> Option<PathBuf> {
    let conf = std::env::var_os("SLURM_CONF")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let provided = std::env::var("CRYOWARDEN_TEST_SLURM").is_ok_and(|v| v == "1");
    match conf {
        Some(conf) if provided => Some(conf),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but no SLURM cluster (CRYOWARDEN_TEST_SLURM=1 and SLURM_CONF naming a file): \
             run the suite through scripts/test"
        ),
        _ => {
            eprintln!(
                "no SLURM cluster (CRYOWARDEN_TEST_SLURM=1 and SLURM_CONF unset): SLURM part not run \
                 (scripts/test provides it; or `scripts/slurm-fixture.sh start DIR` and export both)"
            );
            None
        }
    }
}
