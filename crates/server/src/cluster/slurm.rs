//! SLURM: submission and cancellation *as the lab's Unix account* (the rendered qsub/qdel
//! command runs through the runner's `run_command` after its privilege drop, so SLURM runs the
//! job under the lab's uid without `--uid`), state polling with ONE `squeue` call for all the
//! jobs of an interval (as the server: root may list every user's jobs), the jobcomp file for
//! jobs `squeue` no longer lists, and the example files of `cryowarden cluster example slurm`.
//!
//! While slurmctld is down a client command blocks (about 10 s with Slurm 22.05) and then
//! fails with "Unable to contact slurm controller": [`submit`] and [`poll`] turn that, and their
//! own time limit, into [`SlurmError::Unavailable`], for the scheduler to retry with backoff.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::runner::{Account, CommandOutput, Runner, RunnerError};

/// Time limit of a submission or cancellation (the command blocks ~10 s when slurmctld is down).
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of one `squeue` poll.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// The `squeue` output format of [`poll`]: job id, state, reason.
pub const SQUEUE_FORMAT: &str = "%i|%T|%r";

/// Why a SLURM command failed.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// The controller did not answer (down, restarting, overloaded) or the command ran out of
    /// time: nothing is known to have happened; retry later, with backoff. (A submission that
    /// timed out may still have reached the controller: look for the job by name before
    /// submitting it again.)
    #[error("SLURM is unavailable: {0}")]
    Unavailable(String),
    /// SLURM answered and refused (an invalid option, more GPUs than exist, an unknown
    /// partition...): retrying will not help.
    #[error("SLURM refused: {message}")]
    Rejected {
        exit_code: Option<i32>,
        message: String,
    },
    /// SLURM's answer could not be understood.
    #[error("unexpected answer from SLURM: {0}")]
    BadOutput(String),
    /// The rendered command or its inputs are invalid.
    #[error(transparent)]
    Invalid(#[from] StoreError),
    /// The runner refused or could not run the command.
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

impl SlurmError {
    /// True when trying again later may succeed (the controller or the runner was unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SlurmError::Unavailable(_) | SlurmError::Runner(RunnerError::Unavailable(_))
        )
    }
}

/// What the client commands print when the controller does not answer (Slurm 22.05), and when
/// it is too busy to take a job.
const UNAVAILABLE_SIGNS: [&str; 8] = [
    "unable to contact slurm controller",
    "slurm controller not responding",
    "socket timed out",
    "connection refused",
    "zero bytes were transmitted or received",
    "temporarily unable to accept job",
    "resource temporarily unavailable",
    "communication connection failure",
];

fn says_unavailable(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    UNAVAILABLE_SIGNS.iter().any(|sign| text.contains(sign))
}

/// cryowarden's state of a cluster job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting in SLURM's queue (PENDING, REQUEUED, held...).
    Queued,
    /// Allocated, starting (CONFIGURING).
    Launched,
    Running,
    Completed,
    Failed,
    /// Cancelled (by a user or an administrator).
    Killed,
    /// `squeue` no longer lists it: read the jobcomp file ([`jobcomp_lookup`]) or the job's own
    /// status.
    Gone,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Launched => "launched",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Killed => "killed",
            JobState::Gone => "gone",
        }
    }

    /// True for the final states (completed, failed, killed).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Killed
        )
    }

    /// The state of a SLURM job state name (`squeue %T`, jobcomp's `JobState=`). An unknown name
    /// counts as running: the job exists and has not ended as far as cryowarden knows.
    pub fn from_slurm(state: &str) -> JobState {
        // "CANCELLED by 0" in some outputs: the first word is the state.
        match state
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+')
        {
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD"
            | "SPECIAL_EXIT" => JobState::Queued,
            "CONFIGURING" | "POWER_UP_NODE" => JobState::Launched,
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" | "RESIZING" | "SUSPENDED"
            | "STOPPED" | "UPDATE_DB" => JobState::Running,
            "COMPLETED" => JobState::Completed,
            "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE"
            | "PREEMPTED" => JobState::Failed,
            "CANCELLED" | "REVOKED" => JobState::Killed,
            _ => JobState::Running,
        }
    }
}

/// One job's state from a poll.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub state: JobState,
    /// SLURM's own state name (empty when gone).
    pub slurm_state: String,
    /// SLURM's reason (why it waits, or why it failed); empty when none.
    pub reason: String,
}

