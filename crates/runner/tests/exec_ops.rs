//! The exec ops of the real `cryowarden-runner` binary, run as root (as the suite is) acting as
//! cwlab1 (uid 2101) and cwlab2 (uid 2102): commands run as the lab's uid with a clean
//! environment, time limits kill the whole process group, a started job outlives the request
//! in its own process group and leaves a status file, and only the job's own lab may kill it.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

const RUNNER: &str = env!("CARGO_BIN_EXE_cryowarden-runner");

/// Creates cwlab1 and cwlab2 once per test process (under the suite's shared lock); their gids.
fn accounts() -> (u32, u32) {
    static GIDS: OnceLock<(u32, u32)> = OnceLock::new();
    *GIDS.get_or_init(|| {
        let lock = fs::File::create("/tmp/cryowarden-test-accounts.lock").unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        for (name, uid) in [("cwlab1", "2101"), ("cwlab2", "2102")] {
            if nix::unistd::User::from_name(name).unwrap().is_none() {
                let out = Command::new("useradd")
                    .args(["-M", "-u", uid, "-U", name])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success() || out.status.code() == Some(9),
                    "useradd {name}: {out:?}"
                );
            }
        }
        let gid = |name| {
            nix::unistd::User::from_name(name)
                .unwrap()
                .unwrap()
                .gid
                .as_raw()
        };
        (gid("cwlab1"), gid("cwlab2"))
    })
}

/// A policy allowing both labs, lab 1's job directory (cwlab1 2770) and lab 2's secret (0640).
struct Setup {
    t: TempDir,
    gid1: u32,
    gid2: u32,
}

