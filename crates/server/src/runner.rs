//! The server's side of the privileged runner (`cryowarden-runner`, DESIGN.md invariant 2): file
//! operations on lab data run in a separate process *as the lab's Unix account*, so the kernel
//! refuses one lab's account another lab's files even if a check here had a bug.
//!
//! Each call spawns the runner (configured in [`RunnerConfig`]: by default the
//! `cryowarden-runner` binary next to the server's, through `sudo -n` unless the server runs as
//! root), writes one JSON request to its stdin and reads one JSON answer from its stdout. Its
//! environment is emptied but for `PATH`, `SLURM_CONF` when the server has it (passed on to the
//! SLURM commands the runner runs as the lab) and, when configured, `CRYOWARDEN_RUNNER_CONFIG`;
//! it is killed if it outlives the call's time limit or the call is dropped — except the waiter
//! of [`Runner::start_job`], which is detached so that a job outlives the server.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::config::RunnerConfig;
use crate::paths::{Entry, Listing};
pub use cryowarden_runner::protocol::{
    Account, Checked, CreatedDir, Head, MAX_HEAD_BYTES, Op, TreeCounts,
};
use cryowarden_runner::protocol::{Answer, Request};
pub use cryowarden_runner::protocol::{
    Chain, ChainSpec, ChainWalk, Decompress, FileHead, Globbed, MAX_BATCH_FILES,
    MAX_HEADS_TOTAL_BYTES, Walked,
};
pub use cryowarden_runner::protocol::{
    CommandOutput, JobKilled, JobStarted, JobStatus, MAX_COMMAND_TIMEOUT_MS,
};

