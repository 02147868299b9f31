//! Running programs *as the lab's account* (after the privilege drop): [`Op::RunCommand`] (a
//! command to completion with its output, e.g. `sbatch`, `scancel`, `sinfo`, so that SLURM runs
//! the job under the lab's uid), [`Op::StartJob`] (a node lane's job in its own process group,
//! the runner staying behind as its waiter) and [`Op::KillJob`] (a job's process group; the kernel
//! refuses another uid's processes).
//!
//! Programs get a clean environment: `PATH=/usr/local/bin:/usr/bin:/bin`, `HOME` from the user
//! database, `USER` and `LOGNAME`, `SLURM_CONF` when the runner was given one by a root caller
//! (see [`inherit`]), then the request's own `env`. No shell is involved unless the request's
//! `argv[0]` is one.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cryowarden_paths::{PathError, RelPath, Root};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Pid, Signal};
use serde::Serialize;
use serde_json::Value;

use crate::ops::refusal_of;
use crate::protocol::{
    Account, Answer, CommandOutput, DEFAULT_KILL_GRACE_MS, JobKilled, JobStarted, JobStatus,
    MAX_ARGV, MAX_COMMAND_OUTPUT_BYTES, MAX_COMMAND_TIMEOUT_MS, MAX_KILL_GRACE_MS, Op, Refusal,
};

/// `PATH` of every program started.
pub const CLEAN_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The variable naming SLURM's configuration, passed on to programs (see [`inherit`]).
pub const SLURM_CONF_ENV: &str = "SLURM_CONF";
/// How often [`Op::KillJob`] looks whether the group is gone.
const KILL_POLL: Duration = Duration::from_millis(20);
/// How long [`Op::RunCommand`] waits for the output pipes to close once the command has exited
/// (and its process group has been killed).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// What the exec ops pass on from the runner's own environment.
#[derive(Clone, Debug, Default)]
pub struct Inherited {
    /// `SLURM_CONF`, honoured only when the runner's real uid was 0 (run by a root server or
    /// through sudo): a caller of a setuid runner cannot point the lab's SLURM commands at a
    /// configuration of its own.
    pub slurm_conf: Option<OsString>,
}

static INHERITED: OnceLock<Inherited> = OnceLock::new();

/// Records what programs inherit; called before the privilege drop, while the real uid is
/// still the caller's.
pub fn inherit(env: &crate::Env, real_uid: u32) {
    let slurm_conf = env
        .slurm_conf
        .clone()
        .filter(|v| real_uid == 0 && !v.is_empty());
    let _ = INHERITED.set(Inherited { slurm_conf });
}

/// Performs one of the exec ops as `account` (whose identity the process already has).
/// On success [`Op::StartJob`] does not return: the process stays the job's waiter and exits
/// when the job's status file is written.
pub fn perform(op: &Op, account: &Account) -> Result<Value, Refusal> {
    match op {
        Op::RunCommand {
            argv,
            cwd,
            env,
            stdin,
            timeout_ms,
        } => answer(run_command(
            argv,
            cwd,
            env,
            stdin.as_deref(),
            *timeout_ms,
            account,
        )?),
        Op::StartJob {
            job_dir,
            log_path,
            argv,
            env,
            status_path,
        } => start_job(job_dir, log_path, argv, env, status_path, account),
        Op::KillJob { pgid, grace_ms } => {
            answer(kill_job(*pgid, grace_ms.unwrap_or(DEFAULT_KILL_GRACE_MS))?)
        }
        other => Err(Refusal::new(
            "bad-request",
            format!("{} is not an exec op", other.name()),
        )),
    }
}

fn answer<T: Serialize>(value: T) -> Result<Value, Refusal> {
    serde_json::to_value(value)
        .map_err(|e| Refusal::new("io-error", format!("cannot encode the answer: {e}")))
}