impl ClusterState {
    fn gone() -> ClusterState {
        ClusterState {
            state: JobState::Gone,
            slurm_state: String::new(),
            reason: String::new(),
        }
    }
}

/// How to reach SLURM: the configuration file (else the server's `SLURM_CONF`, else SLURM's
/// default) and the time limits.
#[derive(Clone, Debug)]
pub struct Slurm {
    /// Passed to every command as `SLURM_CONF` when set.
    pub slurm_conf: Option<PathBuf>,
    pub submit_timeout: Duration,
    pub poll_timeout: Duration,
}

impl Default for Slurm {
    fn default() -> Slurm {
        Slurm {
            slurm_conf: None,
            submit_timeout: SUBMIT_TIMEOUT,
            poll_timeout: POLL_TIMEOUT,
        }
    }
}

/// Submits with the default [`Slurm`]: see [`Slurm::submit`].
pub async fn submit(
    runner: &Runner,
    account: &Account,
    rendered_qsub_cmd: &str,
    script_path: &Path,
) -> Result<String, SlurmError> {
    Slurm::default()
        .submit(runner, account, rendered_qsub_cmd, script_path)
        .await
}

/// Polls with the default [`Slurm`]: see [`Slurm::poll`].
pub async fn poll(job_ids: &[String]) -> Result<HashMap<String, ClusterState>, SlurmError> {
    Slurm::default().poll(job_ids).await
}

/// Cancels with the default [`Slurm`]: see [`Slurm::cancel`].
pub async fn cancel(
    runner: &Runner,
    account: &Account,
    rendered_qdel_cmd: &str,
    cwd: &Path,
) -> Result<(), SlurmError> {
    Slurm::default()
        .cancel(runner, account, rendered_qdel_cmd, cwd)
        .await
}

/// The job id in `sbatch`'s output: "Submitted batch job N", or `--parsable`'s "N" / "N;cluster".
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let valid = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Submitted batch job ") {
            let id = rest.split_whitespace().next().unwrap_or("");
            if valid(id) {
                return Some(id.to_owned());
            }
        }
        let id = line.split(';').next().unwrap_or("");
        if valid(id) {
            return Some(id.to_owned());
        }
    }
    None
}

/// Refuses job ids that are not SLURM's (digits, `_` for array tasks), so that nothing else
/// reaches the `-j` list.
fn check_ids(job_ids: &[String]) -> Result<Vec<String>, SlurmError> {
    let mut unique = BTreeSet::new();
    for id in job_ids {
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return Err(StoreError::invalid(
                "cluster_job_id",
                format!("{id:?} is not a SLURM job id"),
            )
            .into());
        }
        unique.insert(id.clone());
    }
    Ok(unique.into_iter().collect())
}

impl Slurm {
    fn env(&self) -> Vec<(String, String)> {
        match &self.slurm_conf {
            Some(conf) => vec![("SLURM_CONF".into(), conf.to_string_lossy().into_owned())],
            None => Vec::new(),
        }
    }

