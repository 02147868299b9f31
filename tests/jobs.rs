//! Jobs, the queue and node lanes through real HTTP, with real Unix accounts and the real runner:
//! validation jobs run as the lab's account with their GPUs, priorities and FIFO order are the
//! launch order, lane restrictions are refused at queue time, kills stop the process group, and
//! imports read real MRC and TIFF headers.

mod common;

use common::jobs::{job, log_of, queue, setup, terminal, wait_job};
use common::world::{create_project, world};
use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn node_lane(app: &TestApp, admin: &str, name: &str, cpus: u32, gpus: &[u32]) -> i64 {
    let (s, v) = app
        .post(
            "/api/v1/lanes",
            admin,
            json!({ "name": name, "kind": "node" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    let gpus: Vec<Value> = gpus
        .iter()
        .map(|g| json!({ "id": g, "name": "fake" }))
        .collect();
    let target = json!({ "name": format!("{name}-node"), "cpus": cpus, "ram_gb": 8, "gpus": gpus });
    let (s, v) = app
        .post(&format!("/api/v1/lanes/{id}/targets"), admin, target)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

on_both_backends!(
    a_validation_job_runs_as_the_labs_account_with_its_gpus,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        node_lane(&app, &w.admin, "gpus", 4, &[0, 1]).await;
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation", "num_gpu": 1 }),
        )
        .await;
        let (_, v) = app.get(&format!("/api/v1/jobs/{id}"), &w.alice.1).await;
        assert_eq!(
            (v["status"].as_str(), v["uid"].as_str()),
            (Some("building"), Some("J1")),
            "{v}"
        );
        let dir = std::path::Path::new(v["job_dir"].as_str().unwrap()).to_owned();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().uid(),
            2101,
            "the job directory is the lab's"
        );
        let (s, v) = queue(
            &app,
            &w.alice.1,
            id,
            json!({ "lane": "gpus", "target": "gpus-node", "gpu_ids": [1] }),
        )
        .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("queued")),
            "{v}"
        );
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        let log = log_of(&app, &w.alice.1, id).await;
        assert!(log.contains("account: cwlab1 uid=2101"), "{log}");
        assert!(
            log.contains("CUDA_VISIBLE_DEVICES=1\n"),
            "the GPU asked for: {log}"
        );
        assert!(log.contains("validation passed"), "{log}");
        // bob (lab2) cannot see it, nor its log.
        assert_eq!(
            app.get(&format!("/api/v1/jobs/{id}"), &w.bob.1).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get(&format!("/api/v1/jobs/{id}/log"), &w.bob.1).await.0,
            StatusCode::NOT_FOUND
        );
        // GPU ids the target does not have are refused.
        let other = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation", "num_gpu": 1 }),
        )
        .await;
        let (s, v) = queue(
            &app,
            &w.alice.1,
            other,
            json!({ "lane": "gpus", "target": "gpus-node", "gpu_ids": [7] }),
        )
        .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("gpu_ids")),
            "{v}"
        );
    }
);

/// An RFC 3339 time of the API as something that sorts in time order: its seconds and its
/// nanoseconds. (As text it does not: the fraction has as many digits as it needs, so
/// `...:01.1Z` sorts after `...:01.15Z`.)
fn instant(rfc3339: &str) -> (String, u32) {
    let (seconds, rest) = rfc3339.split_at(19);
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let nanos = format!("{digits:0<9}").parse().unwrap();
    (seconds.to_owned(), nanos)
}

on_both_backends!(
    priorities_and_fifo_are_the_launch_order,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        node_lane(&app, &w.admin, "single", 1, &[]).await;
        let sleep = json!({ "name": "sleep", "params": [{ "name": "seconds", "type": "float", "required": true }],
                        "argv": ["/bin/sleep", "{{ seconds }}"], "num_cpu": 1, "num_gpu": 0, "ram_gb": 1 });
        let (s, v) = app
            .call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(sleep))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // alice may set priorities; the lane has one CPU, so its jobs run one at a time.
        let (s, _) = app
            .patch(
                &format!("/api/v1/users/{}", w.alice.0),
                &w.admin,
                json!({ "job_priority_management": true }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let command = |secs: f64| json!({ "job_type": "command", "params": { "template": "sleep", "values": { "seconds": secs } } });
        // Launches are held (maintenance) while every job is queued, so that the launch order is read
        // from the whole queue at once and never depends on how fast the queueing was.
        let on = json!({ "maintenance": { "active": true, "message": "" } });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, on).await.0,
            StatusCode::OK
        );
        let names = [("a", 10), ("b", 50), ("c", 50), ("d", 10), ("e", 90)];
        let mut ids = Vec::new();
        for (name, priority) in names {
            let id = job(&app, &w.alice.1, project, command(0.05)).await;
            let (s, v) = queue(
                &app,
                &w.alice.1,
                id,
                json!({ "lane": "single", "priority": priority }),
            )
            .await;
            assert_eq!(
                (s, v["priority"].as_i64()),
                (StatusCode::OK, Some(priority)),
                "{v}"
            );
            assert_eq!(
                v["queue_state"].as_str(),
                Some("waiting_maintenance"),
                "{v}"
            );
            ids.push((name, id));
        }
        // dave (an editor) may not set priorities: his 99 counts as the instance default, 0.
        let editor = json!({ "user_id": w.dave.0, "role": "editor" });
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{project}/members"),
                &w.alice.1,
                editor,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let daves = job(&app, &w.dave.1, project, command(0.05)).await;
        let (s, v) = queue(
            &app,
            &w.dave.1,
            daves,
            json!({ "lane": "single", "priority": 99 }),
        )
        .await;
        assert_eq!(
            (s, v["priority"].as_i64()),
            (StatusCode::OK, Some(0)),
            "{v}"
        );
        ids.push(("f", daves));
        let off = json!({ "maintenance": { "active": false, "message": "" } });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, off)
                .await
                .0,
            StatusCode::OK
        );
        let mut launched = Vec::new();
        for (name, id) in &ids {
            let v = wait_job(&app, &w.alice.1, *id, terminal).await;
            assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
            launched.push((instant(v["launched_at"].as_str().unwrap()), *name));
        }
        launched.sort();
        let order: Vec<&str> = launched.iter().map(|(_, n)| *n).collect();
        assert_eq!(
            order,
            ["e", "b", "c", "a", "d", "f"],
            "priority first, first in first out within a level"
        );
    }
);