fn bad(code: &str, message: String) -> Refusal {
    Refusal::new(code, message)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn check_argv(argv: &[String]) -> Result<(), Refusal> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(bad(
            "bad-argv",
            "argv is empty: give the program and its arguments".into(),
        ));
    }
    if argv.len() > MAX_ARGV {
        return Err(bad(
            "bad-argv",
            format!("argv has {} words, over {MAX_ARGV}", argv.len()),
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(bad("bad-argv", "an argument contains a NUL byte".into()));
    }
    Ok(())
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The clean environment of a program run as `account`, then `extra` (which may replace any of
/// it, `PATH` included).
pub fn clean_env(
    account: &Account,
    extra: &[(String, String)],
) -> Result<BTreeMap<OsString, OsString>, Refusal> {
    let mut env = BTreeMap::new();
    env.insert("PATH".into(), CLEAN_PATH.into());
    let home = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| OsString::from("/"), |u| u.dir.into_os_string());
    env.insert("HOME".into(), home);
    env.insert("USER".into(), account.user.clone().into());
    env.insert("LOGNAME".into(), account.user.clone().into());
    if let Some(conf) = INHERITED.get().and_then(|i| i.slurm_conf.clone()) {
        env.insert(SLURM_CONF_ENV.into(), conf);
    }
    for (name, value) in extra {
        if !valid_env_name(name) {
            return Err(bad(
                "bad-env",
                format!(
                    "{name:?} is not a valid environment variable name (letters, digits and _, not first a digit)"
                ),
            ));
        }
        if value.contains('\0') {
            return Err(bad(
                "bad-env",
                format!("the value of {name} contains a NUL byte"),
            ));
        }
        env.insert(name.into(), value.into());
    }
    Ok(env)
}

/// Why a program could not be started.
fn spawn_refusal(e: std::io::Error, program: &str, account: &Account) -> Refusal {
    match e.kind() {
        std::io::ErrorKind::NotFound => bad(
            "command-not-found",
            format!(
                "{program} was not found (PATH is {CLEAN_PATH}): give its absolute path or install it"
            ),
        ),
        std::io::ErrorKind::PermissionDenied => bad(
            "permission-denied",
            format!(
                "the system refused the lab's Unix account {} (uid {}) to run {program}: check its permissions",
                account.user, account.uid
            ),
        ),
        _ => bad("io-error", format!("cannot start {program}: {e}")),
    }
}

/// Refuses a working directory that is not an absolute path to an existing directory the
/// account may enter.
fn check_cwd(cwd: &str, account: &Account) -> Result<(), Refusal> {
    if !cwd.starts_with('/') {
        return Err(bad(
            "cwd-not-absolute",
            format!("the working directory {cwd:?} is not an absolute path"),
        ));
    }
    match std::fs::metadata(cwd) {
        // Entering it needs search permission (the spawn would fail without saying why).
        Ok(m) if m.is_dir() => match rustix::fs::access(cwd, rustix::fs::Access::EXEC_OK) {
            Ok(()) => Ok(()),
            Err(Errno::ACCESS | Errno::PERM) => {
                Err(refusal_of(PathError::PermissionDenied, account))
            }
            Err(e) => Err(bad("io-error", format!("the working directory {cwd}: {e}"))),
        },
        Ok(_) => Err(refusal_of(PathError::NotADirectory, account)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(
            "cwd-not-found",
            format!("the working directory {cwd} does not exist"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(refusal_of(PathError::PermissionDenied, account))
        }
        Err(e) => Err(bad("io-error", format!("the working directory {cwd}: {e}"))),
    }
}

/// Reads everything from `from`, keeping the first `cap` bytes: (kept, truncated).
fn read_capped(mut from: impl Read, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut truncated = false;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap - kept.len();
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (kept, truncated)
}

fn exit_parts(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), status.signal())
}

/// Sends `signal` to the process group `pgid`, ignoring a group that is already gone.
fn signal_group(pgid: i32, signal: Signal) {
    if let Some(pid) = Some(pgid).filter(|&p| p > 1).and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Runs `argv` to completion (or until `timeout_ms`), in its own process group, with the clean
/// environment; the group is killed when the command exits or times out, so nothing it started
/// stays behind.
pub fn run_command(
    argv: &[String],
    cwd: &str,
    env: &[(String, String)],
    stdin: Option<&str>,
    timeout_ms: u64,
    account: &Account,
) -> Result<CommandOutput, Refusal> {
    check_argv(argv)?;
    if timeout_ms == 0 || timeout_ms > MAX_COMMAND_TIMEOUT_MS {
        return Err(bad(
            "timeout-out-of-range",
            format!(
                "timeout_ms {timeout_ms} is not within 1..={MAX_COMMAND_TIMEOUT_MS}: give a shorter time limit"
            ),
        ));
    }
    let env = clean_env(account, env)?;
    check_cwd(cwd, account)?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(&env)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_refusal(e, &argv[0], account))?;
    let pgid = i32::try_from(child.id()).unwrap_or(i32::MAX);

    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || out_tx.send(read_capped(out, MAX_COMMAND_OUTPUT_BYTES)));
    }
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || err_tx.send(read_capped(err, MAX_COMMAND_OUTPUT_BYTES)));
    }
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
        let text = text.to_owned();
        // A command that does not read its input (EPIPE) is judged by its output and status.
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let (status_tx, status_rx) = mpsc::channel();
    std::thread::spawn(move || status_tx.send(child.wait()));

    let limit = Duration::from_millis(timeout_ms);
    let (status, timed_out) = match status_rx.recv_timeout(limit) {
        Ok(status) => (status, false),
        Err(_) => {
            signal_group(pgid, Signal::KILL);
            (
                status_rx
                    .recv()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the waiting thread ended"))),
                true,
            )
        }
    };
    let status = status.map_err(|e| bad("io-error", format!("waiting for {}: {e}", argv[0])))?;
    // Whatever the command left running in its group goes with it.
    signal_group(pgid, Signal::KILL);
    let drain_until = Instant::now() + DRAIN_LIMIT;
    let collect = |rx: mpsc::Receiver<(Vec<u8>, bool)>| {
        rx.recv_timeout(drain_until.saturating_duration_since(Instant::now()))
            .unwrap_or((Vec::new(), true))
    };
    let (stdout, stdout_truncated) = collect(out_rx);
    let (stderr, stderr_truncated) = collect(err_rx);
    let (exit_code, signal) = exit_parts(status);
    Ok(CommandOutput {
        exit_code,
        signal,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_truncated,
        stderr_truncated,
        timed_out,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// `path` beneath the job directory `root` (relative, or absolute inside `job_dir`) as its
/// parent directory's descriptor (no symlink followed) and its last component.
fn beneath(
    root: &Root,
    job_dir: &str,
    path: &str,
    what: &str,
    account: &Account,
) -> Result<(OwnedFd, String), Refusal> {
    let dir = job_dir.trim_end_matches('/');
    let relative = match path.strip_prefix(dir).and_then(|p| p.strip_prefix('/')) {
        Some(inside) if path.starts_with('/') => inside,
        _ => path,
    };
    let rel = RelPath::parse(relative).map_err(|e| refusal_of(e, account))?;
    let Some((parent, name)) = rel.split_last() else {
        return Err(bad(
            "bad-path",
            format!("{what} {path:?} names the job directory itself: give a file name"),
        ));
    };
    if name == ".." || name == "." {
        return Err(bad(
            "bad-path",
            format!("{what} {path:?} does not end in a file name"),
        ));
    }
    let name = name.to_owned();
    let parent = root
        .open_dir_no_symlinks(&parent)
        .map_err(|e| refusal_of(e, account))?;
    Ok((parent, name))
}

fn sys(e: Errno, what: &str, account: &Account) -> Refusal {
    match e {
        Errno::ACCESS | Errno::PERM => refusal_of(PathError::PermissionDenied, account),
        Errno::LOOP => refusal_of(PathError::Symlink, account),
        e => match PathError::from_errno(e) {
            PathError::Io(io) => bad("io-error", format!("{what}: {io}")),
            e => refusal_of(e, account),
        },
    }
}

/// Starts a node lane's job: see [`Op::StartJob`]. Answers on stdout at once, then waits for
/// the job, writes its status file and exits the process (0 when the status file was written).
fn start_job(
    job_dir: &str,
    log_path: &str,
    argv: &[String],
    env: &[(String, String)],
    status_path: &str,
    account: &Account,
) -> Result<Value, Refusal> {
    check_argv(argv)?;
    let env = clean_env(account, env)?;
    let root = Root::open(Path::new(job_dir)).map_err(|e| refusal_of(e, account))?;
    let (log_dir, log_name) = beneath(&root, job_dir, log_path, "log_path", account)?;
    let (status_dir, status_name) = beneath(&root, job_dir, status_path, "status_path", account)?;
    if status_name.starts_with('.') && status_name.ends_with(".tmp") {
        return Err(bad(
            "bad-path",
            format!("status_path {status_path:?} looks like a temporary file name"),
        ));
    }
    let log = rustix::fs::openat(
        &log_dir,
        log_name.as_str(),
        OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NOCTTY
            | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o660),
    )
    .map_err(|e| sys(e, log_path, account))?;
    let st = rustix::fs::fstat(&log).map_err(|e| sys(e, log_path, account))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(refusal_of(PathError::NotAFile, account));
    }
    let log = File::from(log);
    let clone = |f: &File| {
        f.try_clone()
            .map_err(|e| bad("io-error", format!("{log_path}: {e}")))
    };
    let (out, err, mut notes) = (clone(&log)?, clone(&log)?, log);

    // Leave the caller's session, so that the waiter outlives the server that started it. It
    // fails (EPERM) when the server already made the runner a process group leader, which is
    // detached enough.
    let _ = rustix::process::setsid();

    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(&env)
        .current_dir(job_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_refusal(e, &argv[0], account))?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let started = JobStarted {
        pid,
        pgid: pid,
        started_at: now_ms(),
    };

    // The answer, at once; the server may stop reading (or be gone) after it.
    let line = serde_json::to_vec(&Answer::Ok(answer(started)?)).map(|mut l| {
        l.push(b'\n');
        l
    });
    if let Ok(line) = line {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&line).and_then(|()| stdout.flush());
    }

    let status = loop {
        match child.wait() {
            Ok(status) => break Some(status),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = writeln!(
                    notes,
                    "cryowarden-runner: cannot wait for the job (pid {pid}): {e}"
                );
                break None;
            }
        }
    };
    let (exit_code, signal) = status.map_or((None, None), exit_parts);
    let status = JobStatus {
        pid,
        exit_code,
        signal,
        finished_at: now_ms(),
    };
    let written = write_status(&status_dir, &status_name, &status);
    if let Err(e) = &written {
        let _ = writeln!(
            notes,
            "cryowarden-runner: cannot write the job's status file {status_path}: {e}"
        );
    }
    std::process::exit(if written.is_ok() { 0 } else { 1 });
}