/// The runner's binary name.
pub const BINARY: &str = "cryowarden-runner";
/// Time limit of the quick operations (check, list, stat, read_head, create_project_dir).
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of the tree walks (delete_tree, archive) and the batch ops of imports (glob,
/// read_heads, walk_chains).
pub const LONG_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest answer read (a 1 MiB head is 2 MiB of hexadecimal; a page of 1000 entries far less).
const MAX_ANSWER_BYTES: u64 = 16 << 20;
/// Largest part of the runner's stderr kept for a message.
const MAX_STDERR_BYTES: u64 = 16 << 10;
/// `PATH` for the runner when the server has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub use cryowarden_runner::error::RunnerError;

/// How to start the runner.
#[derive(Clone, Debug)]
pub struct Runner {
    command: Vec<String>,
    policy: Option<PathBuf>,
}

impl Runner {
    /// The runner of `config`; an empty command is [`default_command`].
    pub fn new(config: &RunnerConfig) -> Runner {
        let command = if config.command.is_empty() {
            default_command()
        } else {
            config.command.clone()
        };
        Runner {
            command,
            policy: config.policy.clone(),
        }
    }

    /// The command line the runner is started with.
    pub fn command(&self) -> &[String] {
        &self.command
    }

    /// Runs `op` as `account` and decodes the `ok` value as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        account: &Account,
        op: Op,
    ) -> Result<T, RunnerError> {
        let shown = self.command.join(" ");
        let name = op.name();
        let limit = op.time_limit_ms().map(Duration::from_millis);
        let limit = limit.unwrap_or(if op.is_long() {
            LONG_TIMEOUT
        } else {
            SHORT_TIMEOUT
        });
        let request = serde_json::to_vec(&Request {
            account: account.clone(),
            op,
        })
        .map_err(|e| RunnerError::Unavailable(format!("cannot encode a {name} request: {e}")))?;
        let (program, args) = self.command.split_first().ok_or_else(|| {
            RunnerError::Unavailable("the runner command is empty: set [runner] command".into())
        })?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(policy) = &self.policy {
            cmd.env(cryowarden_runner::policy::CONFIG_ENV, policy);
        }
        if let Some(conf) = std::env::var_os(SLURM_CONF_ENV) {
            cmd.env(SLURM_CONF_ENV, conf);
        }
        let mut child = cmd.spawn().map_err(|e| {
            RunnerError::Unavailable(format!(
                "cannot start `{shown}`: {e}: install {BINARY} next to the cryowarden binary, or set [runner] command \
                 in the configuration (CRYOWARDEN_RUNNER_COMMAND)"
            ))
        })?;
        let (mut stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let exchange = async {
            let write = async {
                if let Some(stdin) = stdin.as_mut() {
                    // A runner that exits early (EPIPE) is judged by its answer and status.
                    let _ = stdin.write_all(&request).await;
                }
                drop(stdin.take());
            };
            let (_, out, err) = tokio::join!(
                write,
                read_capped(stdout, MAX_ANSWER_BYTES),
                read_capped(stderr, MAX_STDERR_BYTES)
            );
            let status = child.wait().await;
            (status, out, err)
        };
        let (status, out, err) = tokio::time::timeout(limit, exchange).await.map_err(|_| {
            RunnerError::Unavailable(format!(
                "`{shown}` did not finish {name} within {} s and was killed",
                limit.as_secs()
            ))
        })?;
        let status =
            status.map_err(|e| RunnerError::Unavailable(format!("waiting for `{shown}`: {e}")))?;
        let out = out.map_err(|e| {
            RunnerError::Unavailable(format!("reading the answer of `{shown}`: {e}"))
        })?;
        if out.len() as u64 > MAX_ANSWER_BYTES {
            return Err(RunnerError::Unavailable(format!(
                "`{shown}` answered {name} with over {MAX_ANSWER_BYTES} bytes"
            )));
        }
        interpret(&shown, name, status, &out, &err.unwrap_or_default())
    }

    /// The identity the runner has after dropping to `account`.
    pub async fn check(&self, account: &Account) -> Result<Checked, RunnerError> {
        self.call(account, Op::Check {}).await
    }

    /// A page of the directory `path` beneath `root`.
    pub async fn list(
        &self,
        account: &Account,
        root: &Path,
        path: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Listing, RunnerError> {
        self.call(
            account,
            Op::List {
                root: root_text(root)?,
                path: path.into(),
                offset,
                limit,
            },
        )
        .await
    }

    /// One entry beneath `root` (a final symlink is described, not followed).
    pub async fn stat(
        &self,
        account: &Account,
        root: &Path,
        path: &str,
    ) -> Result<Entry, RunnerError> {
        self.call(
            account,
            Op::Stat {
                root: root_text(root)?,
                path: path.into(),
            },
        )
        .await
    }

    /// The size of a regular file beneath `root` and its first `max_bytes` (at most
    /// [`MAX_HEAD_BYTES`]); [`Head::bytes`] decodes them.
    pub async fn read_head(
        &self,
        account: &Account,
        root: &Path,
        path: &str,
        max_bytes: usize,
    ) -> Result<Head, RunnerError> {
        self.call(
            account,
            Op::ReadHead {
                root: root_text(root)?,
                path: path.into(),
                max_bytes,
            },
        )
        .await
    }

    /// Creates the directory `root/name` (one component) owned by the account, mode 2770.
    pub async fn create_project_dir(
        &self,
        account: &Account,
        root: &Path,
        name: &str,
    ) -> Result<CreatedDir, RunnerError> {
        self.call(
            account,
            Op::CreateProjectDir {
                root: root_text(root)?,
                name: name.into(),
            },
        )
        .await
    }

    /// Removes the directory tree at `path` beneath `root`, following no symlink.
    pub async fn delete_tree(
        &self,
        account: &Account,
        root: &Path,
        path: &str,
    ) -> Result<TreeCounts, RunnerError> {
        self.call(
            account,
            Op::DeleteTree {
                root: root_text(root)?,
                path: path.into(),
            },
        )
        .await
    }

    /// Removes every write bit in the tree at `path` beneath `root` (the root itself when `path`
    /// is empty), following no symlink.
    pub async fn archive(
        &self,
        account: &Account,
        root: &Path,
        path: &str,
    ) -> Result<TreeCounts, RunnerError> {
        self.call(
            account,
            Op::Archive {
                root: root_text(root)?,
                path: path.into(),
            },
        )
        .await
    }

    /// The files of one directory beneath `root` matching `pattern` (a relative path whose last
    /// component may hold `*`, `?` and `[...]`), sorted: the first `limit` (at most 100,000) and
    /// how many match in all.
    pub async fn glob(
        &self,
        account: &Account,
        root: &Path,
        pattern: &str,
        limit: usize,
    ) -> Result<Globbed, RunnerError> {
        self.call(
            account,
            Op::Glob {
                root: root_text(root)?,
                pattern: pattern.into(),
                limit,
            },
        )
        .await
    }

    /// The size and first `max_bytes` of each file beneath `root`, in order, or why it could not
    /// be read ([`FileHead::read`]); at most [`MAX_BATCH_FILES`] paths and
    /// [`MAX_HEADS_TOTAL_BYTES`] in all (`crate::import::read_headers` splits larger imports).
    pub async fn read_heads(
        &self,
        account: &Account,
        root: &Path,
        paths: &[String],
        max_bytes: usize,
        decompress: Option<Decompress>,
    ) -> Result<Vec<FileHead>, RunnerError> {
        self.call(
            account,
            Op::ReadHeads {
                root: root_text(root)?,
                paths: paths.to_vec(),
                max_bytes,
                decompress,
            },
        )
        .await
    }

    /// Each file's chain of linked records (a TIFF file's IFDs), in order: the number of records
    /// and the first ones' bytes ([`ChainWalk::walked`]), or why it could not be walked.
    pub async fn walk_chains(
        &self,
        account: &Account,
        root: &Path,
        chains: Vec<Chain>,
        max_records: u64,
    ) -> Result<Vec<ChainWalk>, RunnerError> {
        self.call(
            account,
            Op::WalkChains {
                root: root_text(root)?,
                chains,
                max_records,
            },
        )
        .await
    }
}

/// The variable naming SLURM's configuration, passed on to the runner when the server has it.
pub const SLURM_CONF_ENV: &str = "SLURM_CONF";
/// Largest status file [`Runner::job_status`] reads.
const MAX_STATUS_BYTES: usize = 64 << 10;

/// A job started by [`Runner::start_job`]: the runner's answer, and the runner process that
/// stays behind as the job's waiter. Dropping this neither kills the waiter nor the job: the
/// waiter runs in a process group (and, through sudo, a session) of its own and writes the job's
/// status file when the job ends, whether or not the server is still there.
#[derive(Debug)]
pub struct StartedJob {
    pub started: JobStarted,
    waiter: tokio::process::Child,
}

impl StartedJob {
    /// The waiter's pid (the runner, or `sudo` in front of it), while it runs.
    pub fn waiter_pid(&self) -> Option<u32> {
        self.waiter.id()
    }

    /// Waits for the waiter to exit, that is for the job to end: true when the waiter wrote the
    /// job's status file (read it with [`Runner::job_status`]).
    pub async fn wait(&mut self) -> Result<bool, RunnerError> {
        let status =
            self.waiter.wait().await.map_err(|e| {
                RunnerError::Unavailable(format!("waiting for the job's runner: {e}"))
            })?;
        Ok(status.success())
    }
}

/// The exec ops: programs run as a lab's account (SLURM's client commands, node-lane jobs).
impl Runner {
    /// Runs `argv` (no shell unless `argv[0]` is one) as `account` in `cwd`, with a clean
    /// environment (`PATH`, `HOME`, `USER`, `LOGNAME`, `SLURM_CONF` when the server has it) plus
    /// `env`, `stdin` as its input; killed with its process group after `timeout` (at most
    /// [`MAX_COMMAND_TIMEOUT_MS`]). A command that ran is an `Ok` whatever its exit status.
    pub async fn run_command(
        &self,
        account: &Account,
        argv: &[String],
        cwd: &Path,
        env: &[(String, String)],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, RunnerError> {
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let op = Op::RunCommand {
            argv: argv.to_vec(),
            cwd: root_text(cwd)?,
            env: env.to_vec(),
            stdin: stdin.map(str::to_owned),
            timeout_ms,
        };
        self.call(account, op).await
    }

    /// SIGTERM to the process group `pgid` as `account`, SIGKILL after `grace` (default 5 s,
    /// at most 20 s) if it is still there. The kernel refuses another account's processes
    /// (`permission-denied`).
    pub async fn kill_job(
        &self,
        account: &Account,
        pgid: i32,
        grace: Option<Duration>,
    ) -> Result<JobKilled, RunnerError> {
        let grace_ms = grace.map(|g| u64::try_from(g.as_millis()).unwrap_or(u64::MAX));
        self.call(account, Op::KillJob { pgid, grace_ms }).await
    }

    /// The status file a job's waiter wrote (`status_path` beneath `job_dir`), read as `account`;
    /// `None` while there is none.
    pub async fn job_status(
        &self,
        account: &Account,
        job_dir: &Path,
        status_path: &str,
    ) -> Result<Option<JobStatus>, RunnerError> {
        match self
            .read_head(account, job_dir, status_path, MAX_STATUS_BYTES)
            .await
        {
            Ok(head) => {
                let bytes = head.bytes().unwrap_or_default();
                let status = serde_json::from_slice(&bytes).map_err(|e| RunnerError::Refused {
                    code: "bad-status-file".into(),
                    message: format!(
                        "the job's status file {status_path} is not a job status ({e})"
                    ),
                })?;
                Ok(Some(status))
            }
            Err(RunnerError::Refused { code, .. }) if code == "path-not-found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts `argv` as `account` in `job_dir`, in its own process group, output appended to
    /// `log_path` and the clean environment plus `env` (e.g. `CUDA_VISIBLE_DEVICES`); answers as
    /// soon as the job runs. The runner is spawned detached (its own process group, not killed
    /// on drop) and stays as the job's waiter: when the job ends it writes [`JobStatus`] to
    /// `status_path` (both paths beneath `job_dir`) and exits.
    pub async fn start_job(
        &self,
        account: &Account,
        job_dir: &Path,
        log_path: &str,
        argv: &[String],
        env: &[(String, String)],
        status_path: &str,
    ) -> Result<StartedJob, RunnerError> {
        use tokio::io::AsyncBufReadExt;

        let shown = self.command.join(" ");
        let op = Op::StartJob {
            job_dir: root_text(job_dir)?,
            log_path: log_path.into(),
            argv: argv.to_vec(),
            env: env.to_vec(),
            status_path: status_path.into(),
        };
        let request = serde_json::to_vec(&Request {
            account: account.clone(),
            op,
        })
        .map_err(|e| RunnerError::Unavailable(format!("cannot encode a start_job request: {e}")))?;
        let (program, args) = self.command.split_first().ok_or_else(|| {
            RunnerError::Unavailable("the runner command is empty: set [runner] command".into())
        })?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Detached: neither a signal to the server's process group nor the server's end
            // reaches the waiter (the runner itself also tries setsid).
            .process_group(0)
            .kill_on_drop(false);
        if let Some(policy) = &self.policy {
            cmd.env(cryowarden_runner::policy::CONFIG_ENV, policy);
        }
        if let Some(conf) = std::env::var_os(SLURM_CONF_ENV) {
            cmd.env(SLURM_CONF_ENV, conf);
        }
        let mut child = cmd.spawn().map_err(|e| {
            RunnerError::Unavailable(format!(
                "cannot start `{shown}`: {e}: install {BINARY} next to the cryowarden binary, or set [runner] command \
                 in the configuration (CRYOWARDEN_RUNNER_COMMAND)"
            ))
        })?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let first_line = async {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&request).await;
            }
            let mut line = Vec::new();
            if let Some(stdout) = stdout {
                let mut reader = tokio::io::BufReader::new(stdout.take(MAX_ANSWER_BYTES));
                reader.read_until(b'\n', &mut line).await?;
            }
            Ok::<_, std::io::Error>(line)
        };
        let line = match tokio::time::timeout(SHORT_TIMEOUT, first_line).await {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let _ = child.start_kill();
                return Err(RunnerError::Unavailable(format!(
                    "reading the answer of `{shown}` to start_job: {e}"
                )));
            }
            Err(_) => {
                let _ = child.start_kill();
                return Err(RunnerError::Unavailable(format!(
                    "`{shown}` did not answer start_job within {} s and was killed",
                    SHORT_TIMEOUT.as_secs()
                )));
            }
        };
        match serde_json::from_slice::<Answer>(&line) {
            Ok(Answer::Ok(value)) => {
                let started = serde_json::from_value(value).map_err(|e| {
                    RunnerError::Unavailable(format!(
                        "`{shown}` answered start_job with an unexpected value ({e}): install the server and the runner from the same release"
                    ))
                })?;
                // Its stderr is not read any more: the waiter writes its notes to the job's log.
                drop(stderr);
                Ok(StartedJob {
                    started,
                    waiter: child,
                })
            }
            // A refusal or no answer: the runner exits at once; its status and stderr tell why.
            _ => {
                let exchange = async {
                    let err = read_capped(stderr, MAX_STDERR_BYTES).await;
                    (child.wait().await, err)
                };
                let (status, err) = tokio::time::timeout(SHORT_TIMEOUT, exchange)
                    .await
                    .map_err(|_| {
                        RunnerError::Unavailable(format!(
                            "`{shown}` gave no answer to start_job and did not exit"
                        ))
                    })?;
                let status = status
                    .map_err(|e| RunnerError::Unavailable(format!("waiting for `{shown}`: {e}")))?;
                let refused = interpret::<JobStarted>(
                    &shown,
                    "start_job",
                    status,
                    &line,
                    &err.unwrap_or_default(),
                );
                Err(refused.err().unwrap_or_else(|| {
                    RunnerError::Unavailable(format!(
                        "`{shown}` answered start_job twice: report this"
                    ))
                }))
            }
        }
    }
}

/// `cryowarden-runner` next to the current executable, or in its parent directory (test binaries
/// live in `target/*/deps`), else found on `PATH`; prefixed with `sudo -n` unless the server's
/// effective uid is 0.
pub fn default_command() -> Vec<String> {
    let exe = std::env::current_exe().ok();
    let dirs = exe
        .as_deref()
        .and_then(Path::parent)
        .into_iter()
        .flat_map(|d| [Some(d), d.parent()])
        .flatten();
    let found = dirs.map(|d| d.join(BINARY)).find(|p| p.is_file());
    let binary = found.map_or_else(|| BINARY.to_owned(), |p| p.to_string_lossy().into_owned());
    if rustix::process::geteuid().is_root() {
        vec![binary]
    } else {
        vec!["sudo".into(), "-n".into(), binary]
    }
}

fn root_text(root: &Path) -> Result<String, RunnerError> {
    root.to_str()
        .map(str::to_owned)
        .ok_or_else(|| RunnerError::Refused {
            code: "root-not-utf8".into(),
            message: format!(
                "the root {} is not valid UTF-8: configure a root with a UTF-8 path",
                root.display()
            ),
        })
}

async fn read_capped(from: Option<impl AsyncRead + Unpin>, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(from) = from {
        // One byte over the cap, so that an over-long answer is seen as such.
        from.take(cap + 1).read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Turns what the runner printed into the call's result: its answer when it gave one (whatever
/// its status), else [`RunnerError::Unavailable`] with its status and stderr.
fn interpret<T: DeserializeOwned>(
    command: &str,
    op: &str,
    status: ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<T, RunnerError> {
    match serde_json::from_slice::<Answer>(stdout) {
        Ok(Answer::Ok(value)) => serde_json::from_value(value).map_err(|e| {
            RunnerError::Unavailable(format!(
                "`{command}` answered {op} with an unexpected value ({e}): install the server and the runner from the same release"
            ))
        }),
        Ok(Answer::Error(refusal)) => Err(RunnerError::Refused { code: refusal.code, message: refusal.message }),
        Err(e) => {
            let stderr = String::from_utf8_lossy(stderr);
            let stderr = stderr.trim();
            let said = if stderr.is_empty() { String::new() } else { format!(", saying: {stderr}") };
            let hint = if stderr.contains("sudo") {
                format!(
                    "let the server's account run {BINARY} as root without a password (sudoers: \
                     `ACCOUNT ALL=(root) NOPASSWD: /path/to/{BINARY}`), or install it owned by root with mode 4755"
                )
            } else {
                format!("check that `{command}` is the {BINARY} of this release and runs")
            };
            let answer = if stdout.is_empty() { "no answer".to_owned() } else { format!("an unreadable answer ({e})") };
            Err(RunnerError::Unavailable(format!("`{command}` gave {answer} to {op} and exited with {status}{said}: {hint}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn answers_map_to_results() {
        let ok: Result<TreeCounts, _> = interpret(
            "r",
            "archive",
            status(0),
            br#"{"ok": {"files": 1, "dirs": 2, "bytes": 3}}"#,
            b"",
        );
        assert_eq!(
            ok.unwrap(),
            TreeCounts {
                files: 1,
                dirs: 2,
                bytes: 3
            }
        );

        let refused: Result<TreeCounts, _> = interpret(
            "r",
            "archive",
            status(0),
            br#"{"error": {"code": "exists", "message": "m"}}"#,
            b"",
        );
        match refused {
            Err(RunnerError::Refused { code, message }) => {
                assert_eq!((code.as_str(), message.as_str()), ("exists", "m"));
            }
            other => panic!("{other:?}"),
        }
        // A bad request is still the runner's own answer (exit status 2).
        let bad: Result<Checked, _> = interpret(
            "r",
            "check",
            status(2),
            br#"{"error": {"code": "bad-request", "message": "m"}}"#,
            b"",
        );
        assert_eq!(bad.unwrap_err().code(), Some("bad-request"));
    }

    #[test]
    fn garbage_and_silence_are_unavailable() {
        let wrong_shape: Result<TreeCounts, _> =
            interpret("r", "archive", status(0), br#"{"ok": [1]}"#, b"");
        assert!(
            matches!(wrong_shape, Err(RunnerError::Unavailable(m)) if m.contains("same release"))
        );
        let garbage: Result<Checked, _> = interpret("r", "check", status(0), b"hello", b"");
        assert!(matches!(garbage, Err(RunnerError::Unavailable(m)) if m.contains("unreadable")));
        let sudo: Result<Checked, _> = interpret(
            "sudo -n r",
            "check",
            status(1),
            b"",
            b"sudo: a password is required\n",
        );
        match sudo {
            Err(RunnerError::Unavailable(m)) => {
                assert!(
                    m.contains("no answer")
                        && m.contains("a password is required")
                        && m.contains("NOPASSWD"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    fn account() -> Account {
        Account {
            user: "cwlab1".into(),
            uid: 2101,
            gid: 2101,
        }
    }

    fn runner(command: &[&str]) -> Runner {
        Runner::new(&RunnerConfig {
            command: command
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            policy: None,
        })
    }

    #[tokio::test]
    async fn real_processes() {
        let missing = runner(&["/nonexistent/cryowarden-runner"])
            .check(&account())
            .await;
        assert!(matches!(missing, Err(RunnerError::Unavailable(m)) if m.contains("cannot start")));

        // The request arrives on stdin, the environment is emptied but for PATH.
        let script = r#"read -r req; case "$req" in *'"op":"check"'*) ;; *) exit 3;; esac
            test -z "$HOME" || exit 4
            printf '{"ok": {"uid": 2101, "gid": 2101, "groups": [2101]}}'"#;
        let checked = runner(&["sh", "-c", script])
            .check(&account())
            .await
            .unwrap();
        assert_eq!(
            checked,
            Checked {
                uid: 2101,
                gid: 2101,
                groups: vec![2101]
            }
        );

        let crash = runner(&["sh", "-c", "echo boom >&2; exit 3"])
            .check(&account())
            .await;
        assert!(
            matches!(crash, Err(RunnerError::Unavailable(m)) if m.contains("boom") && m.contains("exit status: 3"))
        );

        let refused = runner(&[
            "sh",
            "-c",
            r#"printf '{"error": {"code": "account-refused", "message": "no"}}'"#,
        ])
        .create_project_dir(&account(), Path::new("/tmp"), "p")
        .await;
        assert_eq!(refused.unwrap_err().code(), Some("account-refused"));
    }
}