on_both_backends!(
    lane_restrictions_are_refused_at_queue_time,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        node_lane(&app, &w.admin, "restricted", 2, &[]).await;
        let (s, v) = app
            .call(
                Method::PUT,
                &format!("/api/v1/users/{}/lanes", w.alice.0),
                Some(&w.admin),
                Some(json!({ "not_allowed": ["restricted"] })),
            )
            .await;
        assert_eq!(
            (s, v["not_allowed"].clone()),
            (StatusCode::OK, json!(["restricted"])),
            "{v}"
        );
        let (_, lanes) = app.get("/api/v1/lanes", &w.alice.1).await;
        let names: Vec<&str> = lanes
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["default"], "alice sees only her allowed lanes");
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        let before = app.audit_len().await;
        let (s, v) = queue(&app, &w.alice.1, id, json!({ "lane": "restricted" })).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("lane-not-allowed")),
            "{v}"
        );
        assert_eq!(app.audit_len().await, before + 1, "the refusal is audited");
        let (_, v) = app.get(&format!("/api/v1/jobs/{id}"), &w.alice.1).await;
        assert_eq!(v["status"].as_str(), Some("building"), "nothing changed");
        // Admins queue anywhere; a new lane goes to every user.
        let (s, _) = queue(&app, &w.admin, id, json!({ "lane": "restricted" })).await;
        assert_eq!(s, StatusCode::OK);
        node_lane(&app, &w.admin, "newer", 1, &[]).await;
        let (_, lanes) = app.get("/api/v1/lanes", &w.alice.1).await;
        assert_eq!(lanes.as_array().unwrap().len(), 2, "{lanes}");
        // An ordinary user cannot change restrictions.
        let (s, _) = app
            .call(
                Method::PUT,
                &format!("/api/v1/users/{}/lanes", w.alice.0),
                Some(&w.alice.1),
                Some(json!({ "not_allowed": [] })),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

on_both_backends!(
    kill_stops_the_process_group_and_clear_resets,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let sleep = json!({ "name": "nap", "params": [{ "name": "seconds", "type": "int", "required": true }],
                        "argv": ["/bin/sleep", "{{ seconds }}"] });
        let (s, v) = app
            .call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(sleep))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let id = job(
        &app,
        &w.alice.1,
        project,
        json!({ "job_type": "command", "params": { "template": "nap", "values": { "seconds": 60 } } }),
    )
    .await;
        let (s, _) = queue(&app, &w.alice.1, id, json!({ "lane": "default" })).await;
        assert_eq!(s, StatusCode::OK);
        let v = wait_job(&app, &w.alice.1, id, |v| v["status"] == "running").await;
        let pgid = v["pid"].as_i64().expect("the process group is recorded");
        let status = std::fs::read_to_string(format!("/proc/{pgid}/status")).expect("the job runs");
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.contains("2101")),
            "as cwlab1: {status}"
        );
        let (s, v) = app
            .post(&format!("/api/v1/jobs/{id}/kill"), &w.alice.1, json!(null))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("killed"), "{v}");
        assert!(
            !std::path::Path::new(&format!("/proc/{pgid}")).exists() || {
                let st = std::fs::read_to_string(format!("/proc/{pgid}/stat")).unwrap_or_default();
                st.split_whitespace().nth(2) == Some("Z")
            },
            "the process is gone"
        );
        // bob cannot kill it, or even see it.
        assert_eq!(
            app.post(&format!("/api/v1/jobs/{id}/kill"), &w.bob.1, json!(null))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (s, v) = app
            .post(&format!("/api/v1/jobs/{id}/clear"), &w.alice.1, json!(null))
            .await;
        assert_eq!(
            (s, v["status"].as_str(), v["priority"].as_i64()),
            (StatusCode::OK, Some("building"), Some(0)),
            "{v}"
        );
    }
);

/// A little-endian MRC file: 1024-byte header then float32 data.
fn mrc(nx: u32, ny: u32, nz: u32, pixel_a: f32) -> Vec<u8> {
    let mut h = vec![0u8; 1024];
    let put = |h: &mut Vec<u8>, word: usize, v: u32| {
        h[word * 4..word * 4 + 4].copy_from_slice(&v.to_le_bytes());
    };
    put(&mut h, 0, nx);
    put(&mut h, 1, ny);
    put(&mut h, 2, nz);
    put(&mut h, 3, 2); // float32
    put(&mut h, 7, nx);
    put(&mut h, 8, ny);
    put(&mut h, 9, nz);
    put(&mut h, 10, (pixel_a * nx as f32).to_bits());
    put(&mut h, 11, (pixel_a * ny as f32).to_bits());
    put(&mut h, 12, (pixel_a * nz as f32).to_bits());
    put(&mut h, 16, 1);
    put(&mut h, 17, 2);
    put(&mut h, 18, 3);
    h[208..212].copy_from_slice(b"MAP ");
    h[212..216].copy_from_slice(&[0x44, 0x44, 0, 0]);
    h.extend(vec![0u8; (nx * ny * nz * 4) as usize]);
    h
}

/// A little-endian multi-page TIFF of `frames` 8-bit pages.
fn tiff(width: u16, height: u16, frames: u16) -> Vec<u8> {
    let mut out = b"II*\0".to_vec();
    out.extend(8u32.to_le_bytes());
    let page = width as usize * height as usize;
    for f in 0..frames {
        let ifd_at = out.len();
        let entries: [(u16, u16, u32); 6] = [
            (256, 3, u32::from(width)),
            (257, 3, u32::from(height)),
            (258, 3, 8),
            (259, 3, 1),
            (273, 4, 0), // strip offset, patched below
            (279, 4, page as u32),
        ];
        let data_at = ifd_at + 2 + entries.len() * 12 + 4;
        out.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(kind.to_le_bytes());
            out.extend(1u32.to_le_bytes());
            let v = if tag == 273 { data_at as u32 } else { value };
            if kind == 3 {
                out.extend((v as u16).to_le_bytes());
                out.extend([0, 0]);
            } else {
                out.extend(v.to_le_bytes());
            }
        }
        let next = if f + 1 < frames {
            (data_at + page) as u32
        } else {
            0
        };
        out.extend(next.to_le_bytes());
        out.extend(vec![f as u8; page]);
    }
    out
}