/// Writes the status file: a temporary name in the same directory, synced, then renamed over
/// `name`, so that a reader sees either no file or the whole of it.
fn write_status(dir: &OwnedFd, name: &str, status: &JobStatus) -> Result<(), String> {
    let mut text = serde_json::to_vec(status).map_err(|e| e.to_string())?;
    text.push(b'\n');
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, tmp.as_str(), flags, Mode::from_raw_mode(0o660))
        .map_err(|e| e.to_string())?;
    let mut file = File::from(fd);
    let done = file
        .write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(|e| e.to_string());
    drop(file);
    if let Err(e) = done.and_then(|()| {
        rustix::fs::renameat(dir, tmp.as_str(), dir, name).map_err(|e| e.to_string())
    }) {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return Err(e);
    }
    let _ = rustix::fs::fsync(dir);
    Ok(())
}

/// The members of process group `pgid` that are still running (not zombies), as seen in
/// `/proc`; `None` when `/proc` cannot be read.
fn live_members(pgid: i32) -> Option<usize> {
    let mut live = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        if group == Some(pgid) && state != "Z" && state != "X" {
            live += 1;
        }
    }
    Some(live)
}

fn group_gone(pgid: i32) -> bool {
    match live_members(pgid) {
        Some(n) => n == 0,
        None => {
            Pid::from_raw(pgid).is_none_or(|p| rustix::process::test_kill_process_group(p).is_err())
        }
    }
}

