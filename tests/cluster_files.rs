//! CryoSPARC cluster files as facilities write them, connected through the real API and run on
//! the real SLURM cluster of the test command (scripts/slurm-fixture.sh) as the lab's Unix
//! account: shell syntax in the command templates, a `send_cmd_tpl` wrapper, names and paths
//! CryoSPARC accepts, `run_args`, a script that sends SLURM's output elsewhere, SLURM's stderr
//! on a failed submission, and files of other schedulers. Every file here is written for the
//! test.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::jobs::{job, log_of, queue, setup, terminal, wait_job};
use common::world::world;
use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn connect(app: &TestApp, admin: &str, info: Value, script: &str) -> (StatusCode, Value) {
    app.post(
        "/api/v1/clusters",
        admin,
        json!({ "info": info, "script": script }),
    )
    .await
}

/// A directory of the site's own files (a profile, a wrapper), readable by the lab accounts.
fn site_dir(app: &TestApp) -> PathBuf {
    let dir = app.dir.path().join("site");
    std::fs::create_dir_all(&dir).unwrap();
    for d in [app.dir.path(), dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `scontrol show job ID -o`, as root.
fn scontrol_job(id: &str) -> String {
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", id, "-o"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const LOGGED_SCRIPT: &str =
    "#!/usr/bin/env bash\n#SBATCH --output={{ job_log_path_abs }}\n{{ run_cmd }}\n";

on_both_backends!(
    shell_syntax_in_the_command_templates_runs_through_sh_as_the_lab,
    |app: TestApp| async move {
        let Some(_conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        let site = site_dir(&app);
        let profile = site.join("slurm.sh");
        write(&profile, "export CW_SITE_PROFILE=sourced\n", 0o644);
        let p = profile.display();
        let info = json!({
            "name": "shelly",
            "qsub_cmd_tpl": format!(
                ". {p} ; SBATCH_JOB_NAME=cwshell_{{{{ job_uid }}}} sbatch --parsable --comment={{{{ note }}}} \
                 {{{{ script_path_abs }}}} 2> {{{{ job_dir_abs }}}}/sbatch.err | cut -d ';' -f1"
            ),
            "qstat_cmd_tpl": format!(". {p} ; squeue -j {{{{ cluster_job_id }}}}"),
            "qdel_cmd_tpl": format!(". {p} ; scancel {{{{ cluster_job_id }}}}"),
            "qinfo_cmd_tpl": format!(". {p} ; echo \"as $(id -un) profile=$CW_SITE_PROFILE\" ; sinfo | head -n 3"),
        });
        let script = "#!/usr/bin/env bash\n#SBATCH --output={{ job_log_path_abs }}\n\
                  echo \"profile=$CW_SITE_PROFILE name=$SLURM_JOB_NAME\"\n{{ run_cmd }}\n";
        let (s, v) = connect(&app, &w.admin, info, script).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let lane = v["id"].as_i64().unwrap();

        // A value typed by a user reaches sbatch as one exact word, never as shell code.
        let site_s = site.display().to_string();
        let note = format!("$(touch {site_s}/PWNED) it's; `touch {site_s}/PWNED` \"q\" a|b");
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        let (s, v) = queue(
            &app,
            &w.alice.1,
            id,
            json!({ "lane": "shelly", "custom_vars": { "note": note } }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        let cluster_id = v["cluster_job_id"].as_str().unwrap().to_owned();
        assert!(
            cluster_id.bytes().all(|b| b.is_ascii_digit()),
            "cut kept the id alone: {v}"
        );
        let log = log_of(&app, &w.alice.1, id).await;
        let uid = v["uid"].as_str().unwrap();
        assert!(
            log.contains(&format!("profile=sourced name=cwshell_{uid}\n")),
            "{log}"
        );
        assert!(log.contains("validation passed"), "{log}");
        let shown = scontrol_job(&cluster_id);
        assert!(shown.contains(&format!("Comment={note} ")), "{shown}");
        assert!(!site.join("PWNED").exists(), "the value ran as code");
        let dir = PathBuf::from(v["job_dir"].as_str().unwrap());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(dir.join("sbatch.err")).unwrap().uid(),
            2101,
            "sbatch ran as the lab"
        );

        // qinfo through the shell, as the account of the project's lab.
        let (s, v) = app
            .post(
                &format!("/api/v1/lanes/{lane}/cluster-info?project={project}"),
                &w.admin,
                json!(null),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["exit_code"], 0, "{v}");
        let out = v["stdout"].as_str().unwrap();
        assert!(
            out.contains("as cwlab1 profile=sourced") && out.contains("PARTITION"),
            "{v}"
        );
    }
);

on_both_backends!(
    send_cmd_tpl_wraps_every_cluster_command,
    |app: TestApp| async move {
        let Some(_conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        let site = site_dir(&app);
        let sent = site.join("sent.log");
        write(&sent, "", 0o666);
        let wrapper = site.join("cw-test-send");
        write(
            &wrapper,
            &format!(
                "#!/bin/sh\nprintf '%s|%s\\n' \"$(id -un)\" \"$1\" >> {}\nexec /bin/sh -c \"$1\"\n",
                sent.display()
            ),
            0o755,
        );
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("relayed");
        info["send_cmd_tpl"] = json!(format!("{} {{{{ command }}}}", wrapper.display()));
        let (s, v) = connect(&app, &w.admin, info, LOGGED_SCRIPT).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let lane = v["id"].as_i64().unwrap();
        let nap = json!({ "name": "nap", "params": [{ "name": "seconds", "type": "int", "required": true }],
                      "argv": ["/bin/sleep", "{{ seconds }}"] });
        assert_eq!(
            app.call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(nap))
                .await
                .0,
            StatusCode::OK
        );

        let done = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        assert_eq!(
            queue(&app, &w.alice.1, done, json!({ "lane": "relayed" }))
                .await
                .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, done, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        let long = json!({ "job_type": "command", "params": { "template": "nap", "values": { "seconds": 120 } } });
        let killed = job(&app, &w.alice.1, project, long).await;
        assert_eq!(
            queue(&app, &w.alice.1, killed, json!({ "lane": "relayed" }))
                .await
                .0,
            StatusCode::OK
        );
        wait_job(&app, &w.alice.1, killed, |v| v["status"] == "running").await;
        let (s, v) = app
            .post(
                &format!("/api/v1/jobs/{killed}/kill"),
                &w.alice.1,
                json!(null),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let v = wait_job(&app, &w.alice.1, killed, terminal).await;
        assert_eq!(v["status"].as_str(), Some("killed"), "{v}");
        let cluster_id = v["cluster_job_id"].as_str().unwrap().to_owned();
        let (s, v) = app
            .post(
                &format!("/api/v1/lanes/{lane}/cluster-info?project={project}"),
                &w.admin,
                json!(null),
            )
            .await;
        assert_eq!((s, &v["exit_code"]), (StatusCode::OK, &json!(0)), "{v}");

        let log = std::fs::read_to_string(&sent).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines.iter().all(|l| l.starts_with("cwlab1|")),
            "every command ran as the lab's account: {log}"
        );
        for program in ["sbatch ", "squeue ", "sinfo"] {
            assert!(
                lines.iter().any(|l| l.contains(program)),
                "{program} went through send_cmd_tpl: {log}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("scancel {cluster_id}"))),
            "{log}"
        );
    }
);

on_both_backends!(
    valid_files_are_accepted_and_broken_templates_refused_at_connect,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let base: Value = serde_json::from_str(&info).unwrap();
        let lanes_before = app.get("/api/v1/lanes", &w.admin).await.1;

        // A template with a construct cryowarden cannot render is refused at connect, naming it.
        let mut info = base.clone();
        info["name"] = json!("broken");
        let script = "#!/usr/bin/env bash\n#SBATCH --partition={{ partitions.split(',')[0] }}\n{{ run_cmd }}\n";
        let (s, v) = connect(&app, &w.admin, info.clone(), script).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("cluster_script")),
            "{v}"
        );
        assert!(
            v["detail"].as_str().unwrap_or_default().contains("split"),
            "{v}"
        );
        info["qsub_cmd_tpl"] =
            json!("sbatch --account={{ account.split('_')[0] }} {{ script_path_abs }}");
        let (s, v) = connect(&app, &w.admin, info, LOGGED_SCRIPT).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("qsub_cmd_tpl")),
            "{v}"
        );
        assert_eq!(
            app.get("/api/v1/lanes", &w.admin).await.1,
            lanes_before,
            "a refusal changes nothing"
        );

        // A name with spaces is the title; the lane gets a safe name. A relative worker_bin_path is
        // accepted: cryowarden never runs it.
        let mut info = base.clone();
        info["name"] = json!("GPU cluster (A100)");
        info.as_object_mut().unwrap().remove("title");
        info["worker_bin_path"] = json!("cryosparc_worker/bin/cryosparcw");
        let (s, v) = connect(&app, &w.admin, info.clone(), LOGGED_SCRIPT).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (lane, name) = (
            v["id"].as_i64().unwrap(),
            v["name"].as_str().unwrap().to_owned(),
        );
        assert_eq!(
            (name.as_str(), v["title"].as_str()),
            ("GPU_cluster_A100", Some("GPU cluster (A100)")),
            "{v}"
        );
        assert_eq!(
            v["targets"][0]["config"]["worker_bin_path"], "cryosparc_worker/bin/cryosparcw",
            "{v}"
        );
        // Connected again, it is the same lane.
        let (s, v) = connect(&app, &w.admin, info, LOGGED_SCRIPT).await;
        assert_eq!((s, v["id"].as_i64()), (StatusCode::OK, Some(lane)), "{v}");
        // Another cluster whose name maps to the same lane name is refused, not merged.
        let mut clash = base.clone();
        clash["name"] = json!("GPU_cluster_A100");
        let (s, v) = connect(&app, &w.admin, clash, LOGGED_SCRIPT).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
            "{v}"
        );

        if common::slurm::slurm_conf().is_some() {
            let id = job(
                &app,
                &w.alice.1,
                project,
                json!({ "job_type": "validation" }),
            )
            .await;
            assert_eq!(
                queue(&app, &w.alice.1, id, json!({ "lane": name })).await.0,
                StatusCode::OK
            );
            let v = wait_job(&app, &w.alice.1, id, terminal).await;
            assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        }
    }
);

on_both_backends!(
    run_args_are_filled_and_a_script_without_run_cmd_warns,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("argful");
        let script = "#!/usr/bin/env bash\n#SBATCH --output={{ job_log_path_abs }}\necho \"args: {{ run_args }}\"\n\
                  {{ run_cmd }}\n";
        let (s, v) = connect(&app, &w.admin, info.clone(), script).await;
        assert_eq!(
            (s, &v["warnings"]),
            (StatusCode::OK, &json!([])),
            "no warning for a file that works: {v}"
        );

        // A script that never runs the job's command: accepted, with a warning in the answer...
        let mut silent = info.clone();
        silent["name"] = json!("silent");
        let idle = "#!/usr/bin/env bash\n#SBATCH --output={{ job_log_path_abs }}\necho {{ worker_bin_path }}\n";
        let (s, v) = connect(&app, &w.admin, silent, idle).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
        assert!(
            warnings
                .iter()
                .any(|m| m.as_str().unwrap_or_default().contains("{{ run_cmd }}")),
            "{v}"
        );
        // ...and from the CLI.
        let dir = app.dir.path().join("silent-files");
        std::fs::create_dir_all(&dir).unwrap();
        let mut cli_info = info.clone();
        cli_info["name"] = json!("silent-cli");
        std::fs::write(dir.join("cluster_info.json"), cli_info.to_string()).unwrap();
        std::fs::write(dir.join("cluster_script.sh"), idle).unwrap();
        let (ok, v, err) = app
            .cli(
                &w.admin,
                &[
                    "cluster",
                    "connect",
                    "--info",
                    dir.join("cluster_info.json").to_str().unwrap(),
                    "--script",
                    dir.join("cluster_script.sh").to_str().unwrap(),
                ],
            )
            .await;
        assert!(ok, "{err}");
        assert!(
            err.contains("warning:") && err.contains("{{ run_cmd }}"),
            "{err} {v}"
        );

        if common::slurm::slurm_conf().is_some() {
            let greet = json!({ "name": "greet", "params": [{ "name": "who", "type": "string", "required": true }],
                            "argv": ["/bin/echo", "hello", "{{ who }}"] });
            assert_eq!(
                app.call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(greet))
                    .await
                    .0,
                StatusCode::OK
            );
            let body = json!({ "job_type": "command", "params": { "template": "greet", "values": { "who": "big world" } } });
            let id = job(&app, &w.alice.1, project, body).await;
            assert_eq!(
                queue(&app, &w.alice.1, id, json!({ "lane": "argful" }))
                    .await
                    .0,
                StatusCode::OK
            );
            let v = wait_job(&app, &w.alice.1, id, terminal).await;
            assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
            let log = log_of(&app, &w.alice.1, id).await;
            assert!(log.contains("args: hello 'big world'\n"), "{log}");
            assert!(log.contains("hello big world\n"), "{log}");
        }
    }
);

