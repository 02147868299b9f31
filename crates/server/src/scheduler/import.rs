//! Import jobs: the path or glob is resolved beneath one of the lab's data roots and every file's
//! header read, as the lab's Unix account (through the runner: a glob, then batched reads); each
//! file becomes an exposure of the project. A damaged file is reported by name in the job's log
//! and does not stop the others. The exposures commit with the job's end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cryowarden_core::jobs::JobStatus;

use super::{finish, running};
use crate::db::now_ms;
use crate::error::StoreError;
use crate::import::read_headers;
use crate::jobs::Job;
use crate::services::Services;

/// Most files one import reads.
pub const MAX_FILES: usize = 100_000;

pub async fn run(state: Arc<Services>, job: Job) {
    let result = import(&state, &job).await;
    let ended = match result {
        Err(Refused(reason)) => finish(&state, &job, JobStatus::Failed, Some(&reason)).await,
        Ok(Imported {
            imported: 0,
            damaged: _,
            refused: Some(reason),
        }) => finish(&state, &job, JobStatus::Failed, Some(&reason)).await,
        Ok(Imported {
            imported, damaged, ..
        }) if imported > 0 || damaged == 0 => {
            let note = (damaged > 0)
                .then(|| format!("{damaged} file(s) could not be read: see the job's log"));
            finish(&state, &job, JobStatus::Completed, note.as_deref()).await
        }
        Ok(Imported { damaged, .. }) => {
            finish(
                &state,
                &job,
                JobStatus::Failed,
                Some(&format!(
                    "none of the {damaged} file(s) could be read: see the job's log"
                )),
            )
            .await
        }
        Err(Failed(e)) => finish(&state, &job, JobStatus::Failed, Some(&e.to_string())).await,
    };
    if let Err(e) = ended {
        tracing::error!(target: "scheduler", job = job.id, error = %e, "cannot record the import's end");
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// What an import did.
struct Imported {
    imported: usize,
    /// Files that could not be read (refused ones included).
    damaged: usize,
    /// Why the first refused path was refused, when one was (recorded as a denied event).
    refused: Option<String>,
}

/// Why an import stopped.
enum Stopped {
    /// The path was refused for what it is or where it leads (recorded as a denied event).
    Refused(String),
    Failed(StoreError),
}
use Stopped::{Failed, Refused};

impl From<StoreError> for Stopped {
    fn from(e: StoreError) -> Self {
        Failed(e)
    }
}

impl From<sqlx::Error> for Stopped {
    fn from(e: sqlx::Error) -> Self {
        Failed(e.into())
    }
}

/// Records paths of `job` refused for what they are or where they lead (an escape from the
/// root, an absolute path, the kernel refusing the lab's account) as one denied `import-data`
/// event of the job's creator, as browsing records its refusals.
async fn record_refusal(state: &Services, job: &Job, refused: &[(String, String)], reason: &str) {
    let paths: Vec<String> = refused
        .iter()
        .take(20)
        .map(|(p, _)| crate::projects::data::shown_path(p))
        .collect();
    let event = crate::audit::NewEvent {
        actor: crate::audit::Who {
            id: job.creator_id,
            name: job
                .creator
                .clone()
                .unwrap_or_else(|| "(deleted user)".to_owned()),
        },
        impersonator: None,
        action: cryowarden_core::DataAction::ImportData.as_str().to_owned(),
        target_kind: "job",
        target_id: Some(job.id.to_string()),
        target: job.audit_target().name,
        outcome: crate::audit::Outcome::Denied,
        reason: Some(reason.to_owned()),
        before: None,
        after: Some(serde_json::json!({ "paths": paths, "refused": refused.len() })),
        source: "scheduler".to_owned(),
    };
    if let Err(e) = crate::audit::record(&state.db, event).await {
        tracing::error!(target: "scheduler", job = job.id, error = %e, "cannot record a refused import path");
    }
}

/// Runs the import.
async fn import(state: &Services, job: &Job) -> Result<Imported, Stopped> {
    running(state, job, None, None).await?;
    let lab = crate::labs::get(&state.db, job.lab_id).await?;
    let account = crate::projects::lab_account(&lab)?;
    let root = match job.params["root"].as_str() {
        Some(r) if lab.data_roots.iter().any(|d| d == r) => r.to_owned(),
        Some(_) => {
            return Err(Failed(StoreError::invalid(
                "params",
                "`root` is no longer one of the lab's data roots",
            )));
        }
        None => lab
            .data_roots
            .first()
            .cloned()
            .ok_or_else(|| StoreError::invalid("params", "the lab has no data roots"))?,
    };
    let root = PathBuf::from(root);
    let pattern = job.params["path"].as_str().unwrap_or_default().to_owned();
    let started = std::time::Instant::now();
    let paths = if is_glob(&pattern) {
        let found = match state
            .runner
            .glob(&account, &root, &pattern, MAX_FILES)
            .await
        {
            Err(crate::runner::RunnerError::Refused { code, message })
                if crate::projects::data::is_refusal(&code) =>
            {
                let reason = format!(
                    "the import path `{}` was refused: {message} ({code})",
                    crate::projects::data::shown_path(&pattern)
                );
                record_refusal(state, job, &[(pattern.clone(), code)], &reason).await;
                return Err(Refused(reason));
            }
            other => other.map_err(StoreError::from)?,
        };
        if found.total > found.paths.len() {
            return Err(Failed(StoreError::invalid(
                "params",
                format!(
                    "`{pattern}` matches {} files, more than the {MAX_FILES} one import reads: split it",
                    found.total
                ),
            )));
        }
        found.paths
    } else {
        vec![pattern.clone()]
    };
    let headers = read_headers(&state.runner, &account, &root, &paths).await;
    let mut log = format!(
        "importing {} file(s) matching {pattern} beneath {}\n",
        paths.len(),
        root.display()
    );
    let now = now_ms();
    let mut rows = Vec::new();
    let mut damaged = 0;
    let mut refused = Vec::new();
    let mut refused_reason = None;
    for (path, header) in &headers {
        match header {
            Ok(h) => rows.push((path, h)),
            Err(e) => {
                damaged += 1;
                log.push_str(&format!("could not read {path}: {} ({e})\n", e.code()));
                if crate::projects::data::is_refusal(e.code()) {
                    refused_reason.get_or_insert_with(|| {
                        format!(
                            "the import path `{}` was refused: {e} ({})",
                            crate::projects::data::shown_path(path),
                            e.code()
                        )
                    });
                    refused.push((path.clone(), e.code().to_owned()));
                }
            }
        }
    }
    if let Some(reason) = &refused_reason {
        record_refusal(state, job, &refused, reason).await;
    }
    let mut tx = state.db.begin_write().await?;
    sqlx::query("DELETE FROM exposures WHERE job_id = $1")
        .bind(job.id)
        .execute(&mut *tx.tx)
        .await?;
    for chunk in rows.chunks(200) {
        let mut sql = String::from(
            "INSERT INTO exposures (job_id, project_id, path, format, width, height, frames, mode, pixel_size_a, created_at) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            let b = i * 7;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "({}, {}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, {now})",
                job.id,
                job.project_id,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        let mut q = sqlx::query(&sql);
        for (path, h) in chunk {
            q = q
                .bind((*path).clone())
                .bind(h.format.as_str())
                .bind(i64::from(h.width))
                .bind(i64::from(h.height))
                .bind(i64::from(h.frames))
                .bind(h.mode.clone())
                .bind(h.pixel_size_a);
        }
        q.execute(&mut *tx.tx).await?;
    }
    tx.commit().await?;
    log.push_str(&format!(
        "imported {} exposure(s), {damaged} file(s) could not be read, in {:.2} s\n",
        rows.len(),
        started.elapsed().as_secs_f64()
    ));
    append_log(state, job, &account, &log).await;
    Ok(Imported {
        imported: rows.len(),
        damaged,
        refused: refused_reason,
    })
}

/// Appends text to the job's log, as the lab's account.
pub(crate) async fn append_log(
    state: &Services,
    job: &Job,
    account: &crate::runner::Account,
    text: &str,
) {
    let argv = vec![
        "/usr/bin/tee".to_owned(),
        "-a".to_owned(),
        super::node::LOG.to_owned(),
    ];
    let dir = PathBuf::from(&job.job_dir);
    match state
        .runner
        .run_command(
            account,
            &argv,
            &dir,
            &[],
            Some(text),
            Duration::from_secs(30),
        )
        .await
    {
        Ok(out) if out.exit_code == Some(0) => {}
        Ok(out) => {
            tracing::warn!(target: "scheduler", job = job.id, stderr = %out.stderr, "cannot write the job's log");
        }
        Err(e) => {
            tracing::warn!(target: "scheduler", job = job.id, error = %e, "cannot write the job's log");
        }
    }
}