/// SIGTERM to the job's process group, then SIGKILL when it is still there after `grace_ms`.
pub fn kill_job(pgid: i32, grace_ms: u64) -> Result<JobKilled, Refusal> {
    // (`Pid::from_raw` panics on a negative number.)
    let Some(pid) = Some(pgid).filter(|&p| p > 1).and_then(Pid::from_raw) else {
        return Err(bad(
            "bad-pgid",
            format!("{pgid} is not a job's process group id"),
        ));
    };
    if grace_ms > MAX_KILL_GRACE_MS {
        return Err(bad(
            "grace-out-of-range",
            format!("grace_ms {grace_ms} is over {MAX_KILL_GRACE_MS}"),
        ));
    }
    match rustix::process::kill_process_group(pid, Signal::TERM) {
        Ok(()) => {}
        Err(Errno::SRCH) => {
            return Ok(JobKilled {
                pgid,
                signalled: false,
                killed: false,
            });
        }
        Err(Errno::PERM) => {
            return Err(bad(
                "permission-denied",
                format!(
                    "the system refused the lab's Unix account to signal process group {pgid}: it is not this lab's job"
                ),
            ));
        }
        Err(e) => {
            return Err(bad(
                "io-error",
                format!("signalling process group {pgid}: {e}"),
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_millis(grace_ms);
    while Instant::now() < deadline {
        if group_gone(pgid) {
            return Ok(JobKilled {
                pgid,
                signalled: true,
                killed: false,
            });
        }
        std::thread::sleep(KILL_POLL);
    }
    if group_gone(pgid) {
        return Ok(JobKilled {
            pgid,
            signalled: true,
            killed: false,
        });
    }
    signal_group(pgid, Signal::KILL);
    Ok(JobKilled {
        pgid,
        signalled: true,
        killed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            user: "someone".into(),
            uid: 4242,
            gid: 4242,
        }
    }

    #[test]
    fn environment_is_clean_and_checked() {
        let env = clean_env(&account(), &[("CUDA_VISIBLE_DEVICES".into(), "0,1".into())]).unwrap();
        let keys: Vec<_> = env
            .keys()
            .map(|k| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            keys,
            ["CUDA_VISIBLE_DEVICES", "HOME", "LOGNAME", "PATH", "USER"]
        );
        assert_eq!(env[&OsString::from("PATH")], CLEAN_PATH);
        assert_eq!(env[&OsString::from("USER")], "someone");
        for bad_name in ["", "1A", "A=B", "A B", "É"] {
            assert!(
                clean_env(&account(), &[(bad_name.into(), "v".into())]).is_err(),
                "{bad_name:?}"
            );
        }
        assert!(clean_env(&account(), &[("A".into(), "v\0".into())]).is_err());
    }

    #[test]
    fn argv_is_checked() {
        assert!(check_argv(&[]).is_err());
        assert!(check_argv(&["".into()]).is_err());
        assert!(check_argv(&["a\0".into()]).is_err());
        assert!(check_argv(&["true".into()]).is_ok());
    }

    #[test]
    fn output_is_capped_but_drained() {
        let data = vec![b'x'; 100];
        assert_eq!(read_capped(&data[..], 10), (vec![b'x'; 10], true));
        assert_eq!(read_capped(&data[..], 100), (data.clone(), false));
    }

    #[test]
    fn commands_run_with_a_time_limit() {
        // As whoever runs the unit tests: no privilege drop here (the binary's tests do that).
        let me = account();
        let out = run_command(
            &[
                "sh".into(),
                "-c".into(),
                "echo $USER; cat; echo err >&2; exit 3".into(),
            ],
            "/",
            &[],
            Some("in"),
            5_000,
            &me,
        )
        .unwrap();
        assert_eq!(
            (
                out.exit_code,
                out.stdout.as_str(),
                out.stderr.as_str(),
                out.timed_out
            ),
            (Some(3), "someone\nin", "err\n", false)
        );
        let slow = run_command(&["sleep".into(), "10".into()], "/", &[], None, 200, &me).unwrap();
        assert!(
            slow.timed_out && slow.signal == Some(9) && slow.elapsed_ms < 5_000,
            "{slow:?}"
        );
        let missing =
            run_command(&["/nonexistent/program".into()], "/", &[], None, 1_000, &me).unwrap_err();
        assert_eq!(missing.code, "command-not-found");
        assert_eq!(
            run_command(&["true".into()], "relative", &[], None, 1_000, &me)
                .unwrap_err()
                .code,
            "cwd-not-absolute"
        );
        assert_eq!(
            run_command(&["true".into()], "/", &[], None, 0, &me)
                .unwrap_err()
                .code,
            "timeout-out-of-range"
        );
    }

    #[test]
    fn killing_checks_its_group() {
        assert_eq!(kill_job(1, 0).unwrap_err().code, "bad-pgid");
        assert_eq!(kill_job(0, 0).unwrap_err().code, "bad-pgid");
        assert_eq!(kill_job(-5, 0).unwrap_err().code, "bad-pgid");
        // A group that does not exist (pids are below 2^22 on Linux).
        assert!(!kill_job(i32::MAX - 1, 0).unwrap().signalled);
    }
}