on_both_backends!(
    an_import_reads_real_headers_and_reports_damaged_files,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let session = w.disk.raw1.join("session1");
        std::fs::create_dir(&session).unwrap();
        std::fs::write(session.join("movie_001.mrcs"), mrc(64, 48, 12, 0.83)).unwrap();
        std::fs::write(session.join("movie_002.tif"), tiff(32, 16, 40)).unwrap();
        let mut broken = mrc(64, 64, 10, 1.0);
        broken.truncate(5000);
        std::fs::write(session.join("movie_003.mrcs"), broken).unwrap();
        let chown = std::process::Command::new("chown")
            .args(["-R", "cwlab1:cwlab1"])
            .arg(&session)
            .output()
            .unwrap();
        assert!(chown.status.success());
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "import_movies", "params": { "path": "session1/movie_*" } }),
        )
        .await;
        let (s, v) = queue(&app, &w.alice.1, id, json!({ "lane": "default" })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        assert!(
            v["failure"]
                .as_str()
                .unwrap_or("")
                .contains("1 file(s) could not be read"),
            "{v}"
        );
        let log = log_of(&app, &w.alice.1, id).await;
        assert!(
            log.contains("could not read session1/movie_003.mrcs: truncated"),
            "{log}"
        );
        assert!(log.contains("imported 2 exposure(s)"), "{log}");
        let rows = sqlx::query_as::<_, (String, i64, i64, i64)>(
            "SELECT path, width, height, frames FROM exposures WHERE job_id = $1 ORDER BY path",
        )
        .bind(id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
        assert_eq!(
            rows,
            [
                ("session1/movie_001.mrcs".to_owned(), 64, 48, 12),
                ("session1/movie_002.tif".to_owned(), 32, 16, 40)
            ]
        );
        // Paths leaving the root are refused before anything runs.
        let (s, v) = app
        .post(
            "/api/v1/jobs",
            &w.alice.1,
            json!({ "project_id": project, "job_type": "import_movies", "params": { "path": "/etc/passwd" } }),
        )
        .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("path-absolute")),
            "{v}"
        );
        // The import policy holds at creation: managers only, then alice is refused.
        let (s, _) = app
            .patch(
                &format!("/api/v1/labs/{}", w.lab1),
                &w.admin,
                json!({ "import_policy": "managers" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app
        .post(
            "/api/v1/jobs",
            &w.alice.1,
            json!({ "project_id": project, "job_type": "import_movies", "params": { "path": "session1/*" } }),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }
);

/// A cluster script with custom variables at three levels, a read of lab2's file, and the job's
/// own command.
const CLUSTER_SCRIPT: &str = r#"#!/usr/bin/env bash
#SBATCH --job-name=cw_{{ project_uid }}_{{ job_uid }}
#SBATCH --output={{ job_log_path_abs }}
#SBATCH --error={{ job_log_path_abs }}
#SBATCH --cpus-per-task={{ num_cpu }}
#SBATCH --mem={{ ram_gb }}G
{%- if num_gpu > 0 %}
#SBATCH --gres=gpu:{{ num_gpu }}
{%- endif %}
echo site={{ site_var }} shared={{ shared_var }} mine={{ job_var }}
echo "running as uid $(id -u)"
cat {{ other_lab_file }} || echo "lab2's file stays closed"
{{ run_cmd }}
"#;

on_both_backends!(
    a_slurm_job_runs_as_the_labs_uid_with_inert_custom_variables,
    |app: TestApp| async move {
        let Some(_conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("cluster");
        let (s, v) = app
            .post(
                "/api/v1/clusters",
                &w.admin,
                json!({ "info": info, "script": CLUSTER_SCRIPT }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let target = v["targets"][0]["id"].as_i64().unwrap();
        let vars = json!({ "site_var": "from-instance", "shared_var": "from-instance", "job_var": "from-instance" });
        assert_eq!(
            app.call(
                Method::PUT,
                "/api/v1/custom-vars",
                Some(&w.admin),
                Some(vars)
            )
            .await
            .0,
            StatusCode::OK
        );
        let vars = json!({ "shared_var": "from-target", "job_var": "from-target" });
        let (s, v) = app
            .call(
                Method::PUT,
                &format!("/api/v1/targets/{target}/custom-vars"),
                Some(&w.admin),
                Some(vars),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let pwned = app.dir.path().join("PWNED");
        let injected = format!(
            "$(touch {0}) `touch {0}` ';touch {0};' \"\n touch {0}",
            pwned.display()
        );
        let secret = w.disk.raw2.join("secret.mrc");
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation", "num_gpu": 1 }),
        )
        .await;
        let custom = json!({ "job_var": injected, "other_lab_file": secret });
        let (s, v) = queue(
            &app,
            &w.alice.1,
            id,
            json!({ "lane": "cluster", "custom_vars": custom }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        assert!(
            v["cluster_job_id"].as_str().is_some_and(|c| !c.is_empty()),
            "{v}"
        );
        let log = log_of(&app, &w.alice.1, id).await;
        assert!(
            log.contains("site=from-instance shared=from-target mine=$(touch"),
            "job > target > instance: {log}"
        );
        assert!(log.contains("running as uid 2101"), "{log}");
        assert!(
            log.contains("Permission denied") && log.contains("lab2's file stays closed"),
            "the kernel refuses: {log}"
        );
        assert!(!log.contains("unpublished"), "{log}");
        let gpu_line = log
            .lines()
            .find(|l| l.starts_with("CUDA_VISIBLE_DEVICES="))
            .unwrap_or_default();
        assert!(
            matches!(
                gpu_line,
                "CUDA_VISIBLE_DEVICES=0" | "CUDA_VISIBLE_DEVICES=1"
            ),
            "SLURM's gres gave one GPU: {log}"
        );
        assert!(log.contains("validation passed"), "{log}");
        assert!(!pwned.exists(), "the injected commands never ran");
        let script = std::fs::read_to_string(
            std::path::Path::new(v["job_dir"].as_str().unwrap()).join("queue_sub_script.sh"),
        )
        .unwrap();
        assert!(script.contains("#SBATCH --gres=gpu:1"), "{script}");
    }
);

fn parent_pid(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn kill9(what: &str) {
    let out = std::process::Command::new("kill")
        .args(["-9", "--", what])
        .output()
        .unwrap();
    assert!(out.status.success(), "kill -9 {what}: {out:?}");
}

on_both_backends!(
    a_restart_reconciles_running_queued_dead_and_cluster_jobs,
    |mut app: TestApp| async move {
        let w = world(&app).await;
        let name = format!("restart{}", std::process::id());
        let project = create_project(&app, &w.alice.1, w.lab1, &name).await["id"]
            .as_i64()
            .unwrap();
        node_lane(&app, &w.admin, "two", 2, &[]).await;
        let nap = json!({ "name": "nap", "params": [{ "name": "seconds", "type": "int", "required": true }],
                      "argv": ["/bin/sleep", "{{ seconds }}"] });
        assert_eq!(
            app.call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(nap))
                .await
                .0,
            StatusCode::OK
        );
        let napping = |s: i64| json!({ "job_type": "command", "params": { "template": "nap", "values": { "seconds": s } } });
        let survivor = job(&app, &w.alice.1, project, napping(2)).await;
        let doomed = job(&app, &w.alice.1, project, napping(60)).await;
        let waiting = job(&app, &w.alice.1, project, napping(0)).await;
        for id in [survivor, doomed] {
            assert_eq!(
                queue(&app, &w.alice.1, id, json!({ "lane": "two" }))
                    .await
                    .0,
                StatusCode::OK
            );
            wait_job(&app, &w.alice.1, id, |v| v["status"] == "running").await;
        }
        assert_eq!(
            queue(&app, &w.alice.1, waiting, json!({ "lane": "two" }))
                .await
                .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, waiting, |v| {
            v["queue_state"] == "waiting_resources"
        })
        .await;
        assert!(
            v["queue_message"]
                .as_str()
                .unwrap_or("")
                .contains("lane two"),
            "{v}"
        );
        let slurm = common::slurm::slurm_conf().is_some();
        let mut cluster_job = None;
        if slurm {
            let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
            let mut info: Value = serde_json::from_str(&info).unwrap();
            info["name"] = json!("cluster");
            let (s, v) = app
                .post(
                    "/api/v1/clusters",
                    &w.admin,
                    json!({ "info": info, "script": CLUSTER_SCRIPT }),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let id = job(&app, &w.alice.1, project, napping(3)).await;
            let vars = json!({ "site_var": "s", "shared_var": "s", "job_var": "j", "other_lab_file": "/dev/null" });
            assert_eq!(
                queue(
                    &app,
                    &w.alice.1,
                    id,
                    json!({ "lane": "cluster", "custom_vars": vars })
                )
                .await
                .0,
                StatusCode::OK
            );
            let v = wait_job(&app, &w.alice.1, id, |v| v["status"] == "running").await;
            cluster_job = Some((id, v["cluster_job_id"].as_str().unwrap().to_owned()));
        }

        // The server dies; while it is down, the doomed job's process and its waiter die too.
        app.state.scheduler.halt();
        let (_, v) = app.get(&format!("/api/v1/jobs/{doomed}"), &w.alice.1).await;
        let pgid = v["pid"].as_i64().unwrap();
        let waiter = parent_pid(pgid).expect("the job's waiter");
        kill9(&waiter.to_string());
        kill9(&format!("-{pgid}"));
        app.restart().await;

        let v = wait_job(&app, &w.alice.1, doomed, terminal).await;
        assert_eq!(
            (v["status"].as_str(), v["failure"].as_str()),
            (
                Some("failed"),
                Some("the job's process ended while the server was down and left no exit status")
            ),
            "{v}"
        );
        let v = wait_job(&app, &w.alice.1, survivor, terminal).await;
        assert_eq!(
            v["status"].as_str(),
            Some("completed"),
            "a job running across the restart is followed to its end: {v}"
        );
        let v = wait_job(&app, &w.alice.1, waiting, terminal).await;
        assert_eq!(
            v["status"].as_str(),
            Some("completed"),
            "the queue survives: {v}"
        );
        if let Some((id, cluster_id)) = cluster_job {
            let v = wait_job(&app, &w.alice.1, id, terminal).await;
            assert_eq!(
                (v["status"].as_str(), v["cluster_job_id"].as_str()),
                (Some("completed"), Some(cluster_id.as_str())),
                "{v}"
            );
            let out = std::process::Command::new("squeue")
                .args([
                    "-h",
                    "-t",
                    "all",
                    "-o",
                    "%i",
                    "-n",
                    &format!("cw_{name}_{}", v["uid"].as_str().unwrap()),
                ])
                .output()
                .unwrap();
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            assert_eq!(
                ids,
                [cluster_id],
                "found again by its cluster job id, never submitted twice"
            );
        }
    }
);

on_both_backends!(
    maintenance_holds_launches_and_lets_them_go_after,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let on = json!({ "maintenance": { "active": true, "message": "upgrading" } });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, on).await.0,
            StatusCode::OK
        );
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        let (s, v) = queue(&app, &w.alice.1, id, json!({ "lane": "default" })).await;
        assert_eq!(
            (s, v["queue_state"].as_str()),
            (StatusCode::OK, Some("waiting_maintenance")),
            "{v}"
        );
        // The scheduler looks at the queue and still holds the job.
        app.state.scheduler.wake();
        let v = wait_job(&app, &w.alice.1, id, |v| {
            v["queue_message"]
                .as_str()
                .is_some_and(|m| m.contains("maintenance"))
        })
        .await;
        assert_eq!(v["status"].as_str(), Some("queued"), "{v}");
        let off = json!({ "maintenance": { "active": false, "message": "" } });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, off)
                .await
                .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
    }
);

on_both_backends!(
    many_jobs_queue_in_one_commit_all_or_none,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        node_lane(&app, &w.admin, "bulk", 1, &[]).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(
                job(
                    &app,
                    &w.alice.1,
                    project,
                    json!({ "job_type": "validation" }),
                )
                .await,
            );
        }
        // One job of another lab makes the whole request "not found", and nothing is queued.
        let other = create_project(&app, &w.bob.1, w.lab2, "other").await["id"]
            .as_i64()
            .unwrap();
        let foreign = job(&app, &w.bob.1, other, json!({ "job_type": "validation" })).await;
        let mut with_foreign = ids.clone();
        with_foreign.push(foreign);
        let (s, v) = app
            .post(
                "/api/v1/jobs/queue",
                &w.alice.1,
                json!({ "job_ids": ids, "lane": "bulk", "prio": 9 }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("prio")),
            "an unknown field: {v}"
        );
        let (s, _) = app
            .post(
                "/api/v1/jobs/queue",
                &w.alice.1,
                json!({ "job_ids": with_foreign, "lane": "bulk" }),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, v) = app
            .get(
                &format!("/api/v1/jobs?project={project}&status=queued"),
                &w.alice.1,
            )
            .await;
        assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
        // Launches wait (maintenance) while the order is read from the queue itself.
        let on = json!({ "maintenance": { "active": true, "message": "" } });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, on).await.0,
            StatusCode::OK
        );
        let (s, v) = app
            .post(
                "/api/v1/jobs/queue",
                &w.alice.1,
                json!({ "job_ids": ids, "lane": "bulk" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v.as_array().map(Vec::len), Some(5));
        let positions: Vec<Option<usize>> = ids
            .iter()
            .map(|id| app.state.scheduler.position(*id))
            .collect();
        assert_eq!(
            positions,
            [Some(0), Some(1), Some(2), Some(3), Some(4)],
            "queued in the order given"
        );
        let off = json!({ "maintenance": { "active": false, "message": "" } });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, off)
                .await
                .0,
            StatusCode::OK
        );
        for id in &ids {
            let v = wait_job(&app, &w.alice.1, *id, terminal).await;
            assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        }
    }
);

