//! The server's side of the privileged runner (`cryowarden-runner`, DESIGN.md invariant 2): file
//! operations on lab data run in a separate process *as the lab's Unix account*, so the kernel
//! refuses one lab's account another lab's files even if a check here had a bug.
//!
//! Each call spawns the runner (configured in [`RunnerConfig`]: by default the
//! `cryowarden-runner` binary next to the server's, through `sudo -n` unless the server runs as
//! root), writes one JSON request to its stdin and reads one JSON answer from its stdout. Its
//! environment is emptied but for `PATH` and, when configured, `CRYOWARDEN_RUNNER_CONFIG`; it is
//! killed if it outlives the call's time limit or the call is dropped.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::config::RunnerConfig;
use crate::paths::{Entry, Listing};
pub use cryowarden_runner::protocol::{Account, Checked, CreatedDir, Head, MAX_HEAD_BYTES, Op, TreeCounts};
use cryowarden_runner::protocol::{Answer, Request};

/// The runner's binary name.
pub const BINARY: &str = "cryowarden-runner";
/// Time limit of the quick operations (check, list, stat, read_head, create_project_dir).
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of the tree walks (delete_tree, archive).
pub const LONG_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest answer read (a 1 MiB head is 2 MiB of hexadecimal; a page of 1000 entries far less).
const MAX_ANSWER_BYTES: u64 = 16 << 20;
/// Largest part of the runner's stderr kept for a message.
const MAX_STDERR_BYTES: u64 = 16 << 10;
/// `PATH` for the runner when the server has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a runner call failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The runner refused the request or the operation failed: `code` is stable (the runner's,
    /// e.g. `permission-denied`, `account-refused`, `exists`, or a path code such as
    /// `path-escapes-root`), `message` is written for people.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
    /// The runner could not be started, crashed, timed out or answered something unreadable; the
    /// message names the command and what to install or configure. For the server's log.
    #[error("the runner is unavailable: {0}")]
    Unavailable(String),
}

impl RunnerError {
    /// The stable code of a refusal, `None` when the runner is unavailable.
    pub fn code(&self) -> Option<&str> {
        match self {
            RunnerError::Refused { code, .. } => Some(code),
            RunnerError::Unavailable(_) => None,
        }
    }
}

/// How to start the runner.
#[derive(Clone, Debug)]
pub struct Runner {
    command: Vec<String>,
    policy: Option<PathBuf>,
}

impl Runner {
    /// The runner of `config`; an empty command is [`default_command`].
    pub fn new(config: &RunnerConfig) -> Runner {
        let command = if config.command.is_empty() { default_command() } else { config.command.clone() };
        Runner { command, policy: config.policy.clone() }
    }

    /// The command line the runner is started with.
    pub fn command(&self) -> &[String] {
        &self.command
    }

    /// Runs `op` as `account` and decodes the `ok` value as `T`.
    pub async fn call<T: DeserializeOwned>(&self, account: &Account, op: Op) -> Result<T, RunnerError> {
        let shown = self.command.join(" ");
        let name = op.name();
        let limit = if op.is_long() { LONG_TIMEOUT } else { SHORT_TIMEOUT };
        let request = serde_json::to_vec(&Request { account: account.clone(), op })
            .map_err(|e| RunnerError::Unavailable(format!("cannot encode a {name} request: {e}")))?;
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| RunnerError::Unavailable("the runner command is empty: set [runner] command".into()))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(policy) = &self.policy {
            cmd.env(cryowarden_runner::policy::CONFIG_ENV, policy);
        }
        let mut child = cmd.spawn().map_err(|e| {
            RunnerError::Unavailable(format!(
                "cannot start `{shown}`: {e}: install {BINARY} next to the cryowarden binary, or set [runner] command \
                 in the configuration (CRYOWARDEN_RUNNER_COMMAND)"
            ))
        })?;
        let (mut stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let exchange = async {
            let write = async {
                if let Some(stdin) = stdin.as_mut() {
                    // A runner that exits early (EPIPE) is judged by its answer and status.
                    let _ = stdin.write_all(&request).await;
                }
                drop(stdin.take());
            };
            let (_, out, err) =
                tokio::join!(write, read_capped(stdout, MAX_ANSWER_BYTES), read_capped(stderr, MAX_STDERR_BYTES));
            let status = child.wait().await;
            (status, out, err)
        };
        let (status, out, err) = tokio::time::timeout(limit, exchange).await.map_err(|_| {
            RunnerError::Unavailable(format!(
                "`{shown}` did not finish {name} within {} s and was killed",
                limit.as_secs()
            ))
        })?;
        let status = status.map_err(|e| RunnerError::Unavailable(format!("waiting for `{shown}`: {e}")))?;
        let out = out.map_err(|e| RunnerError::Unavailable(format!("reading the answer of `{shown}`: {e}")))?;
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
        self.call(account, Op::List { root: root_text(root)?, path: path.into(), offset, limit }).await
    }

    /// One entry beneath `root` (a final symlink is described, not followed).
    pub async fn stat(&self, account: &Account, root: &Path, path: &str) -> Result<Entry, RunnerError> {
        self.call(account, Op::Stat { root: root_text(root)?, path: path.into() }).await
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
        self.call(account, Op::ReadHead { root: root_text(root)?, path: path.into(), max_bytes }).await
    }