    /// Runs a rendered command line (already wrapped in `send_cmd_tpl`) with `/bin/sh -c` as
    /// `account` in `cwd`, in the runner's clean environment, as CryoSPARC runs its templates
    /// through a shell. Every value in the line was quoted by the template module.
    pub async fn run_line(
        &self,
        runner: &Runner,
        account: &Account,
        line: &str,
        cwd: &Path,
        timeout: Duration,
    ) -> Result<CommandOutput, SlurmError> {
        let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), line.to_owned()];
        let out = runner
            .run_command(account, &argv, cwd, &self.env(), None, timeout)
            .await?;
        if out.timed_out {
            return Err(SlurmError::Unavailable(format!(
                "`{line}` did not finish within {} s (is slurmctld running?)",
                timeout.as_secs()
            )));
        }
        Ok(out)
    }

    async fn run_as(
        &self,
        runner: &Runner,
        account: &Account,
        line: &str,
        cwd: &Path,
    ) -> Result<CommandOutput, SlurmError> {
        self.run_line(runner, account, line, cwd, self.submit_timeout)
            .await
    }

    /// Submits the job script at `script_path` (already written, readable by `account`) by
    /// running the rendered `qsub_cmd_tpl` (wrapped in `send_cmd_tpl`) with `/bin/sh -c` as
    /// `account`, in the script's directory: the cluster job id, from "Submitted batch job N" or
    /// `--parsable` output. Nothing is added to the command: SLURM sees the lab's account as the
    /// submitter. A failure carries what the command printed on stderr AND stdout.
    pub async fn submit(
        &self,
        runner: &Runner,
        account: &Account,
        rendered_qsub_cmd: &str,
        script_path: &Path,
    ) -> Result<String, SlurmError> {
        let cwd = script_path
            .parent()
            .filter(|_| script_path.is_absolute())
            .ok_or_else(|| StoreError::invalid("script_path", "give the script's absolute path"))?;
        let out = self.run_as(runner, account, rendered_qsub_cmd, cwd).await?;
        let said = what_it_said(&out);
        if !out.success() {
            if says_unavailable(&said) {
                return Err(SlurmError::Unavailable(said));
            }
            return Err(SlurmError::Rejected {
                exit_code: out.exit_code,
                message: said,
            });
        }
        parse_job_id(&out.stdout).ok_or_else(|| {
            if says_unavailable(&out.stderr) {
                return SlurmError::Unavailable(said.clone());
            }
            SlurmError::BadOutput(format!(
                "no job id in what the submission printed ({said}): qsub_cmd_tpl should run sbatch \
                 (optionally --parsable) and let its output through"
            ))
        })
    }

    /// Cancels by running the rendered `qdel_cmd_tpl` as `account` (SLURM lets an account cancel
    /// only its own jobs). A job that already ended counts as cancelled.
    pub async fn cancel(
        &self,
        runner: &Runner,
        account: &Account,
        rendered_qdel_cmd: &str,
        cwd: &Path,
    ) -> Result<(), SlurmError> {
        let out = self.run_as(runner, account, rendered_qdel_cmd, cwd).await?;
        let said = what_it_said(&out);
        let lower = said.to_ascii_lowercase();
        if out.success() && !lower.contains("error") {
            return Ok(());
        }
        if lower.contains("already completing or completed") || lower.contains("invalid job id") {
            return Ok(());
        }
        if says_unavailable(&said) {
            return Err(SlurmError::Unavailable(said));
        }
        Err(SlurmError::Rejected {
            exit_code: out.exit_code,
            message: said,
        })
    }

    /// The states of `job_ids`, with ONE `squeue -h -t all -o '%i|%T|%r' -j id1,id2,...` call,
    /// run as the server (which lists every user's jobs when it is root). Every id asked for is
    /// in the answer; those `squeue` no longer lists are [`JobState::Gone`].
    pub async fn poll(
        &self,
        job_ids: &[String],
    ) -> Result<HashMap<String, ClusterState>, SlurmError> {
        let ids = check_ids(job_ids)?;
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut cmd = tokio::process::Command::new("squeue");
        cmd.args(["-h", "-t", "all", "-o", SQUEUE_FORMAT, "-j", &ids.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(conf) = &self.slurm_conf {
            cmd.env("SLURM_CONF", conf);
        }
        let out = tokio::time::timeout(self.poll_timeout, cmd.output())
            .await
            .map_err(|_| {
                SlurmError::Unavailable(format!(
                    "squeue did not answer within {} s (is slurmctld running?)",
                    self.poll_timeout.as_secs()
                ))
            })?
            .map_err(|e| {
                SlurmError::Unavailable(format!("cannot run squeue: {e}: install slurm-client"))
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        parse_poll(
            &ids,
            out.status.success(),
            out.status.code(),
            &stdout,
            &stderr,
            false,
        )
    }

    /// The states of `job_ids` from ONE run of the lane's own poll command, `line`: its
    /// `qstat_cmd_tpl` rendered with `cluster_job_id` = the ids joined by commas, made by
    /// [`poll_command`] and wrapped in its `send_cmd_tpl`; run with `/bin/sh -c` as `account`
    /// (so a site whose SLURM is reached through a profile, a wrapper, `ssh loginnode` or
    /// `-M cluster` is polled the way it submits). Every id asked for is in the answer; those
    /// the output does not list are [`JobState::Gone`]. An answer in which cryowarden finds
    /// neither its format nor nothing at all (a qstat template with its own `-o`, or not
    /// `squeue`) is `BadOutput`: no job is taken for gone on output it cannot read.
    pub async fn poll_as(
        &self,
        runner: &Runner,
        account: &Account,
        line: &str,
        cwd: &Path,
        job_ids: &[String],
    ) -> Result<HashMap<String, ClusterState>, SlurmError> {
        let ids = check_ids(job_ids)?;
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let out = self
            .run_line(runner, account, line, cwd, self.poll_timeout)
            .await?;
        parse_poll(
            &ids,
            out.success(),
            out.exit_code,
            &out.stdout,
            &out.stderr,
            true,
        )
    }

    /// The ids of the jobs of `user` named `job_name` that SLURM still knows (one `squeue` call):
    /// before submitting again after a submission that timed out, so as never to submit twice.
    pub async fn find_by_name(
        &self,
        user: &str,
        job_name: &str,
    ) -> Result<Vec<String>, SlurmError> {
        let mut cmd = tokio::process::Command::new("squeue");
        cmd.args(["-h", "-t", "all", "-o", "%i", "-u", user, "-n", job_name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(conf) = &self.slurm_conf {
            cmd.env("SLURM_CONF", conf);
        }
        let out = tokio::time::timeout(self.poll_timeout, cmd.output())
            .await
            .map_err(|_| SlurmError::Unavailable("squeue did not answer in time".into()))?
            .map_err(|e| SlurmError::Unavailable(format!("cannot run squeue: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(if says_unavailable(&stderr) {
                SlurmError::Unavailable(stderr.trim().to_owned())
            } else {
                SlurmError::Rejected {
                    exit_code: out.status.code(),
                    message: stderr.trim().to_owned(),
                }
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }
}

/// The header `squeue` prints for [`SQUEUE_FORMAT`].
const SQUEUE_HEADER: &str = "JOBID|STATE|REASON";

/// The poll command of a lane: its rendered `qstat_cmd_tpl` (with the ids joined by commas as
/// `cluster_job_id`, which `squeue -j` takes) run after exporting `SQUEUE_FORMAT` and
/// `SQUEUE_STATES=all`, which `squeue` reads as `-o` and `-t` unless the template gives its own.
/// The exports are part of the command line, so they also reach a remote shell through
/// `send_cmd_tpl` (`ssh loginnode ...`).
pub fn poll_command(rendered_qstat: &str) -> String {
    format!("export SQUEUE_FORMAT='{SQUEUE_FORMAT}' SQUEUE_STATES=all; {rendered_qstat}")
}

/// What a command printed, both streams: stderr (SLURM's errors) and stdout, each named when
/// both have something.
pub fn what_it_said(out: &CommandOutput) -> String {
    match (out.stderr.trim(), out.stdout.trim()) {
        ("", "") => format!("nothing on stdout or stderr (exit {:?})", out.exit_code),
        (err, "") => err.to_owned(),
        ("", stdout) => stdout.to_owned(),
        (err, stdout) => format!("{err} (stdout: {stdout})"),
    }
}

/// The states of `ids` from squeue's output in [`SQUEUE_FORMAT`]. `strict`: the output may come
/// from a site's own qstat template, so lines that are not cryowarden's format (squeue's
/// `CLUSTER: name` lines with `-M`, the header) are skipped, and an output with none of its
/// lines and no header is refused rather than read as "every job gone".
fn parse_poll(
    ids: &[String],
    success: bool,
    exit_code: Option<i32>,
    stdout: &str,
    stderr: &str,
    strict: bool,
) -> Result<HashMap<String, ClusterState>, SlurmError> {
    let mut states: HashMap<String, ClusterState> = ids
        .iter()
        .map(|id| (id.clone(), ClusterState::gone()))
        .collect();
    if !success {
        // One id that SLURM has forgotten: squeue fails rather than listing nothing.
        if stderr.contains("Invalid job id specified") {
            return Ok(states);
        }
        if says_unavailable(stderr) {
            return Err(SlurmError::Unavailable(stderr.trim().to_owned()));
        }
        let message = format!("squeue: {}", stderr.trim());
        return Err(SlurmError::Rejected { exit_code, message });
    }
    let mut understood = false;
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == SQUEUE_HEADER {
            understood = true;
            continue;
        }
        let mut parts = line.splitn(3, '|');
        let (Some(id), Some(state)) = (parts.next(), parts.next()) else {
            if strict {
                continue;
            }
            return Err(SlurmError::BadOutput(format!("squeue printed {line:?}")));
        };
        let reason = parts.next().unwrap_or("").trim();
        let reason = if reason == "None" { "" } else { reason };
        let (id, state) = (id.trim(), state.trim());
        let known = !state.is_empty() && state.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
        if let Some(entry) = states.get_mut(id).filter(|_| known) {
            understood = true;
            *entry = ClusterState {
                state: JobState::from_slurm(state),
                slurm_state: state.to_owned(),
                reason: reason.to_owned(),
            };
        }
    }
    let nothing = stdout
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("CLUSTER:"));
    if strict && !understood && !nothing {
        return Err(SlurmError::BadOutput(format!(
            "the lane's qstat command printed no line cryowarden can read ({}): qstat_cmd_tpl should run \
             `squeue -j {{{{ cluster_job_id }}}}` without its own -o/--format",
            stdout.lines().next().unwrap_or("").trim()
        )));
    }
    Ok(states)
}

/// A finished job's line of the jobcomp file (`JobCompType=jobcomp/filetxt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobComp {
    pub job_id: String,
    /// The uid of `UserId=name(uid)`.
    pub uid: Option<u32>,
    /// SLURM's final state (`JobState=`), when it could be read without doubt.
    pub slurm_state: Option<String>,
    pub state: JobState,
    /// `ExitCode=code:signal`.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The file holds records of this id that disagree, or the state could not be told apart
    /// from text a user controls (a job name may hold "JobState=..." and even newlines): do not
    /// trust it; read the job's own status instead.
    pub conflicting: bool,
}

/// Parses one line; `None` unless it is a whole record (from `JobId=` to `ExitCode=a:b`).
fn parse_jobcomp_line(line: &str) -> Option<JobComp> {
    let line = line.trim_end();
    let rest = line.strip_prefix("JobId=")?;
    let (job_id, rest) = rest.split_once(' ')?;
    if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let user = rest.strip_prefix("UserId=")?.split(' ').next()?;
    let uid = user
        .rsplit_once('(')
        .and_then(|(_, u)| u.strip_suffix(')'))
        .and_then(|u| u.parse().ok());
    // The last field; nothing a user controls follows it.
    let (_, exit) = line.rsplit_once(" ExitCode=")?;
    let (code, signal) = exit.split_once(':')?;
    let (exit_code, signal): (i32, i32) = (code.parse().ok()?, signal.parse().ok()?);
    // The job's name comes before JobState and may contain " JobState=X Partition=": the state
    // is known only when one reading is possible.
    let mut candidates = BTreeSet::new();
    for (at, _) in line.match_indices(" JobState=") {
        let after = &line[at + " JobState=".len()..];
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !word.is_empty() && after[word.len()..].starts_with(" Partition=") {
            candidates.insert(word);
        }
    }
    let slurm_state = (candidates.len() == 1)
        .then(|| candidates.pop_first())
        .flatten();
    let state = match &slurm_state {
        Some(s) => JobState::from_slurm(s),
        None if exit_code == 0 && signal == 0 => JobState::Completed,
        None => JobState::Failed,
    };
    Some(JobComp {
        job_id: job_id.to_owned(),
        uid,
        conflicting: slurm_state.is_none(),
        slurm_state,
        state,
        exit_code: Some(exit_code),
        signal: Some(signal).filter(|&s| s != 0),
    })
}

/// The records of `ids` in the jobcomp file at `path` (one line per finished job). The last
/// record of an id wins (a requeued job has several), but records that disagree mark it
/// `conflicting`. Reads the whole file: call it from a blocking task.
pub fn jobcomp_lookup(path: &Path, ids: &[String]) -> std::io::Result<HashMap<String, JobComp>> {
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut found: HashMap<String, JobComp> = HashMap::new();
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    for line in file.split(b'\n') {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        let Some(record) = parse_jobcomp_line(&line) else {
            continue;
        };
        if !wanted.contains(record.job_id.as_str()) {
            continue;
        }
        match found.get_mut(&record.job_id) {
            Some(previous) => {
                let disagree = (
                    previous.uid,
                    previous.state,
                    previous.exit_code,
                    previous.signal,
                ) != (record.uid, record.state, record.exit_code, record.signal);
                let conflicting = previous.conflicting || record.conflicting || disagree;
                *previous = JobComp {
                    conflicting,
                    ..record
                };
            }
            None => {
                found.insert(record.job_id.clone(), record);
            }
        }
    }
    Ok(found)
}

/// The slurm.conf in force: `SLURM_CONF`, else `/etc/slurm/slurm.conf`.
pub fn slurm_conf_path() -> PathBuf {
    std::env::var_os("SLURM_CONF")
        .map_or_else(|| PathBuf::from("/etc/slurm/slurm.conf"), PathBuf::from)
}

/// The jobcomp file of `slurm_conf` when it has `JobCompType=jobcomp/filetxt` and a
/// `JobCompLoc` (keys are case-insensitive, as SLURM reads them).
pub fn jobcomp_path(slurm_conf: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(slurm_conf).ok()?;
    let (mut kind, mut loc) = (None, None);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "jobcomptype" => kind = Some(value.trim().to_owned()),
            "jobcomploc" => loc = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    (kind.as_deref() == Some("jobcomp/filetxt"))
        .then_some(loc)
        .flatten()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
}

/// `cryowarden cluster example slurm`: a `cluster_info.json` and a `cluster_script.sh` in
/// CryoSPARC's format, for a SLURM cluster.
pub fn example_slurm() -> (String, String) {
    let info = serde_json::json!({
        "name": "slurmcluster",
        "title": "SLURM cluster",
        "worker_bin_path": "/path/to/cryosparc_worker/bin/cryosparcw",
        "cache_path": "/scratch/cryowarden-cache",
        "cache_reserve_mb": 10000,
        "cache_quota_mb": null,
        "send_cmd_tpl": "{{ command }}",
        "qsub_cmd_tpl": "sbatch {{ script_path_abs }}",
        "qstat_cmd_tpl": "squeue -j {{ cluster_job_id }}",
        "qdel_cmd_tpl": "scancel {{ cluster_job_id }}",
        "qinfo_cmd_tpl": "sinfo"
    });
    let mut info = serde_json::to_string_pretty(&info).expect("the example encodes");
    info.push('\n');
    (info, EXAMPLE_SCRIPT.to_owned())
}

/// The example `cluster_script.sh` (CryoSPARC's SLURM example, without its site-specific
/// partition and GPU probing: SLURM's gres sets `CUDA_VISIBLE_DEVICES`).
pub const EXAMPLE_SCRIPT: &str = r"#!/usr/bin/env bash
## cryowarden (CryoSPARC-compatible) cluster submission script for SLURM.
## Variables: run_cmd, num_cpu, num_gpu, ram_gb, job_dir_abs, project_dir_abs,
## job_log_path_abs, worker_bin_path, run_args, project_uid, job_uid, job_creator,
## cryosparc_username, job_type; any other variable is a custom variable, set per instance,
## per target or per job. Every value is inserted shell-quoted.
#SBATCH --job-name=cryowarden_{{ project_uid }}_{{ job_uid }}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task={{ num_cpu }}
{%- if num_gpu > 0 %}
#SBATCH --gres=gpu:{{ num_gpu }}
{%- endif %}
#SBATCH --mem={{ (ram_gb * 1000) | int }}M
#SBATCH --output={{ job_log_path_abs }}
#SBATCH --error={{ job_log_path_abs }}

{{ run_cmd }}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_from_sbatch() {
        assert_eq!(
            parse_job_id("Submitted batch job 42\n").as_deref(),
            Some("42")
        );
        assert_eq!(
            parse_job_id("warning: x\nSubmitted batch job 7 on cluster fx\n").as_deref(),
            Some("7")
        );
        assert_eq!(parse_job_id("1234\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("1234;fx\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("sbatch: error: nope\n"), None);
        assert_eq!(parse_job_id(""), None);
    }

    #[test]
    fn states_map() {
        for (slurm, ours) in [
            ("PENDING", JobState::Queued),
            ("CONFIGURING", JobState::Launched),
            ("RUNNING", JobState::Running),
            ("COMPLETING", JobState::Running),
            ("COMPLETED", JobState::Completed),
            ("FAILED", JobState::Failed),
            ("TIMEOUT", JobState::Failed),
            ("NODE_FAIL", JobState::Failed),
            ("OUT_OF_MEMORY", JobState::Failed),
            ("CANCELLED", JobState::Killed),
            ("CANCELLED by 0", JobState::Killed),
        ] {
            assert_eq!(JobState::from_slurm(slurm), ours, "{slurm}");
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_ids(&["1,2".into()]).is_err());
        assert!(check_ids(&["-t".into()]).is_err());
        assert_eq!(
            check_ids(&["2".into(), "1".into(), "2".into(), "3_4".into()]).unwrap(),
            ["1", "2", "3_4"]
        );
    }

    #[test]
    fn unavailability_is_recognised() {
        assert!(says_unavailable(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!says_unavailable(
            "sbatch: error: Batch job submission failed: Requested node configuration is not available"
        ));
    }

    const LINE: &str = "JobId=1 UserId=cwlab1(2101) GroupId=cwlab1(2101) Name=a b JobState=COMPLETED x JobState=FAILED Partition=debug TimeLimit=UNLIMITED StartTime=2026-11-23T03:28:54 EndTime=2026-11-23T03:28:54 NodeList=node1 NodeCnt=1 ProcCnt=1 WorkDir=/tmp/sx ReservationName= Tres=cpu=1,mem=100M,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown SubmitTime=2026-11-23T03:28:53 EligibleTime=2026-11-23T03:28:53 DerivedExitCode=0:0 ExitCode=1:0 ";

    #[test]
    fn jobcomp_lines() {
        let record = parse_jobcomp_line(LINE).unwrap();
        assert_eq!(record.job_id, "1");
        assert_eq!(record.uid, Some(2101));
        // "JobState=COMPLETED x" in the name is not followed by " Partition=".
        assert_eq!(record.slurm_state.as_deref(), Some("FAILED"));
        assert_eq!(
            (
                record.state,
                record.exit_code,
                record.signal,
                record.conflicting
            ),
            (JobState::Failed, Some(1), None, false)
        );
        // A name forging a whole "JobState=... Partition=" leaves the state in doubt.
        let forged = LINE.replace(
            "Name=a b JobState=COMPLETED x",
            "Name=a JobState=COMPLETED Partition=debug",
        );
        let record = parse_jobcomp_line(&forged).unwrap();
        assert!(record.conflicting && record.slurm_state.is_none());
        assert_eq!(record.state, JobState::Failed);
        // A record cut by a newline in a job name is not a record.
        assert!(
            parse_jobcomp_line("JobId=2 UserId=cwlab1(2101) GroupId=cwlab1(2101) Name=x").is_none()
        );
    }

    #[test]
    fn jobcomp_file_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobcomp.log");
        let other = LINE
            .replace("JobId=1 ", "JobId=3 ")
            .replace("ExitCode=1:0", "ExitCode=0:9")
            .replace("FAILED", "CANCELLED");
        // A forged record of job 1 (a job name with a newline) disagrees with the real one.
        let forged = "JobId=1 UserId=cwlab2(2102) GroupId=x(1) Name=y JobState=COMPLETED Partition=debug DerivedExitCode=0:0 ExitCode=0:0";
        std::fs::write(
            &path,
            format!("{LINE}\n{other}\nJobId=4 UserId=cwlab1(2101) Name=x\n"),
        )
        .unwrap();
        let found =
            jobcomp_lookup(&path, &["1".into(), "3".into(), "4".into(), "9".into()]).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found["1"].state, found["1"].conflicting),
            (JobState::Failed, false)
        );
        assert_eq!(
            (found["3"].state, found["3"].signal),
            (JobState::Killed, Some(9))
        );
        std::fs::write(&path, format!("{LINE}\n{forged}\n")).unwrap();
        assert!(jobcomp_lookup(&path, &["1".into()]).unwrap()["1"].conflicting);

        let conf = dir.path().join("slurm.conf");
        std::fs::write(
            &conf,
            "# x\nJOBCOMPTYPE=jobcomp/filetxt\njobcomploc = /var/log/jc.log # here\n",
        )
        .unwrap();
        assert_eq!(jobcomp_path(&conf), Some(PathBuf::from("/var/log/jc.log")));
        std::fs::write(&conf, "JobCompType=jobcomp/none\nJobCompLoc=/x\n").unwrap();
        assert_eq!(jobcomp_path(&conf), None);
    }

    #[test]
    fn the_example_is_valid() {
        let (info, script) = example_slurm();
        let info = super::super::ClusterInfo::parse(&info).unwrap();
        assert_eq!(info.qsub_cmd_tpl, "sbatch {{ script_path_abs }}");
        assert!(
            super::super::template::custom_variables(&script)
                .unwrap()
                .is_empty()
        );
    }
}