on_both_backends!(
    the_cli_connects_validates_and_runs_jobs,
    |app: TestApp| async move {
        let (w, _) = setup(&app).await;
        let dir = app.dir.path().join("cluster-files");
        std::fs::create_dir(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let (ok, _, err) = app
            .cli(&w.admin, &["cluster", "example", "slurm", "--dir", d])
            .await;
        assert!(ok, "{err}");
        let info = dir.join("cluster_info.json");
        let script = dir.join("cluster_script.sh");
        assert!(
            std::fs::read_to_string(&script)
                .unwrap()
                .contains("{{ run_cmd }}")
        );
        let (ok, v, err) = app
            .cli(
                &w.admin,
                &[
                    "cluster",
                    "connect",
                    "--info",
                    info.to_str().unwrap(),
                    "--script",
                    script.to_str().unwrap(),
                ],
            )
            .await;
        assert!(ok, "{err}");
        let lane = v["name"].as_str().unwrap().to_owned();
        let dumped = app.dir.path().join("dumped");
        std::fs::create_dir(&dumped).unwrap();
        let (ok, _, err) = app
            .cli(
                &w.admin,
                &["cluster", "dump", &lane, "--dir", dumped.to_str().unwrap()],
            )
            .await;
        assert!(ok, "{err}");
        assert_eq!(
            std::fs::read_to_string(dumped.join("cluster_script.sh")).unwrap(),
            std::fs::read_to_string(&script).unwrap()
        );
        // A job through the CLI on the local lane, its log followed to the end.
        let (ok, v, err) = app
            .cli(
                &w.alice.1,
                &["job", "create", "lab1/apoferritin", "validation"],
            )
            .await;
        assert!(ok, "{err}");
        let id = v["id"].to_string();
        let (ok, _, err) = app
            .cli(&w.alice.1, &["job", "queue", &id, "--lane", "default"])
            .await;
        assert!(ok, "{err}");
        let (ok, _, err) = app.cli(&w.alice.1, &["job", "log", &id, "--follow"]).await;
        assert!(ok, "{err}");
        let (ok, v, err) = app.cli(&w.alice.1, &["job", "show", &id]).await;
        assert!(ok && v["status"] == "completed", "{err} {v}");
        if common::slurm::slurm_conf().is_some() {
            let (ok, v, err) = app
                .cli(
                    &w.admin,
                    &[
                        "cluster",
                        "validate",
                        &lane,
                        "--project",
                        "lab1/apoferritin",
                    ],
                )
                .await;
            assert!(ok, "{err} {v}");
            assert_eq!(v["info"]["exit_code"], 0, "{v}");
            assert!(
                v["job"]["log"]
                    .as_str()
                    .unwrap()
                    .contains("account: cwlab1 uid=2101"),
                "{v}"
            );
            // Site validation: every lane alice may use.
            let (ok, v, err) = app
                .cli(
                    &w.alice.1,
                    &["lane", "validate", "--project", "lab1/apoferritin"],
                )
                .await;
            assert!(ok, "{err} {v}");
            let lanes: Vec<&str> = v["lanes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["lane"].as_str().unwrap())
                .collect();
            assert_eq!(lanes.len(), 2, "{v}");
        }
        let (ok, _, err) = app.cli(&w.admin, &["cluster", "remove", &lane]).await;
        assert!(ok, "{err}");
    }
);

on_both_backends!(
    a_cluster_job_caught_mid_submission_is_adopted_or_submitted_once,
    |mut app: TestApp| async move {
        if common::slurm::slurm_conf().is_none() {
            return;
        }
        let (w, project) = setup(&app).await;
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("cluster");
        let script =
            "#!/usr/bin/env bash\n#SBATCH --output={{ job_log_path_abs }}\n{{ run_cmd }}\n";
        let (s, v) = app
            .post(
                "/api/v1/clusters",
                &w.admin,
                json!({ "info": info, "script": script }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let lane = v["id"].as_i64().unwrap();
        let adopted = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        let pending = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        // The server stops just after marking both launched: one had reached sbatch, one had not.
        app.state.scheduler.halt();
        for (seq, id) in [(1, adopted), (2, pending)] {
            sqlx::query("UPDATE jobs SET status = 'launched', lane_id = $1, queued_seq = $2, priority = 0 WHERE id = $3")
            .bind(lane)
            .bind(seq)
            .bind(id)
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        }
        let (_, v) = app
            .get(&format!("/api/v1/jobs/{adopted}"), &w.alice.1)
            .await;
        let dir = v["job_dir"].as_str().unwrap().to_owned();
        let out = std::process::Command::new("runuser")
            .args([
                "-u",
                "cwlab1",
                "--",
                "sbatch",
                "--parsable",
                &format!("--chdir={dir}"),
                &format!("--output={dir}/job.log"),
            ])
            .args(["--wrap", "echo submitted before the crash"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let manual = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        app.restart().await;
        let v = wait_job(&app, &w.alice.1, adopted, terminal).await;
        assert_eq!(
            (v["status"].as_str(), v["cluster_job_id"].as_str()),
            (Some("completed"), Some(manual.as_str())),
            "{v}"
        );
        assert!(
            log_of(&app, &w.alice.1, adopted)
                .await
                .contains("submitted before the crash")
        );
        let v = wait_job(&app, &w.alice.1, pending, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        let pending_dir = v["job_dir"].as_str().unwrap().to_owned();
        let out = std::process::Command::new("squeue")
            .args(["-h", "-t", "all", "-u", "cwlab1", "-o", "%i|%Z"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout).to_string();
        let in_dir = |d: &str| {
            listing
                .lines()
                .filter(|l| l.split('|').nth(1) == Some(d))
                .count()
        };
        assert_eq!(
            (in_dir(&dir), in_dir(&pending_dir)),
            (1, 1),
            "each submitted exactly once: {listing}"
        );
    }
);

on_both_backends!(
    busy_gpus_warn_or_refuse_per_the_setting,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        node_lane(&app, &w.admin, "gpus", 4, &[0, 1]).await;
        let nap = json!({ "name": "nap", "params": [{ "name": "seconds", "type": "int", "required": true }],
                      "argv": ["/bin/sleep", "{{ seconds }}"], "num_gpu": 1 });
        assert_eq!(
            app.call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(nap))
                .await
                .0,
            StatusCode::OK
        );
        let on_gpu1 = json!({ "lane": "gpus", "target": "gpus-node", "gpu_ids": [1] });
        let holder = job(
        &app,
        &w.alice.1,
        project,
        json!({ "job_type": "command", "params": { "template": "nap", "values": { "seconds": 60 } } }),
    )
    .await;
        let (s, v) = queue(&app, &w.alice.1, holder, on_gpu1.clone()).await;
        assert_eq!((s, v.get("warnings")), (StatusCode::OK, None), "{v}");
        wait_job(&app, &w.alice.1, holder, |v| v["status"] == "running").await;
        let waiter = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation", "num_gpu": 1 }),
        )
        .await;
        let (s, v) = queue(&app, &w.alice.1, waiter, on_gpu1.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            v["warnings"][0]
                .as_str()
                .unwrap_or("")
                .contains("GPU(s) [1] of gpus-node are held"),
            "{v}"
        );
        let v = wait_job(&app, &w.alice.1, waiter, |v| {
            v["queue_state"] == "waiting_resources"
        })
        .await;
        assert!(v["queue_message"].as_str().unwrap().contains("[1]"), "{v}");
        let refuse = json!({ "refuse_busy_gpus": true });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, refuse)
                .await
                .0,
            StatusCode::OK
        );
        let third = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation", "num_gpu": 1 }),
        )
        .await;
        let (s, v) = queue(&app, &w.alice.1, third, on_gpu1).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("gpus-busy")),
            "{v}"
        );
        let (_, v) = app.get(&format!("/api/v1/jobs/{third}"), &w.alice.1).await;
        assert_eq!(
            v["status"].as_str(),
            Some("building"),
            "refused, nothing changed"
        );
        assert_eq!(
            app.post(
                &format!("/api/v1/jobs/{holder}/kill"),
                &w.alice.1,
                json!(null)
            )
            .await
            .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, waiter, terminal).await;
        assert_eq!(
            v["status"].as_str(),
            Some("completed"),
            "the GPU freed, the waiting job ran: {v}"
        );
        assert!(
            log_of(&app, &w.alice.1, waiter)
                .await
                .contains("CUDA_VISIBLE_DEVICES=1\n")
        );
    }
);

