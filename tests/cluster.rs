//! Cluster lanes with the real parts: CryoSPARC's cluster files rendered with custom variables
//! at three levels, values that must stay inert in a script bash really runs, and a single-node
//! SLURM cluster (scripts/slurm-fixture.sh) receiving jobs *as the lab's Unix account* through
//! the real runner — so that the kernel keeps lab 1's job out of lab 2's files — polled with one
//! `squeue` call; and node-lane jobs started, killed and outliving their server handle.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::unix::TwoLabs;
use common::{Backend, TestApp};
use cryowarden_server::cluster::slurm::{self, JobState, Slurm, SlurmError};
use cryowarden_server::cluster::template::{self, Builtins, CustomValues, shell_join};
use cryowarden_server::cluster::{ClusterInfo, ClusterState};
use cryowarden_server::error::StoreError;
use cryowarden_server::runner::{Account, Runner};

/// Polls `f` every 100 ms until it gives a value or `limit` passes.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn builtins(job_dir: &Path, run_cmd: String) -> Builtins {
    Builtins {
        script_path_abs: job_dir
            .join("queue_sub_script.sh")
            .to_string_lossy()
            .into_owned(),
        run_cmd,
        num_cpu: 1,
        num_gpu: 0,
        ram_gb: 0.1,
        job_dir_abs: job_dir.to_string_lossy().into_owned(),
        project_dir_abs: job_dir.parent().unwrap().to_string_lossy().into_owned(),
        job_log_path_abs: job_dir.join("job.log").to_string_lossy().into_owned(),
        worker_bin_path: "/opt/cryosparc_worker/bin/cryosparcw".into(),
        run_args: String::new(),
        project_uid: "P1".into(),
        job_uid: "J1".into(),
        job_creator: "Ada Lovelace".into(),
        cryosparc_username: "ada@lab1.example".into(),
        job_type: "command".into(),
        cluster_job_id: None,
        command: None,
    }
}