on_both_backends!(
    the_job_log_is_written_when_slurm_output_goes_elsewhere,
    |app: TestApp| async move {
        let Some(_conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("ownout");
        let script = "#!/usr/bin/env bash\n#SBATCH -o {{ job_dir_abs }}/slurm-own.out\n#SBATCH -e {{ job_dir_abs }}/slurm-own.err\n\
                  echo from-the-template\n{{ run_cmd }}\n";
        let (s, v) = connect(&app, &w.admin, info, script).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        assert_eq!(
            queue(&app, &w.alice.1, id, json!({ "lane": "ownout" }))
                .await
                .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        let log = log_of(&app, &w.alice.1, id).await;
        assert!(
            log.contains("cryowarden validation") && log.contains("validation passed"),
            "{log}"
        );
        let own = std::fs::read_to_string(
            Path::new(v["job_dir"].as_str().unwrap()).join("slurm-own.out"),
        )
        .unwrap();
        assert!(
            own.contains("from-the-template"),
            "the site's own file still gets the template's output: {own}"
        );
    }
);

on_both_backends!(
    a_refused_submission_keeps_slurms_stderr,
    |app: TestApp| async move {
        let Some(_conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("piped");
        // sbatch fails inside a pipe: the command exits 0 and prints nothing on stdout.
        info["qsub_cmd_tpl"] = json!(
            "sh -c 'sbatch --parsable --gres=gpu:9 \"$1\" | cut -d \";\" -f1' sh {{ script_path_abs }}"
        );
        let (s, v) = connect(&app, &w.admin, info, LOGGED_SCRIPT).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        assert_eq!(
            queue(&app, &w.alice.1, id, json!({ "lane": "piped" }))
                .await
                .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("failed"), "{v}");
        let failure = v["failure"].as_str().unwrap_or_default();
        assert!(
            failure.contains("Batch job submission failed"),
            "SLURM's stderr is in the failure: {v}"
        );
    }
);

on_both_backends!(
    files_of_other_schedulers_are_refused_at_connect,
    |app: TestApp| async move {
        let w = world(&app).await;
        let lanes_before = app.get("/api/v1/lanes", &w.admin).await.1;
        let pbs = json!({
            "name": "pbscluster",
            "qsub_cmd_tpl": "qsub {{ script_path_abs }}",
            "qstat_cmd_tpl": "qstat -x {{ cluster_job_id }}",
            "qdel_cmd_tpl": "qdel {{ cluster_job_id }}",
            "qinfo_cmd_tpl": "pbsnodes -a",
        });
        let sge = json!({
            "name": "sgecluster",
            "send_cmd_tpl": "{{ command }}",
            "qsub_cmd_tpl": "source /opt/sge/default/common/settings.sh; qsub -terse {{ script_path_abs }}",
            "qstat_cmd_tpl": "qstat -j {{ cluster_job_id }}",
            "qdel_cmd_tpl": "qdel {{ cluster_job_id }}",
            "qinfo_cmd_tpl": "qstat -q",
        });
        for (info, script) in [
            (
                pbs,
                "#!/bin/bash\n#PBS -N cryosparc_{{ job_uid }}\n{{ run_cmd }}\n",
            ),
            (
                sge,
                "#!/bin/bash\n#$ -N cryosparc_{{ job_uid }}\n{{ run_cmd }}\n",
            ),
        ] {
            let (s, v) = connect(&app, &w.admin, info, script).await;
            assert_eq!(
                (s, v["code"].as_str(), v["field"].as_str()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("unsupported-scheduler"),
                    Some("qsub_cmd_tpl")
                ),
                "{v}"
            );
            assert!(
                v["detail"].as_str().unwrap_or_default().contains("SLURM"),
                "{v}"
            );
        }
        assert_eq!(
            app.get("/api/v1/lanes", &w.admin).await.1,
            lanes_before,
            "nothing was added"
        );
    }
);

on_both_backends!(
    a_lane_of_another_cluster_is_polled_with_its_own_template,
    |app: TestApp| async move {
        let Some(conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        // The fixture's second cluster: the server's own SLURM (`SLURM_CONF`) is the first one, so
        // a plain `squeue` never lists this lane's jobs; only `-M <cluster>`, as its files say, does.
        let other = conf.parent().unwrap().join("other/slurm.conf");
        let cluster = std::fs::read_to_string(&other)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (scripts/slurm-fixture.sh starts a second cluster)",
                    other.display()
                )
            })
            .lines()
            .find_map(|l| l.strip_prefix("ClusterName=").map(str::to_owned))
            .expect("ClusterName in the second cluster's slurm.conf");
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("elsewhere");
        info["qsub_cmd_tpl"] = json!(format!(
            "sbatch --parsable -M {cluster} {{{{ script_path_abs }}}}"
        ));
        info["qstat_cmd_tpl"] = json!(format!("squeue -M {cluster} -j {{{{ cluster_job_id }}}}"));
        info["qdel_cmd_tpl"] = json!(format!("scancel -M {cluster} {{{{ cluster_job_id }}}}"));
        let script = "#!/usr/bin/env bash\n#SBATCH --output={{ job_log_path_abs }}\necho \"on $SLURM_CLUSTER_NAME\"\n\
                  sleep 1\n{{ run_cmd }}\n";
        let (s, v) = connect(&app, &w.admin, info, script).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let nap = json!({ "name": "nap", "params": [{ "name": "seconds", "type": "int", "required": true }],
                      "argv": ["/bin/sleep", "{{ seconds }}"] });
        assert_eq!(
            app.call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(nap))
                .await
                .0,
            StatusCode::OK
        );
        let mut ids = Vec::new();
        for _ in 0..3 {
            let id = job(
                &app,
                &w.alice.1,
                project,
                json!({ "job_type": "validation" }),
            )
            .await;
            assert_eq!(
                queue(&app, &w.alice.1, id, json!({ "lane": "elsewhere" }))
                    .await
                    .0,
                StatusCode::OK
            );
            ids.push(id);
        }
        let long = json!({ "job_type": "command", "params": { "template": "nap", "values": { "seconds": 120 } } });
        let killed = job(&app, &w.alice.1, project, long).await;
        assert_eq!(
            queue(&app, &w.alice.1, killed, json!({ "lane": "elsewhere" }))
                .await
                .0,
            StatusCode::OK
        );
        for id in &ids {
            let v = wait_job(&app, &w.alice.1, *id, terminal).await;
            assert_eq!(
                v["status"].as_str(),
                Some("completed"),
                "followed to its end, not failed as gone: {v}"
            );
            assert!(
                log_of(&app, &w.alice.1, *id)
                    .await
                    .contains(&format!("on {cluster}\n"))
            );
        }
        let v = wait_job(&app, &w.alice.1, killed, |v| {
            v["status"] != "queued" && v["status"] != "launched"
        })
        .await;
        assert_eq!(v["status"].as_str(), Some("running"), "{v}");
        assert_eq!(
            app.post(
                &format!("/api/v1/jobs/{killed}/kill"),
                &w.alice.1,
                json!(null)
            )
            .await
            .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, killed, terminal).await;
        assert_eq!(v["status"].as_str(), Some("killed"), "{v}");
        let id = v["cluster_job_id"].as_str().unwrap();
        let out = std::process::Command::new("squeue")
            .args(["-M", &cluster, "-h", "-t", "all", "-o", "%T", "-j", id])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("CANCELLED"),
            "{out:?}"
        );
    }
);