on_both_backends!(
    an_unreachable_controller_holds_submissions_until_it_answers,
    |app: TestApp| async move {
        let Some(conf) = common::slurm::slurm_conf() else {
            return;
        };
        let (w, project) = setup(&app).await;
        // A configuration naming a controller port where nothing listens: SLURM "is down" for the
        // commands of this lane only (the shared test cluster keeps running).
        let dead = app.dir.path().join("dead-slurm.conf");
        let text = std::fs::read_to_string(&conf)
            .unwrap()
            .replace("SlurmctldPort=6817", "SlurmctldPort=6999");
        std::fs::write(&dead, text).unwrap();
        let (info, _) = cryowarden_server::cluster::slurm::example_slurm();
        let mut info: Value = serde_json::from_str(&info).unwrap();
        info["name"] = json!("flaky");
        let healthy = info.clone();
        info["qsub_cmd_tpl"] = json!(format!(
            "env SLURM_CONF={} sbatch {{{{ script_path_abs }}}}",
            dead.display()
        ));
        let script =
            "#!/usr/bin/env bash\n#SBATCH --output={{ job_log_path_abs }}\n{{ run_cmd }}\n";
        let (s, v) = app
            .post(
                "/api/v1/clusters",
                &w.admin,
                json!({ "info": info, "script": script }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        assert_eq!(
            queue(&app, &w.alice.1, id, json!({ "lane": "flaky" }))
                .await
                .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, id, |v| {
            v["queue_state"] == "waiting_cluster"
        })
        .await;
        assert_eq!(
            v["status"].as_str(),
            Some("queued"),
            "back in the queue, nothing lost: {v}"
        );
        assert!(
            v["queue_message"]
                .as_str()
                .unwrap()
                .contains("not answering"),
            "the lane shows as unavailable: {v}"
        );
        assert!(v["cluster_job_id"].is_null());
        // The controller "returns": the next retry submits the job, once.
        let (s, v) = app
            .post(
                "/api/v1/clusters",
                &w.admin,
                json!({ "info": healthy, "script": script }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        let dir = v["job_dir"].as_str().unwrap().to_owned();
        let out = std::process::Command::new("squeue")
            .args(["-h", "-t", "all", "-u", "cwlab1", "-o", "%i|%Z"])
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

on_both_backends!(
    lane_queue_override_lets_imports_past_restrictions_and_requeues_wait_their_turn,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        node_lane(&app, &w.admin, "microscope", 1, &[]).await;
        let deny = json!({ "not_allowed": ["microscope"] });
        let path = format!("/api/v1/users/{}/lanes", w.alice.0);
        assert_eq!(
            app.call(Method::PUT, &path, Some(&w.admin), Some(deny))
                .await
                .0,
            StatusCode::OK
        );
        std::fs::write(w.disk.raw1.join("one.mrc"), mrc(16, 16, 1, 1.0)).unwrap();
        std::os::unix::fs::chown(w.disk.raw1.join("one.mrc"), Some(2101), Some(2101)).unwrap();
        let import = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "import_micrographs", "params": { "path": "one.mrc" } }),
        )
        .await;
        let validation = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        let (s, v) = queue(&app, &w.alice.1, import, json!({ "lane": "microscope" })).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("lane-not-allowed")),
            "override off: {v}"
        );
        let on = json!({ "lane_queue_override": true });
        assert_eq!(
            app.patch("/api/v1/settings/instance", &w.admin, on).await.0,
            StatusCode::OK
        );
        let (s, v) = queue(&app, &w.alice.1, import, json!({ "lane": "microscope" })).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "an import may go outside the allowed lanes: {v}"
        );
        let (s, _) = queue(
            &app,
            &w.alice.1,
            validation,
            json!({ "lane": "microscope" }),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "other jobs may not");
        assert_eq!(
            wait_job(&app, &w.alice.1, import, terminal).await["status"].as_str(),
            Some("completed")
        );

        // Re-queueing a finished job puts it behind the jobs already waiting at its priority.
        let nap = json!({ "name": "nap", "params": [{ "name": "seconds", "type": "float", "required": true }],
                      "argv": ["/bin/sleep", "{{ seconds }}"] });
        assert_eq!(
            app.call(Method::PUT, "/api/v1/commands", Some(&w.admin), Some(nap))
                .await
                .0,
            StatusCode::OK
        );
        node_lane(&app, &w.admin, "one", 1, &[]).await;
        let napping = |s: f64| json!({ "job_type": "command", "params": { "template": "nap", "values": { "seconds": s } } });
        let first = job(&app, &w.alice.1, project, napping(0.05)).await;
        assert_eq!(
            queue(&app, &w.alice.1, first, json!({ "lane": "one" }))
                .await
                .0,
            StatusCode::OK
        );
        wait_job(&app, &w.alice.1, first, terminal).await;
        let blocker = job(&app, &w.alice.1, project, napping(1.0)).await;
        assert_eq!(
            queue(&app, &w.alice.1, blocker, json!({ "lane": "one" }))
                .await
                .0,
            StatusCode::OK
        );
        wait_job(&app, &w.alice.1, blocker, |v| v["status"] == "running").await;
        let waiting = job(&app, &w.alice.1, project, napping(0.05)).await;
        assert_eq!(
            queue(&app, &w.alice.1, waiting, json!({ "lane": "one" }))
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            queue(&app, &w.alice.1, first, json!({ "lane": "one" }))
                .await
                .0,
            StatusCode::OK,
            "re-queue"
        );
        let a = wait_job(&app, &w.alice.1, waiting, terminal).await;
        let b = wait_job(&app, &w.alice.1, first, terminal).await;
        assert!(
            instant(a["launched_at"].as_str().unwrap())
                < instant(b["launched_at"].as_str().unwrap()),
            "the re-queued job did not jump the queue: {a} {b}"
        );
    }
);