fn level(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Runs `bash -n` and then `bash` on `script` in `dir`: (syntax ok, exit status, stderr).
fn bash(dir: &Path, script: &str) -> (bool, Option<i32>, String) {
    let path = dir.join("script.sh");
    std::fs::write(&path, script).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    let run = std::process::Command::new("bash")
        .arg(&path)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    (
        syntax.status.success(),
        run.status.code(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[test]
fn the_example_renders_with_custom_variables_at_three_levels() {
    let (info_json, script) = slurm::example_slurm();
    let info = ClusterInfo::parse(&info_json).unwrap();
    assert_eq!(info.name, "slurmcluster");
    // A site's additions: three custom variables.
    let script = script.replace(
        "#SBATCH --ntasks=1\n",
        "#SBATCH --ntasks=1\n#SBATCH --account={{ account }}\n#SBATCH --qos={{ qos }}\n#SBATCH --comment={{ comment }}\n",
    );
    assert_eq!(
        template::custom_variables(&script)
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        ["account", "comment", "qos"]
    );
    let custom = CustomValues {
        instance: level(&[
            ("account", "facility"),
            ("qos", "normal"),
            ("comment", "from-instance"),
        ]),
        target: level(&[("qos", "gpu-high"), ("comment", "from-target")]),
        job: level(&[("comment", "from the job")]),
    };
    let dir = tempfile::tempdir().unwrap();
    let b = builtins(
        &dir.path().join("P1/J1"),
        shell_join(&["echo", "hello world"]),
    );
    let rendered = template::render_script(&script, &b, &custom).unwrap();
    for line in [
        "#SBATCH --account=facility\n",
        "#SBATCH --qos=gpu-high\n",
        "#SBATCH --comment='from the job'\n",
        "#SBATCH --job-name=cryowarden_P1_J1\n",
        "#SBATCH --cpus-per-task=1\n",
        "#SBATCH --mem=100M\n",
        "\necho 'hello world'\n",
    ] {
        assert!(
            rendered.contains(line),
            "{line:?} missing from:\n{rendered}"
        );
    }
    assert!(
        !rendered.contains("--gres"),
        "no GPU asked, no gres line:\n{rendered}"
    );
    let with_gpu = template::render_script(
        &script,
        &Builtins {
            num_gpu: 2,
            ..b.clone()
        },
        &custom,
    )
    .unwrap();
    assert!(with_gpu.contains("\n#SBATCH --gres=gpu:2\n"), "{with_gpu}");
    let (syntax, status, stderr) = bash(dir.path(), &rendered);
    assert!(syntax && status == Some(0), "{stderr}");

    // The job's resources are not custom variables, at any level.
    for (field, custom) in [
        (
            "custom_variables.instance",
            CustomValues {
                instance: level(&[("num_cpu", "64")]),
                ..Default::default()
            },
        ),
        (
            "custom_variables.target",
            CustomValues {
                target: level(&[("ram_gb", "512")]),
                ..Default::default()
            },
        ),
        (
            "custom_variables.job",
            CustomValues {
                job: level(&[("num_gpu", "8")]),
                ..Default::default()
            },
        ),
    ] {
        match template::render_script(&script, &b, &custom) {
            Err(StoreError::Invalid { field: f, message }) => {
                assert_eq!(f, field);
                assert!(message.contains("cannot be overridden"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn values_stay_data_wherever_the_template_puts_them() {
    let nasty = [
        "$(touch PWNED)",
        "`touch PWNED`",
        "'; touch PWNED; '",
        "\"; touch PWNED; \"",
        "x\ntouch PWNED",
        "x\rtouch PWNED",
        "a b; touch PWNED & touch PWNED | touch PWNED",
        "\\\"; touch PWNED #",
        "$'\\n'touch PWNED",
        "${IFS}touch${IFS}PWNED",
        ") touch PWNED (",
        "#!/bin/sh\ntouch PWNED",
        "plain",
        "",
        "it's ok",
    ];
    // Every place a template may put a value: bare, in its double quotes, in its single quotes,
    // in a comment and on an #SBATCH line; also the built-ins a user chooses (the creator's name).
    let script_tpl = "#!/usr/bin/env bash\n\
        #SBATCH --comment={{ v }}\n\
        ## creator {{ job_creator }}, value {{ v }}\n\
        printf '%s\\0' {{ v }} >> bare.bin\n\
        printf '%s\\0' {{ job_creator }} >> creator.bin\n\
        echo \"{{ v }}\" >> dq.txt\n\
        echo '{{ v }}' >> sq.txt\n\
        X={{ v }}; printf '%s\\0' \"$X\" >> assigned.bin\n\
        {{ run_cmd }}\n";
    let dir = tempfile::tempdir().unwrap();
    for value in nasty {
        for place in ["instance", "target", "job"] {
            let mut custom = CustomValues::default();
            let at = match place {
                "instance" => &mut custom.instance,
                "target" => &mut custom.target,
                _ => &mut custom.job,
            };
            at.insert("v".into(), value.into());
            let run = tempfile::tempdir_in(dir.path()).unwrap();
            let mut b = builtins(
                run.path(),
                shell_join(&["printf", "%s\\0", value]) + " >> run.bin",
            );
            b.job_creator = value.to_owned();
            let rendered = template::render_script(script_tpl, &b, &custom).unwrap();
            let (syntax, status, stderr) = bash(run.path(), &rendered);
            assert!(
                syntax,
                "bash -n refused the script for {value:?}:\n{rendered}"
            );
            assert_eq!(status, Some(0), "{value:?}: {stderr}\n{rendered}");
            assert!(
                !run.path().join("PWNED").exists(),
                "{value:?} ran a command:\n{rendered}"
            );
            // Bare or assigned, the value arrives exactly.
            for file in ["bare.bin", "creator.bin", "assigned.bin", "run.bin"] {
                let got = std::fs::read(run.path().join(file)).unwrap();
                assert_eq!(
                    got,
                    format!("{value}\0").into_bytes(),
                    "{file} for {value:?}:\n{rendered}"
                );
            }
        }
    }

    // The command templates run with /bin/sh -c (dash, which has no $'...'): every value is one
    // exact word wherever the template puts it bare, and inert inside its quotes.
    let b = Builtins {
        cluster_job_id: Some("42".into()),
        ..builtins(dir.path(), String::new())
    };
    let tpl = "printf '%s\\0' {{ cluster_job_id }} --comment={{ v }} \"dq {{ v }}\" 'sq {{ v }}' # {{ v }}";
    for value in nasty.iter().filter(|v| !v.ends_with('\n')) {
        let run = tempfile::tempdir_in(dir.path()).unwrap();
        let custom = CustomValues {
            job: level(&[("v", *value)]),
            ..Default::default()
        };
        let line = template::render_command(tpl, "qdel_cmd_tpl", &b, &custom).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .current_dir(run.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{value:?}: {line}: {out:?}");
        assert!(
            !run.path().join("PWNED").exists(),
            "{value:?} ran a command: {line}"
        );
        let words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_owned)
            .collect();
        assert_eq!(
            words[..2],
            ["42".to_owned(), format!("--comment={value}")],
            "{value:?}: {line}"
        );
    }
}

/// A lab account with its real primary gid.
fn account(user: &str, uid: u32) -> Account {
    let out = std::process::Command::new("id")
        .args(["-g", user])
        .output()
        .unwrap();
    assert!(out.status.success(), "{user} exists");
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    Account {
        user: user.into(),
        uid,
        gid,
    }
}

fn lab1() -> Account {
    account("cwlab1", 2101)
}

/// A job directory `projects1/P<n>/J<n>` made by the runner as cwlab1.
async fn job_dir(runner: &Runner, labs: &TwoLabs, name: &str) -> PathBuf {
    let project = runner
        .create_project_dir(&lab1(), &labs.projects1, &format!("P{name}"))
        .await
        .unwrap();
    let job = runner
        .create_project_dir(&lab1(), Path::new(&project.path), &format!("J{name}"))
        .await
        .unwrap();
    PathBuf::from(job.path)
}

/// Writes `text` to `path` as cwlab1, through the runner (the server never writes lab data).
async fn write_as_lab1(runner: &Runner, path: &Path, text: &str) {
    let argv: Vec<String> = ["sh", "-c", "cat > \"$1\"", "sh", path.to_str().unwrap()]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let out = runner
        .run_command(
            &lab1(),
            &argv,
            path.parent().unwrap(),
            &[],
            Some(text),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
}

/// Renders the example for a job running `run_cmd` in `dir`, writes it as cwlab1, submits it.
async fn submit_example(runner: &Runner, slurm_: &Slurm, dir: &Path, run_cmd: String) -> String {
    let (info, script) = slurm::example_slurm();
    let info = ClusterInfo::parse(&info).unwrap();
    let b = builtins(dir, run_cmd);
    let rendered = template::render_script(&script, &b, &CustomValues::default()).unwrap();
    write_as_lab1(runner, Path::new(&b.script_path_abs), &rendered).await;
    let qsub = template::render_command(
        &info.qsub_cmd_tpl,
        "qsub_cmd_tpl",
        &b,
        &CustomValues::default(),
    )
    .unwrap();
    let qsub =
        template::send_line(&info.send_cmd_tpl, &qsub, &b, &CustomValues::default()).unwrap();
    slurm_
        .submit(runner, &lab1(), &qsub, Path::new(&b.script_path_abs))
        .await
        .unwrap()
}

/// Polls until every job is terminal (100 ms apart, 60 s at most); their last states.
async fn wait_terminal(
    slurm_: &Slurm,
    ids: &[String],
) -> std::collections::HashMap<String, ClusterState> {
    eventually(Duration::from_secs(60), || async {
        let states = slurm_.poll(ids).await.unwrap();
        states
            .values()
            .all(|s| s.state.is_terminal())
            .then_some(states)
    })
    .await
    .unwrap_or_else(|| panic!("jobs {ids:?} did not finish within 60 s"))
}

async fn app_and_labs() -> (TestApp, TwoLabs) {
    let app = TestApp::start(Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let labs = TwoLabs::create(app.dir.path());
    (app, labs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slurm_job_of_lab1_runs_as_lab1_and_cannot_read_lab2() {
    let Some(conf) = common::slurm::slurm_conf() else {
        return;
    };
    let (app, labs) = app_and_labs().await;
    let runner = &app.state.runner;
    let slurm_ = Slurm {
        slurm_conf: Some(conf),
        ..Slurm::default()
    };
    let dir = job_dir(runner, &labs, "sep").await;
    let secret = labs.raw2.join("secret.mrc");
    let run_cmd = format!("id -u\n{}", shell_join(&["cat", secret.to_str().unwrap()]));
    let id = submit_example(runner, &slurm_, &dir, run_cmd).await;
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");

    let states = wait_terminal(&slurm_, std::slice::from_ref(&id)).await;
    // `cat` failed, so the job did.
    assert_eq!(
        (states[&id].state, states[&id].slurm_state.as_str()),
        (JobState::Failed, "FAILED"),
        "{states:?}"
    );
    let log = std::fs::read_to_string(dir.join("job.log")).unwrap();
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("2101"), "{log}");
    assert!(log.contains("Permission denied"), "{log}");
    assert!(!log.contains("unpublished"), "{log}");
    let meta = std::fs::metadata(dir.join("job.log")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 2101);

    // The jobcomp file says the same, once the controller has written it.
    if let Some(jobcomp) = slurm::jobcomp_path(&slurm_.slurm_conf.clone().unwrap()) {
        let ids = vec![id.clone()];
        let record = eventually(Duration::from_secs(10), || {
            let (jobcomp, ids) = (jobcomp.clone(), ids.clone());
            async move { slurm::jobcomp_lookup(&jobcomp, &ids).ok()?.remove(&ids[0]) }
        })
        .await
        .expect("a jobcomp record");
        assert_eq!(
            (
                record.uid,
                record.state,
                record.exit_code,
                record.conflicting
            ),
            (Some(2101), JobState::Failed, Some(1), false)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poll_answers_for_many_jobs() {
    let Some(conf) = common::slurm::slurm_conf() else {
        return;
    };
    let (app, labs) = app_and_labs().await;
    let runner = &app.state.runner;
    let slurm_ = Slurm {
        slurm_conf: Some(conf),
        ..Slurm::default()
    };
    let mut ids = Vec::new();
    for n in 0..20 {
        let dir = job_dir(runner, &labs, &format!("many{n}")).await;
        ids.push(submit_example(runner, &slurm_, &dir, "sleep 0.2".into()).await);
    }
    let unknown = "99999999".to_owned();
    let mut asked = ids.clone();
    asked.push(unknown.clone());
    let states = slurm_.poll(&asked).await.unwrap();
    assert_eq!(states.len(), 21);
    for id in &ids {
        assert_ne!(states[id].state, JobState::Gone, "{id}: {states:?}");
    }
    assert_eq!(states[&unknown].state, JobState::Gone);
    // Only an unknown id: squeue fails with "Invalid job id", which means gone.
    assert_eq!(
        slurm_.poll(std::slice::from_ref(&unknown)).await.unwrap()[&unknown].state,
        JobState::Gone
    );
    let done = wait_terminal(&slurm_, &ids).await;
    assert!(
        done.values().all(|s| s.state == JobState::Completed),
        "{done:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_does_not_answer_is_unavailable() {
    let Some(conf) = common::slurm::slurm_conf() else {
        return;
    };
    let (app, labs) = app_and_labs().await;
    let runner = &app.state.runner;
    // The same cluster's configuration, pointing at a port nobody listens on.
    let down_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        down_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let down_conf = down_dir.path().join("slurm.conf");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("SlurmctldPort=6817", "SlurmctldPort=6899");
    std::fs::write(&down_conf, text).unwrap();
    std::fs::set_permissions(
        &down_conf,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let down = Slurm {
        slurm_conf: Some(down_conf),
        submit_timeout: Duration::from_secs(3),
        poll_timeout: Duration::from_secs(3),
    };
    let dir = job_dir(runner, &labs, "down").await;
    let script = dir.join("s.sh");
    write_as_lab1(runner, &script, "#!/bin/sh\ntrue\n").await;
    let started = Instant::now();
    let submitted = down
        .submit(
            runner,
            &lab1(),
            &format!("sbatch {}", script.display()),
            &script,
        )
        .await;
    assert!(
        matches!(&submitted, Err(e @ SlurmError::Unavailable(_)) if e.is_retryable()),
        "{submitted:?}"
    );
    let polled = down.poll(&["1".into()]).await;
    assert!(
        matches!(polled, Err(SlurmError::Unavailable(_))),
        "{polled:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // A refusal is not unavailability: more GPUs than the node has.
    let up = Slurm {
        slurm_conf: Some(conf),
        ..Slurm::default()
    };
    let refused = up
        .submit(
            runner,
            &lab1(),
            &format!("sbatch --gres=gpu:9 {}", script.display()),
            &script,
        )
        .await;
    assert!(
        matches!(&refused, Err(e @ SlurmError::Rejected { .. }) if !e.is_retryable()),
        "{refused:?}"
    );
}

/// (uid, pgid) of a live process, from /proc.
fn ids_of(pid: i32) -> Option<(u32, i32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state_and_more: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    if state_and_more[0] == "Z" {
        return None;
    }
    Some((uid, state_and_more[2].parse().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_jobs_run_as_the_lab_in_their_own_group_and_outlive_their_handle() {
    let (app, labs) = app_and_labs().await;
    let runner = &app.state.runner;
    let dir = job_dir(runner, &labs, "node").await;
    let argv: Vec<String> = ["sleep", "30"].iter().map(|s| (*s).to_owned()).collect();
    let env = vec![("CUDA_VISIBLE_DEVICES".to_owned(), "1".to_owned())];
    let mut job = runner
        .start_job(&lab1(), &dir, "job.log", &argv, &env, "status.json")
        .await
        .unwrap();
    let pid = job.started.pid;
    assert_eq!(job.started.pgid, pid);
    let (uid, pgid) = ids_of(pid).expect("the job runs");
    assert_eq!((uid, pgid), (2101, pid));
    let me = i32::try_from(std::process::id()).unwrap();
    assert_ne!(
        pgid,
        ids_of(me).unwrap().1,
        "not in the test's process group"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            String::from_utf8_lossy(v)
                .split('=')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    names.retain(|n| n != "SLURM_CONF"); // passed on when the test command exports it
    assert_eq!(
        names,
        ["CUDA_VISIBLE_DEVICES", "HOME", "LOGNAME", "PATH", "USER"]
    );

    // Nothing yet; then the kill, as the lab; the status file says how it ended.
    assert_eq!(
        runner
            .job_status(&lab1(), &dir, "status.json")
            .await
            .unwrap(),
        None
    );
    let killed = runner
        .kill_job(&lab1(), pgid, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(killed.signalled && !killed.killed, "{killed:?}");
    assert!(
        job.wait().await.unwrap(),
        "the waiter wrote the status file"
    );
    let status = runner
        .job_status(&lab1(), &dir, "status.json")
        .await
        .unwrap()
        .expect("a status file");
    assert_eq!(
        (status.pid, status.exit_code, status.signal),
        (pid, None, Some(15))
    );
    assert!(ids_of(pid).is_none());

    // Another lab's account may not kill a job of lab 1: the kernel refuses.
    let mut other = runner
        .start_job(&lab1(), &dir, "job.log", &argv, &[], "other.json")
        .await
        .unwrap();
    let lab2 = account("cwlab2", 2102);
    let refused = runner
        .kill_job(&lab2, other.started.pgid, None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("permission-denied"), "{refused}");
    assert!(ids_of(other.started.pid).is_some());
    runner
        .kill_job(&lab1(), other.started.pgid, None)
        .await
        .unwrap();
    assert!(other.wait().await.unwrap());

    // A job whose handle is dropped (the server went away) runs on and still reports.
    let short: Vec<String> = ["sh", "-c", "sleep 0.5; echo finished"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let dropped = runner
        .start_job(&lab1(), &dir, "dropped.log", &short, &[], "dropped.json")
        .await
        .unwrap();
    let dropped_pid = dropped.started.pid;
    drop(dropped);
    let status = eventually(Duration::from_secs(30), || async {
        runner
            .job_status(&lab1(), &dir, "dropped.json")
            .await
            .unwrap()
    })
    .await
    .expect("the dropped job's status file");
    assert_eq!(
        (status.pid, status.exit_code, status.signal),
        (dropped_pid, Some(0), None)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("dropped.log")).unwrap(),
        "finished\n"
    );
}