on_both_backends!(
    a_job_of_another_cluster_caught_mid_submission_is_adopted,
    |mut app: TestApp| async move {
        let Some(conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        let other = conf.parent().unwrap().join("other/slurm.conf");
        let cluster = std::fs::read_to_string(&other)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("ClusterName=").map(str::to_owned))
            .expect("ClusterName in the second cluster's slurm.conf");
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("faraway");
        info["qsub_cmd_tpl"] = json!(format!(
            "sbatch --parsable -M {cluster} {{{{ script_path_abs }}}}"
        ));
        info["qstat_cmd_tpl"] = json!(format!("squeue -M {cluster} -j {{{{ cluster_job_id }}}}"));
        let (s, v) = connect(&app, &w.admin, info, LOGGED_SCRIPT).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let lane = v["id"].as_i64().unwrap();
        let adopted = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        // The server stops just after marking the job launched, once sbatch had reached the cluster.
        app.state.scheduler.halt();
        sqlx::query("UPDATE jobs SET status = 'launched', lane_id = $1, queued_seq = 1, priority = 0 WHERE id = $2")
        .bind(lane)
        .bind(adopted)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
        let (_, v) = app
            .get(&format!("/api/v1/jobs/{adopted}"), &w.alice.1)
            .await;
        let dir = v["job_dir"].as_str().unwrap().to_owned();
        let out = std::process::Command::new("runuser")
            .args(["-u", "cwlab1", "--", "sbatch", "--parsable", "-M", &cluster])
            .args([format!("--chdir={dir}"), format!("--output={dir}/job.log")])
            .args(["--wrap", "echo submitted before the crash"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let manual = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        app.restart().await;
        let v = wait_job(&app, &w.alice.1, adopted, terminal).await;
        assert_eq!(
            (v["status"].as_str(), v["cluster_job_id"].as_str()),
            (Some("completed"), Some(manual.as_str())),
            "found again on its cluster, not submitted twice: {v}"
        );
        assert!(
            log_of(&app, &w.alice.1, adopted)
                .await
                .contains("submitted before the crash")
        );
        let out = std::process::Command::new("squeue")
            .args([
                "-M", &cluster, "-h", "-t", "all", "-u", "cwlab1", "-o", "%i|%Z",
            ])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            listing
                .lines()
                .filter(|l| l.split('|').nth(1) == Some(dir.as_str()))
                .count(),
            1,
            "{listing}"
        );
    }
);