// Issue 11, items 25 and 26: a bzip2 movie imported by a job; the CLI says "note" for a completed
// import's unreadable files, prints JSON for `job log --json`, describes cluster targets in
// `lane list`, and `lane add` is all or nothing.
on_both_backends!(
    bzip2_imports_and_the_cli_says_what_it_means,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let session = w.disk.raw1.join("compressed");
        std::fs::create_dir(&session).unwrap();
        std::fs::write(
            session.join("movie_001.mrc.bz2"),
            cryowarden_server::import::fixtures::bzip2(&mrc(64, 48, 12, 0.83)).unwrap(),
        )
        .unwrap();
        std::fs::write(session.join("movie_002.mrc.bz2"), b"BZh9 but nothing after").unwrap();
        let chown = std::process::Command::new("chown")
            .args(["-R", "cwlab1:cwlab1"])
            .arg(&session)
            .output()
            .unwrap();
        assert!(chown.status.success());
        let id = job(
        &app,
        &w.alice.1,
        project,
        json!({ "job_type": "import_movies", "params": { "path": "compressed/movie_*.mrc.bz2" } }),
    )
    .await;
        assert_eq!(
            queue(&app, &w.alice.1, id, json!({ "lane": "default" }))
                .await
                .0,
            StatusCode::OK
        );
        let v = wait_job(&app, &w.alice.1, id, terminal).await;
        assert_eq!(v["status"].as_str(), Some("completed"), "{v}");
        let rows = sqlx::query_as::<_, (String, i64, i64, i64)>(
            "SELECT path, width, height, frames FROM exposures WHERE job_id = $1 ORDER BY path",
        )
        .bind(id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
        assert_eq!(
            rows,
            [("compressed/movie_001.mrc.bz2".to_owned(), 64, 48, 12)]
        );
        let log = log_of(&app, &w.alice.1, id).await;
        assert!(
            log.contains("could not read compressed/movie_002.mrc.bz2: bzip2-damaged"),
            "{log}"
        );

        // `job show`: the completed import's unreadable file is a note, not a failure.
        let id_s = id.to_string();
        let (ok, text, err) = app.cli_text(&w.alice.1, &["job", "show", &id_s]).await;
        assert!(ok, "{err}");
        assert!(text.contains("note: 1 file(s) could not be read"), "{text}");
        assert!(!text.contains("failure:"), "{text}");
        // `job log --json`: JSON, one object a line, whose texts make the log.
        let (ok, text, err) = app
            .cli_text(&w.alice.1, &["job", "log", &id_s, "--json"])
            .await;
        assert!(ok, "{err}");
        let chunks: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(
            chunks
                .iter()
                .map(|c| c["text"].as_str().unwrap())
                .collect::<String>(),
            log
        );

        // `lane add` whose target name is taken: refused, and no lane is left behind.
        let (ok, _, err) = app
            .cli(
                &w.admin,
                &["lane", "add", "first", "--target", "gpu-node-7"],
            )
            .await;
        assert!(ok, "{err}");
        let (ok, _, err) = app
            .cli(
                &w.admin,
                &["lane", "add", "second", "--target", "gpu-node-7"],
            )
            .await;
        assert!(!ok && err.contains("409"), "{err}");
        let (_, lanes, _) = app.cli(&w.admin, &["lane", "list"]).await;
        let names: Vec<&str> = lanes
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"first") && !names.contains(&"second"),
            "{names:?}"
        );

        // `lane list` describes a cluster target by what it submits with, never "null".
        let (info, script) = cryowarden_server::cluster::slurm::example_slurm();
        let info: Value = serde_json::from_str(&info).unwrap();
        let (s, v) = app
            .post(
                "/api/v1/clusters",
                &w.admin,
                json!({ "info": info, "script": script }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (ok, text, err) = app.cli_text(&w.admin, &["lane", "list"]).await;
        assert!(ok, "{err}");
        assert!(!text.contains("null"), "{text}");
        assert!(text.contains("submits with: sbatch"), "{text}");
        assert!(text.contains("target gpu-node-7"), "{text}");
    }
);

