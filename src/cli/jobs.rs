//! `cryowarden lane ...` and `cryowarden job ...`: lanes and jobs over the REST API, with
//! CryoSPARC's verbs. A project is named by id or LAB/NAME, a job by its id.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::Remote;
use super::remote::{Client, emit, s};

#[derive(Subcommand)]
pub enum LaneCommand {
    /// The lanes you may queue to, with their targets.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Add a node lane with one target (admins).
    Add {
        #[command(flatten)]
        remote: Remote,
        name: String,
        #[arg(long)]
        title: Option<String>,
        /// The target's name (and hostname).
        #[arg(long, default_value = "localhost")]
        target: String,
        #[arg(long, default_value_t = 1)]
        cpus: u32,
        #[arg(long, default_value_t = 1)]
        ram_gb: u32,
        /// GPU ids of the target (repeat).
        #[arg(long = "gpu")]
        gpus: Vec<u32>,
    },
    /// Remove a lane (admins).
    Remove {
        #[command(flatten)]
        remote: Remote,
        lane: String,
    },
    /// Site validation: a validation job on every lane you may use, in a project of yours.
    Validate {
        #[command(flatten)]
        remote: Remote,
        /// The project the validation jobs run in (id or LAB/NAME).
        #[arg(long)]
        project: String,
    },
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// Create a job in a project (status building).
    Create {
        #[command(flatten)]
        remote: Remote,
        /// Id or LAB/NAME.
        project: String,
        /// import_movies, import_micrographs, command or validation.
        job_type: String,
        /// The job's parameters as JSON, e.g. '{"path": "session1/*.tif"}'.
        #[arg(long, default_value = "{}")]
        params: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        gpus: Option<i64>,
    },
    /// Queue a job to a lane.
    Queue {
        #[command(flatten)]
        remote: Remote,
        job: i64,
        #[arg(long)]
        lane: String,
        #[arg(long)]
        target: Option<String>,
        /// GPU ids on the target (repeat).
        #[arg(long = "gpu")]
        gpu_ids: Vec<u32>,
        #[arg(long)]
        priority: Option<i64>,
        /// A custom variable for cluster templates, NAME=VALUE (repeat).
        #[arg(long = "var")]
        vars: Vec<String>,
    },
    /// Kill a queued, launched or running job.
    Kill {
        #[command(flatten)]
        remote: Remote,
        job: i64,
    },
    /// Take a finished job back to building (its priority is reset).
    Clear {
        #[command(flatten)]
        remote: Remote,
        job: i64,
    },
    /// A project's jobs, or the instance's current jobs (admins).
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        project: Option<String>,
        /// e.g. queued,launched,running
        #[arg(long)]
        status: Option<String>,
    },
    /// One job.
    Show {
        #[command(flatten)]
        remote: Remote,
        job: i64,
    },
    /// A job's log; --follow keeps printing until the job ends.
    Log {
        #[command(flatten)]
        remote: Remote,
        job: i64,
        #[arg(long, short)]
        follow: bool,
    },
}

fn print_lane(l: &Value) {
    println!(
        "{:>4}  {:<20} {:<8} {}",
        l["id"],
        s(&l["name"]),
        s(&l["kind"]),
        s(&l["title"])
    );
    for t in l["targets"].as_array().into_iter().flatten() {
        let c = &t["config"];
        if t["kind"] == "cluster" {
            // A cluster target has no slots of its own: what it submits with says more.
            let title = c["title"].as_str().filter(|title| *title != s(&t["name"]));
            println!(
                "        cluster {:<15} {}submits with: {}",
                s(&t["name"]),
                title.map(|title| format!("({title}) ")).unwrap_or_default(),
                c["qsub_cmd_tpl"]
                    .as_str()
                    .unwrap_or("sbatch {{ script_path_abs }}")
            );
            continue;
        }
        let gpus: Vec<String> = c["gpus"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| g["id"].to_string())
            .collect();
        println!(
            "        target {:<16} cpus {} ram {} GB gpus [{}]",
            s(&t["name"]),
            c["cpus"],
            c["ram_gb"],
            gpus.join(",")
        );
    }
}

fn print_job(j: &Value) {
    println!(
        "{:>6}  {:<18} {:<5} {:<18} {:<10} prio {:>3}  {:<10} {}",
        j["id"],
        s(&j["project"]),
        s(&j["uid"]),
        s(&j["job_type"]),
        s(&j["status"]),
        j["priority"],
        s(&j["lane"]),
        s(&j["queue_message"]).trim_start_matches("null")
    );
}

