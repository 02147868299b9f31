//! Cluster lanes, CryoSPARC-compatible: a facility brings its `cluster_info.json` and
//! `cluster_script.sh` across unchanged (`spec/scheduler-and-cluster.md` of the design).
//!
//! - [`info`]: [`ClusterInfo`], the parsed and validated `cluster_info.json` (unknown fields kept).
//! - [`template`]: rendering the script and the `*_cmd_tpl` command lines with minijinja; the
//!   built-in variables, custom variables at three levels (job > target > instance), and shell
//!   quoting of every value, so that what a user types stays data.
//! - [`slurm`]: submission *as the lab's Unix account* through the runner's `run_command` (so
//!   SLURM runs the job under the lab's uid), one batched `squeue` per poll, cancellation, the
//!   jobcomp file, and the example files of `cryowarden cluster example slurm`.

pub mod info;
pub mod slurm;
pub mod template;

pub use info::ClusterInfo;
pub use slurm::{ClusterState, JobState, Slurm, SlurmError};
pub use template::{Builtins, CustomValues};