impl Setup {
    fn new() -> Setup {
        let (gid1, gid2) = accounts();
        let t = tempfile::Builder::new()
            .prefix("cw-exec")
            .tempdir()
            .unwrap();
        let p = t.path();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            p.join("policy.toml"),
            "allowed_users = [\"cwlab1\", \"cwlab2\"]\n",
        )
        .unwrap();
        fs::set_permissions(p.join("policy.toml"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir(p.join("job1")).unwrap();
        std::os::unix::fs::chown(p.join("job1"), Some(2101), Some(gid1)).unwrap();
        fs::set_permissions(p.join("job1"), fs::Permissions::from_mode(0o2770)).unwrap();
        fs::create_dir(p.join("lab2")).unwrap();
        fs::write(p.join("lab2/secret.txt"), "lab2's secret").unwrap();
        for f in ["lab2", "lab2/secret.txt"] {
            std::os::unix::fs::chown(p.join(f), Some(2102), Some(gid2)).unwrap();
        }
        fs::set_permissions(p.join("lab2"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(p.join("lab2/secret.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        Setup { t, gid1, gid2 }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.t.path().join(rel)
    }

    fn text(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_owned()
    }

    fn lab1(&self) -> Value {
        json!({ "user": "cwlab1", "uid": 2101, "gid": self.gid1 })
    }

    fn lab2(&self) -> Value {
        json!({ "user": "cwlab2", "uid": 2102, "gid": self.gid2 })
    }

    /// The runner, as root, with the policy, SLURM_CONF and a variable that must not reach
    /// the programs in its environment, `request` (plus `account`) written to its stdin.
    fn spawn(&self, account: Value, op: Value) -> std::process::Child {
        let mut request = op;
        request["account"] = account;
        let mut child = Command::new(RUNNER)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("CRYOWARDEN_RUNNER_CONFIG", self.path("policy.toml"))
            .env("SLURM_CONF", "/etc/slurm/test-passthrough.conf")
            .env("SECRET_OF_THE_SERVER", "must not leak")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        child
    }

    fn call(&self, account: Value, op: Value) -> Value {
        let out = self.spawn(account, op).wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    fn run(&self, account: Value, argv: &[&str], stdin: Option<&str>, timeout_ms: u64) -> Value {
        let op = json!({ "op": "run_command", "argv": argv, "cwd": self.text("job1"), "env": [["CW_EXTRA", "x y"]],
                         "stdin": stdin, "timeout_ms": timeout_ms });
        self.call(account, op)
    }
}

#[track_caller]
fn ok(answer: Value) -> Value {
    answer
        .get("ok")
        .cloned()
        .unwrap_or_else(|| panic!("expected ok, got {answer}"))
}

#[track_caller]
fn code(answer: &Value) -> String {
    answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {answer}"))
        .to_owned()
}

/// (uid, pgid, session id) of a live process, from /proc.
fn ids_of(pid: i64) -> Option<(u32, i64, i64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((uid, rest[2].parse().ok()?, rest[3].parse().ok()?))
}

/// Polls `f` every 20 ms until it gives a value or `limit` passes.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn commands_run_as_the_lab_with_a_clean_environment() {
    let s = Setup::new();
    let out = ok(s.run(s.lab1(), &["/usr/bin/env"], None, 10_000));
    assert_eq!(out["exit_code"], 0, "{out}");
    let mut env: Vec<&str> = out["stdout"].as_str().unwrap().lines().collect();
    env.sort();
    assert_eq!(
        env,
        [
            "CW_EXTRA=x y",
            "HOME=/home/cwlab1",
            "LOGNAME=cwlab1",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "SLURM_CONF=/etc/slurm/test-passthrough.conf",
            "USER=cwlab1",
        ]
    );

    let id = ok(s.run(s.lab1(), &["id", "-u"], None, 10_000));
    assert_eq!(id["stdout"], "2101\n");
    // stdin arrives; the working directory is the one asked for; a program's words are data.
    let cat = ok(s.run(
        s.lab1(),
        &[
            "sh",
            "-c",
            "cat; pwd; printf '%s' \"$1\"",
            "sh",
            "$(touch PWNED)",
        ],
        Some("in\n"),
        10_000,
    ));
    assert_eq!(
        cat["stdout"].as_str().unwrap(),
        format!("in\n{}\n$(touch PWNED)", s.text("job1"))
    );
    assert!(!s.path("job1/PWNED").exists());

    // The kernel keeps lab 1's command out of lab 2's file.
    let secret = s.text("lab2/secret.txt");
    let denied = ok(s.run(s.lab1(), &["cat", &secret], None, 10_000));
    assert_eq!(denied["exit_code"], 1);
    assert!(
        denied["stderr"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{denied}"
    );
    let op = json!({ "op": "run_command", "argv": ["cat", secret], "cwd": s.text("lab2"), "timeout_ms": 10_000 });
    assert_eq!(ok(s.call(s.lab2(), op))["stdout"], "lab2's secret");

    // Output is capped at 1 MiB each, and said so.
    let big = ok(s.run(
        s.lab1(),
        &["head", "-c", "2000000", "/dev/zero"],
        None,
        10_000,
    ));
    assert_eq!(
        (
            big["stdout"].as_str().unwrap().len(),
            &big["stdout_truncated"]
        ),
        (1 << 20, &json!(true))
    );

    let missing = s.run(s.lab1(), &["no-such-program-here"], None, 10_000);
    assert_eq!(code(&missing), "command-not-found");
    let op =
        json!({ "op": "run_command", "argv": ["true"], "cwd": s.text("lab2"), "timeout_ms": 1000 });
    assert_eq!(code(&s.call(s.lab1(), op)), "permission-denied");
}

#[test]
fn a_command_out_of_time_is_killed_with_its_group() {
    let s = Setup::new();
    let start = Instant::now();
    let out = ok(s.run(
        s.lab1(),
        &["sh", "-c", "echo $$; sleep 30 & sleep 30"],
        None,
        500,
    ));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (&out["timed_out"], &out["signal"], &out["exit_code"]),
        (&json!(true), &json!(9), &Value::Null)
    );
    let pgid: i64 = out["stdout"].as_str().unwrap().trim().parse().unwrap();
    // The background sleep went with it (or is at most a zombie waiting for init).
    let gone = wait_for(Duration::from_secs(5), || {
        let live = fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let pid: Option<i64> = e.file_name().to_str().and_then(|n| n.parse().ok());
            pid.and_then(ids_of).is_some_and(|(_, g, _)| g == pgid)
                && !fs::read_to_string(format!("/proc/{}/stat", pid.unwrap()))
                    .unwrap_or_default()
                    .contains(") Z ")
        });
        (!live).then_some(())
    });
    assert!(
        gone.is_some(),
        "processes of group {pgid} outlived the time limit"
    );
}

#[test]
fn a_started_job_runs_in_its_own_group_and_leaves_a_status_file() {
    let s = Setup::new();
    let job = s.text("job1");
    let op = json!({ "op": "start_job", "job_dir": job, "log_path": "job.log", "status_path": format!("{job}/status.json"),
                     "argv": ["sh", "-c", "echo started as $(id -u) gpus=$CUDA_VISIBLE_DEVICES; exec sleep 30"],
                     "env": [["CUDA_VISIBLE_DEVICES", "1"]] });
    let mut waiter = s.spawn(s.lab1(), op);
    let mut line = String::new();
    BufReader::new(waiter.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started = ok(serde_json::from_str(&line).unwrap());
    let pid = started["pid"].as_i64().unwrap();
    assert_eq!(started["pgid"].as_i64(), Some(pid));
    let (uid, pgid, sid) = ids_of(pid).expect("the job runs");
    assert_eq!((uid, pgid), (2101, pid));
    // Neither in our process group nor in our session.
    let me = ids_of(i64::from(std::process::id())).unwrap();
    assert_ne!(pgid, me.1);
    assert_ne!(sid, me.2);
    let log = s.path("job1/job.log");
    let logged = wait_for(Duration::from_secs(10), || {
        fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("gpus="))
            .map(|t| t.trim().to_owned())
    });
    assert_eq!(logged.as_deref(), Some("started as 2101 gpus=1"));
    let meta = fs::metadata(&log).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (2101, 0o660));

    // Lab 2 may not touch it: the kernel says no.
    let refused = s.call(s.lab2(), json!({ "op": "kill_job", "pgid": pgid }));
    assert_eq!(code(&refused), "permission-denied");
    assert!(ids_of(pid).is_some());

    let killed = ok(s.call(s.lab1(), json!({ "op": "kill_job", "pgid": pgid })));
    assert_eq!(
        killed,
        json!({ "pgid": pgid, "signalled": true, "killed": false })
    );
    // The waiter writes the status file and exits 0.
    let status = waiter.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let written: Value =
        serde_json::from_str(&fs::read_to_string(s.path("job1/status.json")).unwrap()).unwrap();
    assert_eq!(
        (&written["pid"], &written["exit_code"], &written["signal"]),
        (&json!(pid), &Value::Null, &json!(15))
    );
    assert_eq!(
        fs::metadata(s.path("job1/status.json")).unwrap().uid(),
        2101
    );
    // Nothing temporary is left behind.
    let names: Vec<String> = fs::read_dir(s.path("job1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Killing it again finds nothing.
    let again = ok(s.call(s.lab1(), json!({ "op": "kill_job", "pgid": pgid })));
    assert_eq!(again["signalled"], false);
}

#[test]
fn start_job_refuses_paths_outside_the_job_dir() {
    let s = Setup::new();
    let job = s.text("job1");
    let base = json!({ "op": "start_job", "job_dir": job, "argv": ["true"] });
    for (log, status) in [
        ("../escape.log", "s.json"),
        ("job.log", "../s.json"),
        ("/etc/passwd", "s.json"),
        ("", "s.json"),
    ] {
        let mut op = base.clone();
        op["log_path"] = json!(log);
        op["status_path"] = json!(status);
        let answer = s.call(s.lab1(), op);
        assert!(answer.get("error").is_some(), "{log} {status}: {answer}");
    }
    assert!(!s.path("escape.log").exists() && !s.path("s.json").exists());
    // Lab 2 cannot start a job in lab 1's directory.
    let mut op = base.clone();
    op["log_path"] = json!("job.log");
    op["status_path"] = json!("s.json");
    assert_eq!(code(&s.call(s.lab2(), op)), "permission-denied");
}

#[test]
fn a_quick_job_reports_its_exit_code() {
    let s = Setup::new();
    let job = s.text("job1");
    let op = json!({ "op": "start_job", "job_dir": job, "log_path": "sub.log", "status_path": "st.json",
                     "argv": ["sh", "-c", "exit 7"] });
    let out = s.spawn(s.lab1(), op).wait_with_output().unwrap();
    assert!(out.status.success());
    let started = ok(serde_json::from_slice(&out.stdout).unwrap());
    let written: Value =
        serde_json::from_str(&fs::read_to_string(s.path("job1/st.json")).unwrap()).unwrap();
    assert_eq!(
        (&written["pid"], &written["exit_code"], &written["signal"]),
        (&started["pid"], &json!(7), &Value::Null)
    );
    assert!(Path::new(&s.path("job1/sub.log")).exists());
}