pub async fn lane(cmd: LaneCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LaneCommand::List { remote } => {
            let c = Client::new(&remote)?;
            let v = c.send(Method::GET, "/api/v1/lanes", None).await?;
            emit(c.json, &v, |v| {
                v.as_array().into_iter().flatten().for_each(print_lane);
            });
        }
        LaneCommand::Add {
            remote,
            name,
            title,
            target,
            cpus,
            ram_gb,
            gpus,
        } => {
            let c = Client::new(&remote)?;
            // The lane and its first target in one request: all or nothing.
            let gpus: Vec<Value> = gpus.iter().map(|g| json!({ "id": g })).collect();
            let target = json!({ "name": target, "cpus": cpus, "ram_gb": ram_gb, "gpus": gpus });
            let body = json!({ "name": name, "title": title, "kind": "node", "targets": [target] });
            let v = c.send(Method::POST, "/api/v1/lanes", Some(body)).await?;
            emit(c.json, &v, print_lane);
        }
        LaneCommand::Validate { remote, project } => {
            let c = Client::new(&remote)?;
            let lanes = c.send(Method::GET, "/api/v1/lanes", None).await?;
            let mut results = Vec::new();
            let mut all_ok = true;
            for lane in lanes.as_array().into_iter().flatten() {
                let name = s(&lane["name"]);
                let (job, ok) = validation_job(&c, &project, &name).await?;
                all_ok &= ok;
                results.push(json!({ "lane": name, "ok": ok, "job": job }));
            }
            let report = json!({ "lanes": results, "ok": all_ok });
            emit(c.json, &report, |r| {
                for l in r["lanes"].as_array().into_iter().flatten() {
                    println!(
                        "{:<20} {}",
                        s(&l["lane"]),
                        if l["ok"] == true {
                            "valid"
                        } else {
                            "NOT valid"
                        }
                    );
                }
            });
            if !all_ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        LaneCommand::Remove { remote, lane } => {
            let c = Client::new(&remote)?;
            let lanes = c.send(Method::GET, "/api/v1/lanes", None).await?;
            let id = lanes
                .as_array()
                .and_then(|ls| {
                    ls.iter().find(|l| {
                        l["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&lane))
                            || l["id"] == lane
                    })
                })
                .map(|l| l["id"].clone())
                .ok_or_else(|| anyhow::anyhow!("no lane {lane} that you can see"))?;
            c.send(Method::DELETE, &format!("/api/v1/lanes/{id}"), None)
                .await?;
            emit(c.json, &json!({ "removed": id }), |_| {
                println!("removed lane {lane}");
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn job(cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Create {
            remote,
            project,
            job_type,
            params,
            title,
            gpus,
        } => {
            let c = Client::new(&remote)?;
            let project_id = c.project_id(&project).await?;
            let params: Value = serde_json::from_str(&params)
                .map_err(|e| anyhow::anyhow!("--params is not JSON: {e}"))?;
            let body = json!({ "project_id": project_id, "job_type": job_type, "params": params, "title": title, "num_gpu": gpus });
            let v = c.send(Method::POST, "/api/v1/jobs", Some(body)).await?;
            emit(c.json, &v, |v| {
                println!(
                    "created {} (id {}) in {}",
                    s(&v["uid"]),
                    v["id"],
                    s(&v["project"])
                );
            });
        }
        JobCommand::Queue {
            remote,
            job,
            lane,
            target,
            gpu_ids,
            priority,
            vars,
        } => {
            let c = Client::new(&remote)?;
            let mut custom = serde_json::Map::new();
            for v in vars {
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--var takes NAME=VALUE, got {v}"))?;
                custom.insert(k.to_owned(), json!(val));
            }
            let gpu_ids = (!gpu_ids.is_empty()).then_some(gpu_ids);
            let body = json!({ "lane": lane, "target": target, "gpu_ids": gpu_ids, "priority": priority, "custom_vars": custom });
            let v = c
                .send(
                    Method::POST,
                    &format!("/api/v1/jobs/{job}/queue"),
                    Some(body),
                )
                .await?;
            emit(c.json, &v, |v| {
                println!(
                    "{} queued on {} with priority {}",
                    s(&v["uid"]),
                    s(&v["lane"]),
                    v["priority"]
                );
            });
        }
        JobCommand::Kill { remote, job } => {
            let c = Client::new(&remote)?;
            let v = c
                .send(Method::POST, &format!("/api/v1/jobs/{job}/kill"), None)
                .await?;
            emit(c.json, &v, |v| {
                println!("{}: {}", s(&v["uid"]), s(&v["status"]));
            });
        }
        JobCommand::Clear { remote, job } => {
            let c = Client::new(&remote)?;
            let v = c
                .send(Method::POST, &format!("/api/v1/jobs/{job}/clear"), None)
                .await?;
            emit(c.json, &v, |v| {
                println!("{}: {}", s(&v["uid"]), s(&v["status"]));
            });
        }
        JobCommand::List {
            remote,
            project,
            status,
        } => {
            let c = Client::new(&remote)?;
            let mut url = "/api/v1/jobs?limit=1000".to_owned();
            if let Some(p) = project {
                url.push_str(&format!("&project={}", c.project_id(&p).await?));
            }
            if let Some(st) = status {
                url.push_str(&format!("&status={st}"));
            }
            let v = c.send(Method::GET, &url, None).await?;
            emit(c.json, &v, |v| {
                v.as_array().into_iter().flatten().for_each(print_job);
            });
        }
        JobCommand::Show { remote, job } => {
            let c = Client::new(&remote)?;
            let v = c
                .send(Method::GET, &format!("/api/v1/jobs/{job}"), None)
                .await?;
            emit(c.json, &v, |v| {
                print_job(v);
                println!("        dir {}", s(&v["job_dir"]));
                if !v["failure"].is_null() {
                    // A completed job's note (an import's unreadable files) is not a failure.
                    let label = if v["status"] == "completed" {
                        "note"
                    } else {
                        "failure"
                    };
                    println!("        {label}: {}", s(&v["failure"]));
                }
            });
        }
        JobCommand::Log {
            remote,
            job,
            follow,
        } => {
            let c = Client::new(&remote)?;
            let mut offset = 0u64;
            loop {
                let chunk = c
                    .send(
                        Method::GET,
                        &format!("/api/v1/jobs/{job}/log?offset={offset}"),
                        None,
                    )
                    .await?;
                let text = chunk["text"].as_str().unwrap_or("");
                if c.json {
                    // One JSON object a line ({text, offset, next_offset}), also when following.
                    if !text.is_empty() || !follow {
                        println!("{}", serde_json::to_string(&chunk).unwrap_or_default());
                    }
                } else {
                    print!("{text}");
                }
                offset = chunk["next_offset"].as_u64().unwrap_or(offset);
                if !follow {
                    break;
                }
                if text.is_empty() {
                    let j = c
                        .send(Method::GET, &format!("/api/v1/jobs/{job}"), None)
                        .await?;
                    if matches!(
                        j["status"].as_str(),
                        Some("completed" | "failed" | "killed" | "building")
                    ) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Write an example cluster_info.json and cluster_script.sh (CryoSPARC's format) here.
    Example {
        /// The scheduler: slurm.
        kind: String,
        /// Directory to write into.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        /// Print the paths written as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add or update a cluster target from cluster_info.json and cluster_script.sh.
    Connect {
        #[command(flatten)]
        remote: Remote,
        #[arg(long, default_value = "cluster_info.json")]
        info: std::path::PathBuf,
        #[arg(long, default_value = "cluster_script.sh")]
        script: std::path::PathBuf,
    },
    /// Write a cluster target's cluster_info.json and cluster_script.sh here.
    Dump {
        #[command(flatten)]
        remote: Remote,
        name: String,
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Run the cluster's info command and a validation job on it, both as the Unix account of the
    /// project's lab (the job writes and reads in its directory, reports GPUs and timing).
    Validate {
        #[command(flatten)]
        remote: Remote,
        name: String,
        /// The project (id or LAB/NAME) whose lab's account runs the commands and the job.
        #[arg(long)]
        project: String,
    },
    /// Remove a cluster target and its lane.
    Remove {
        #[command(flatten)]
        remote: Remote,
        name: String,
    },
}

async fn find_lane(c: &Client, name: &str) -> anyhow::Result<Value> {
    let lanes = c.send(Method::GET, "/api/v1/lanes", None).await?;
    lanes
        .as_array()
        .and_then(|ls| {
            ls.iter()
                .find(|l| {
                    l["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .cloned()
        })
        .ok_or_else(|| anyhow::anyhow!("no lane {name} that you can see"))
}

/// Creates a validation job in `project`, queues it on `lane` and follows it to its end: the
/// job (with its log) and whether it completed.
async fn validation_job(c: &Client, project: &str, lane: &str) -> anyhow::Result<(Value, bool)> {
    let project_id = c.project_id(project).await?;
    let body = json!({ "project_id": project_id, "job_type": "validation", "title": format!("validation of {lane}") });
    let job = c.send(Method::POST, "/api/v1/jobs", Some(body)).await?;
    let id = job["id"].clone();
    c.send(
        Method::POST,
        &format!("/api/v1/jobs/{id}/queue"),
        Some(json!({ "lane": lane })),
    )
    .await?;
    let started = std::time::Instant::now();
    loop {
        let j = c
            .send(Method::GET, &format!("/api/v1/jobs/{id}"), None)
            .await?;
        if matches!(
            j["status"].as_str(),
            Some("completed" | "failed" | "killed")
        ) {
            let log = c
                .send(Method::GET, &format!("/api/v1/jobs/{id}/log"), None)
                .await?;
            if !c.json {
                println!(
                    "{} on {lane}: {}\n{}",
                    s(&j["uid"]),
                    s(&j["status"]),
                    log["text"].as_str().unwrap_or("")
                );
            }
            let ok = j["status"] == "completed";
            let mut j = j;
            j["log"] = log["text"].clone();
            return Ok((j, ok));
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!(
                "the validation job {} did not end within 10 minutes: see `cryowarden job show {id}`",
                s(&j["uid"])
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn cluster(cmd: ClusterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Example { kind, dir, json } => {
            if kind != "slurm" {
                anyhow::bail!("only `slurm` has an example (got {kind})");
            }
            let (info, script) = cryowarden_server::cluster::slurm::example_slurm();
            std::fs::write(dir.join("cluster_info.json"), info)?;
            std::fs::write(dir.join("cluster_script.sh"), script)?;
            let written = json!({ "info": dir.join("cluster_info.json"), "script": dir.join("cluster_script.sh") });
            emit(json, &written, |_| {
                println!(
                    "wrote cluster_info.json and cluster_script.sh in {}",
                    dir.display()
                );
            });
        }
        ClusterCommand::Connect {
            remote,
            info,
            script,
        } => {
            let c = Client::new(&remote)?;
            let info_text = std::fs::read_to_string(&info)
                .map_err(|e| anyhow::anyhow!("{}: {e}", info.display()))?;
            let info_json: Value = serde_json::from_str(&info_text)
                .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", info.display()))?;
            let script = std::fs::read_to_string(&script)
                .map_err(|e| anyhow::anyhow!("{}: {e}", script.display()))?;
            let v = c
                .send(
                    Method::POST,
                    "/api/v1/clusters",
                    Some(json!({ "info": info_json, "script": script })),
                )
                .await?;
            for warning in v["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", warning.as_str().unwrap_or_default());
            }
            emit(c.json, &v, |v| {
                println!("cluster lane {} ready", s(&v["name"]));
            });
        }
        ClusterCommand::Dump { remote, name, dir } => {
            let c = Client::new(&remote)?;
            let lane = find_lane(&c, &name).await?;
            let target = lane["targets"]
                .as_array()
                .and_then(|t| t.first())
                .cloned()
                .unwrap_or(Value::Null);
            if lane["kind"] != "cluster" || target.is_null() {
                anyhow::bail!("{name} is not a cluster lane");
            }
            std::fs::write(
                dir.join("cluster_info.json"),
                serde_json::to_string_pretty(&target["config"])?,
            )?;
            std::fs::write(
                dir.join("cluster_script.sh"),
                target["script"].as_str().unwrap_or(""),
            )?;
            emit(c.json, &target, |_| {
                println!(
                    "wrote cluster_info.json and cluster_script.sh of {name} in {}",
                    dir.display()
                );
            });
        }
        ClusterCommand::Validate {
            remote,
            name,
            project,
        } => {
            let c = Client::new(&remote)?;
            let lane = find_lane(&c, &name).await?;
            let project_id = c.project_id(&project).await?;
            let path = format!(
                "/api/v1/lanes/{}/cluster-info?project={project_id}",
                lane["id"]
            );
            let info = c.send(Method::POST, &path, None).await?;
            if !c.json {
                println!(
                    "$ {}\n{}{}",
                    s(&info["command"]),
                    info["stdout"].as_str().unwrap_or(""),
                    info["stderr"].as_str().unwrap_or("")
                );
            }
            let mut report = json!({ "info": info });
            let info_ok = info["exit_code"] == 0;
            let (job, job_ok) = validation_job(&c, &project, &name).await?;
            report["job"] = job;
            emit(c.json, &report, |_| {
                println!(
                    "{name}: {}",
                    if info_ok && job_ok {
                        "valid"
                    } else {
                        "NOT valid"
                    }
                );
            });
            if !(info_ok && job_ok) {
                return Ok(ExitCode::FAILURE);
            }
        }
        ClusterCommand::Remove { remote, name } => {
            let c = Client::new(&remote)?;
            let lane = find_lane(&c, &name).await?;
            c.send(
                Method::DELETE,
                &format!("/api/v1/lanes/{}", lane["id"]),
                None,
            )
            .await?;
            emit(c.json, &json!({ "removed": lane["id"] }), |_| {
                println!("removed cluster {name}");
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