    /// Creates the directory `root/name` (one component) owned by the account, mode 2770.
    pub async fn create_project_dir(
        &self,
        account: &Account,
        root: &Path,
        name: &str,
    ) -> Result<CreatedDir, RunnerError> {
        self.call(account, Op::CreateProjectDir { root: root_text(root)?, name: name.into() }).await
    }

    /// Removes the directory tree at `path` beneath `root`, following no symlink.
    pub async fn delete_tree(&self, account: &Account, root: &Path, path: &str) -> Result<TreeCounts, RunnerError> {
        self.call(account, Op::DeleteTree { root: root_text(root)?, path: path.into() }).await
    }

    /// Removes every write bit in the tree at `path` beneath `root` (the root itself when `path`
    /// is empty), following no symlink.
    pub async fn archive(&self, account: &Account, root: &Path, path: &str) -> Result<TreeCounts, RunnerError> {
        self.call(account, Op::Archive { root: root_text(root)?, path: path.into() }).await
    }
}

/// `cryowarden-runner` next to the current executable, or in its parent directory (test binaries
/// live in `target/*/deps`), else found on `PATH`; prefixed with `sudo -n` unless the server's
/// effective uid is 0.
pub fn default_command() -> Vec<String> {
    let exe = std::env::current_exe().ok();
    let dirs = exe.as_deref().and_then(Path::parent).into_iter().flat_map(|d| [Some(d), d.parent()]).flatten();
    let found = dirs.map(|d| d.join(BINARY)).find(|p| p.is_file());
    let binary = found.map_or_else(|| BINARY.to_owned(), |p| p.to_string_lossy().into_owned());
    if rustix::process::geteuid().is_root() { vec![binary] } else { vec!["sudo".into(), "-n".into(), binary] }
}

fn root_text(root: &Path) -> Result<String, RunnerError> {
    root.to_str().map(str::to_owned).ok_or_else(|| RunnerError::Refused {
        code: "root-not-utf8".into(),
        message: format!("the root {} is not valid UTF-8: configure a root with a UTF-8 path", root.display()),
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
        let ok: Result<TreeCounts, _> =
            interpret("r", "archive", status(0), br#"{"ok": {"files": 1, "dirs": 2, "bytes": 3}}"#, b"");
        assert_eq!(ok.unwrap(), TreeCounts { files: 1, dirs: 2, bytes: 3 });

        let refused: Result<TreeCounts, _> =
            interpret("r", "archive", status(0), br#"{"error": {"code": "exists", "message": "m"}}"#, b"");
        match refused {
            Err(RunnerError::Refused { code, message }) => {
                assert_eq!((code.as_str(), message.as_str()), ("exists", "m"))
            }
            other => panic!("{other:?}"),
        }
        // A bad request is still the runner's own answer (exit status 2).
        let bad: Result<Checked, _> =
            interpret("r", "check", status(2), br#"{"error": {"code": "bad-request", "message": "m"}}"#, b"");
        assert_eq!(bad.unwrap_err().code(), Some("bad-request"));
    }

    #[test]
    fn garbage_and_silence_are_unavailable() {
        let wrong_shape: Result<TreeCounts, _> = interpret("r", "archive", status(0), br#"{"ok": [1]}"#, b"");
        assert!(matches!(wrong_shape, Err(RunnerError::Unavailable(m)) if m.contains("same release")));
        let garbage: Result<Checked, _> = interpret("r", "check", status(0), b"hello", b"");
        assert!(matches!(garbage, Err(RunnerError::Unavailable(m)) if m.contains("unreadable")));
        let sudo: Result<Checked, _> =
            interpret("sudo -n r", "check", status(1), b"", b"sudo: a password is required\n");
        match sudo {
            Err(RunnerError::Unavailable(m)) => {
                assert!(
                    m.contains("no answer") && m.contains("a password is required") && m.contains("NOPASSWD"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    fn account() -> Account {
        Account { user: "cwlab1".into(), uid: 2101, gid: 2101 }
    }

    fn runner(command: &[&str]) -> Runner {
        Runner::new(&RunnerConfig { command: command.iter().map(|s| s.to_string()).collect(), policy: None })
    }

    #[tokio::test]
    async fn real_processes() {
        let missing = runner(&["/nonexistent/cryowarden-runner"]).check(&account()).await;
        assert!(matches!(missing, Err(RunnerError::Unavailable(m)) if m.contains("cannot start")));

        // The request arrives on stdin, the environment is emptied but for PATH.
        let script = r#"read -r req; case "$req" in *'"op":"check"'*) ;; *) exit 3;; esac
            test -z "$HOME" || exit 4
            printf '{"ok": {"uid": 2101, "gid": 2101, "groups": [2101]}}'"#;
        let checked = runner(&["sh", "-c", script]).check(&account()).await.unwrap();
        assert_eq!(checked, Checked { uid: 2101, gid: 2101, groups: vec![2101] });

        let crash = runner(&["sh", "-c", "echo boom >&2; exit 3"]).check(&account()).await;
        assert!(
            matches!(crash, Err(RunnerError::Unavailable(m)) if m.contains("boom") && m.contains("exit status: 3"))
        );

        let refused = runner(&["sh", "-c", r#"printf '{"error": {"code": "account-refused", "message": "no"}}'"#])
            .create_project_dir(&account(), Path::new("/tmp"), "p")
            .await;
        assert_eq!(refused.unwrap_err().code(), Some("account-refused"));
    }
}