/// The audit events matching `query`, newest first, as a Site Admin reads them.
async fn audit_events(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/api/v1/audit?{query}"), admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"].as_array().unwrap().clone()
}

/// A job as the database holds it: status, queue state, priority, lane.
async fn job_row(
    app: &TestApp,
    id: i64,
) -> (String, Option<String>, i64, Option<i64>, Option<i64>) {
    sqlx::query_as(
        "SELECT status, queue_state, priority, requested_priority, lane_id FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap()
}

// Issue 11, item 4: the lab's import policy is asked again when an import job is queued (queue,
// queue_many, and a re-queue after clear), not only when it was built.
on_both_backends!(
    the_import_policy_holds_at_queue_time_too,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        // carol (lab1 manager) edits alice's project.
        let (s, v) = app
            .post(
                &format!("/api/v1/projects/{project}/members"),
                &w.alice.1,
                json!({ "user_id": w.carol.0, "role": "editor" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let import =
            json!({ "job_type": "import_movies", "params": { "path": "nothing/here_*.mrc" } });
        let first = job(&app, &w.alice.1, project, import.clone()).await;
        let second = job(&app, &w.alice.1, project, import.clone()).await;
        let cleared = job(&app, &w.alice.1, project, import.clone()).await;
        let validation = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        // The third runs once while every member may import, and is cleared back to building.
        let (s, v) = queue(&app, &w.alice.1, cleared, json!({ "lane": "default" })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        wait_job(&app, &w.alice.1, cleared, terminal).await;
        let (s, v) = app
            .post(
                &format!("/api/v1/jobs/{cleared}/clear"),
                &w.alice.1,
                json!(null),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("building")),
            "{v}"
        );
        // Now only managers import.
        let (s, _) = app
            .patch(
                &format!("/api/v1/labs/{}", w.lab1),
                &w.admin,
                json!({ "import_policy": "managers" }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let rows = |ids: Vec<i64>| {
            let app = &app;
            async move {
                let mut out = Vec::new();
                for id in ids {
                    out.push(job_row(app, id).await);
                }
                out
            }
        };
        let all = vec![first, second, cleared, validation];
        let before = rows(all.clone()).await;
        for id in [first, cleared] {
            let denied = audit_events(
                &app,
                &w.admin,
                "action=import-data&outcome=denied&actor=alice",
            )
            .await
            .len();
            let (s, v) = queue(&app, &w.alice.1, id, json!({ "lane": "default" })).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "job {id}: {v}");
            assert!(
                v["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("managers"),
                "{v}"
            );
            let events = audit_events(
                &app,
                &w.admin,
                "action=import-data&outcome=denied&actor=alice",
            )
            .await;
            assert_eq!(
                events.len(),
                denied + 1,
                "the refusal is audited: {events:?}"
            );
            assert_eq!(events[0]["target_kind"], "job");
        }
        let (s, v) = app
            .post(
                "/api/v1/jobs/queue",
                &w.alice.1,
                json!({ "job_ids": [validation, second], "lane": "default" }),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "one import among the batch refuses it all: {v}"
        );
        assert_eq!(rows(all.clone()).await, before, "nothing was queued");
        // Someone outside the lab does not learn the job exists.
        let (s, v) = queue(&app, &w.bob.1, first, json!({ "lane": "default" })).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        // A manager may.
        let (s, v) = queue(&app, &w.carol.1, first, json!({ "lane": "default" })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
);

// Issue 11, item 4: every refused import path is a denied audit event, whether refused when the
// job is created (4xx, no job) or found by the import as the lab's account (the job fails with
// the reason, and the event is written).
on_both_backends!(
    refused_import_paths_are_audited_at_creation_and_at_run_time,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let jobs_before = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs")
            .fetch_one(&app.state.db.pool)
            .await;
        let jobs_before = jobs_before.unwrap();
        for (params, status, code) in [
            (
                json!({ "path": "/etc/passwd" }),
                StatusCode::BAD_REQUEST,
                "path-absolute",
            ),
            (
                json!({ "path": "raw\u{0}x.mrc" }),
                StatusCode::BAD_REQUEST,
                "path-nul-byte",
            ),
            (
                json!({ "path": "a\u{7}b.mrc" }),
                StatusCode::BAD_REQUEST,
                "path-control-character",
            ),
            (
                json!({ "root": "/etc", "path": "passwd" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
            ),
        ] {
            let seen = audit_events(
                &app,
                &w.admin,
                "action=import-data&outcome=denied&actor=alice",
            )
            .await
            .len();
            let body =
                json!({ "project_id": project, "job_type": "import_movies", "params": params });
            let (s, v) = app.post("/api/v1/jobs", &w.alice.1, body).await;
            assert_eq!(
                (s, v["code"].as_str()),
                (status, Some(code)),
                "{params}: {v}"
            );
            let events = audit_events(
                &app,
                &w.admin,
                "action=import-data&outcome=denied&actor=alice",
            )
            .await;
            assert_eq!(events.len(), seen + 1, "{params}: audited {events:?}");
            assert_eq!(events[0]["target_kind"], "project", "{:?}", events[0]);
        }
        let jobs_after = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs")
            .fetch_one(&app.state.db.pool)
            .await;
        assert_eq!(jobs_after.unwrap(), jobs_before, "no job was created");
        // Paths that only the kernel refuses, as cwlab1: `..` out of the root, a symlink to lab2's
        // file, a glob through a symlink to lab2's root.
        let leak = w.disk.raw1.join("leak.mrc");
        std::os::unix::fs::symlink("../lab2/secret.mrc", &leak).unwrap();
        std::os::unix::fs::lchown(&leak, Some(2101), Some(2101)).unwrap();
        for path in ["../lab2/secret.mrc", "leak.mrc", "escape-dir/*.mrc"] {
            let seen = audit_events(
                &app,
                &w.admin,
                "action=import-data&outcome=denied&actor=alice",
            )
            .await
            .len();
            let id = job(
                &app,
                &w.alice.1,
                project,
                json!({ "job_type": "import_movies", "params": { "path": path } }),
            )
            .await;
            let (s, v) = queue(&app, &w.alice.1, id, json!({ "lane": "default" })).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let v = wait_job(&app, &w.alice.1, id, terminal).await;
            assert_eq!(v["status"], "failed", "{path}: {v}");
            let failure = v["failure"].as_str().unwrap_or_default();
            assert!(
                failure.contains("refused") && failure.contains("path-escapes-root"),
                "{path}: {failure}; log: {}",
                log_of(&app, &w.alice.1, id).await
            );
            let events = audit_events(
                &app,
                &w.admin,
                "action=import-data&outcome=denied&actor=alice",
            )
            .await;
            assert_eq!(events.len(), seen + 1, "{path}: audited {events:?}");
            assert_eq!(
                (
                    events[0]["target_id"].as_str(),
                    events[0]["source"].as_str()
                ),
                (Some(id.to_string().as_str()), Some("scheduler"))
            );
            assert!(
                events[0]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("path-escapes-root"),
                "{:?}",
                events[0]
            );
        }
        let (s, v) = app.get("/api/v1/audit/verify", &w.admin).await;
        assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    }
);

// Issue 11, item 5: a priority out of 0..=100 is refused with 422 naming the field, and
// changes nothing, on every route that takes one.
on_both_backends!(
    a_priority_out_of_range_is_refused_not_clamped,
    |app: TestApp| async move {
        let (w, project) = setup(&app).await;
        let (s, v) = app
            .patch(
                &format!("/api/v1/users/{}", w.alice.0),
                &w.admin,
                json!({ "job_priority_management": true }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let id = job(
            &app,
            &w.alice.1,
            project,
            json!({ "job_type": "validation" }),
        )
        .await;
        let before = job_row(&app, id).await;
        for bad in [101, -1, i64::MAX] {
            let (s, v) = queue(
                &app,
                &w.alice.1,
                id,
                json!({ "lane": "default", "priority": bad }),
            )
            .await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("priority")),
                "{bad}: {v}"
            );
            let (s, v) = app
                .post(
                    "/api/v1/jobs/queue",
                    &w.alice.1,
                    json!({ "job_ids": [id], "lane": "default", "priority": bad }),
                )
                .await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("priority")),
                "{bad}: {v}"
            );
            assert_eq!(
                job_row(&app, id).await,
                before,
                "{bad}: the job is untouched"
            );
            // The user's own default and the instance default.
            let (s, v) = app
                .patch(
                    &format!("/api/v1/users/{}", w.alice.0),
                    &w.admin,
                    json!({ "default_job_priority": bad }),
                )
                .await;
            assert_eq!(
                (s, v["field"].as_str()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("default_job_priority")
                ),
                "{v}"
            );
            let (s, v) = app
                .patch(
                    "/api/v1/settings/instance",
                    &w.admin,
                    json!({ "default_job_priority": bad }),
                )
                .await;
            assert_eq!(
                (s, v["field"].as_str()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("default_job_priority")
                ),
                "{v}"
            );
        }
        let (_, v) = app
            .get(&format!("/api/v1/users/{}", w.alice.0), &w.admin)
            .await;
        assert!(v["default_job_priority"].is_null(), "{v}");
        let (_, v) = app.get("/api/v1/settings/instance", &w.admin).await;
        assert_eq!(v["default_job_priority"], 0, "{v}");
        // The bounds themselves are accepted.
        let (s, v) = queue(
            &app,
            &w.alice.1,
            id,
            json!({ "lane": "default", "priority": 100 }),
        )
        .await;
        assert_eq!(
            (s, v["priority"].as_i64()),
            (StatusCode::OK, Some(100)),
            "{v}"
        );
    }
);
