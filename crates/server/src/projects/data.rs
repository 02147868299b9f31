//! A project's files: browsing them, and live data management (archive in place, delete). Every
//! file operation runs through the runner as the lab's Unix account, so the kernel refuses what
//! the account may not touch whatever the checks above it decided.

use cryowarden_core::Event;
use std::path::Path;

use cryowarden_core::DataAction;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Project, ProjectStatus, access, lab_account};
use crate::context::Ctx;
use crate::db::{Db, now_ms};
use crate::error::StoreError;
use crate::labs;
use crate::paths::Listing;
use crate::runner::{Runner, RunnerError, TreeCounts};

/// Paging of a directory listing.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    /// A path relative to the root; empty for the root itself.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub offset: Option<usize>,
    /// Entries per page, 1..=1000 (default 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Lists a directory of the project's files.
pub async fn browse(
    db: &Db,
    runner: &Runner,
    ctx: &Ctx,
    id: i64,
    q: &BrowseQuery,
) -> Result<Listing, StoreError> {
    let (project, _, _) = access(db, ctx, id, DataAction::ViewProject).await?;
    if project.status == ProjectStatus::DataDeleted {
        return Err(StoreError::InUse {
            field: "project",
            message: "the project's data was deleted".into(),
        });
    }
    let lab = labs::get(db, project.lab_id).await?;
    let account = lab_account(&lab)?;
    let result = runner
        .list(
            &account,
            &project.dir(),
            &q.path,
            q.offset.unwrap_or(0),
            q.limit.unwrap_or(200),
        )
        .await;
    audit_refusal(
        db,
        ctx,
        Event::BrowseProjectFiles,
        &project.audit_target(),
        &q.path,
        &result,
    )
    .await?;
    Ok(result?)
}

/// Whether a path code (the runner's or `cryowarden-paths`') is a refusal for what the path is
/// or where it leads, or the kernel refusing the lab's account: an attempt worth an audit event;
/// an absent file is not.
pub(crate) fn is_refusal(code: &str) -> bool {
    const REFUSALS: &[&str] = &[
        "path-absolute",
        "path-nul-byte",
        "path-invalid-utf8",
        "path-too-long",
        "path-component-too-long",
        "path-control-character",
        "path-escapes-root",
        "path-symlink-loop",
        "path-symlink-refused",
        "path-permission-denied",
        "permission-denied",
    ];
    REFUSALS.contains(&code)
}

/// A path as an audit event shows it: no control characters, at most 300 characters.
pub(crate) fn shown_path(path: &str) -> String {
    path.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// Records a path the runner refused as a denied attempt in the audit chain.
pub(crate) async fn audit_refusal<T>(
    db: &Db,
    ctx: &Ctx,
    action: Event,
    target: &crate::context::Target,
    path: &str,
    result: &Result<T, RunnerError>,
) -> Result<(), StoreError> {
    if let Err(RunnerError::Refused { code, message }) = result
        && is_refusal(code)
    {
        let shown = shown_path(path);
        ctx.record(
            db,
            action,
            target,
            crate::audit::Outcome::Denied,
            Some(format!("{code}: {message}")),
            None,
            Some(json!({ "path": shown })),
        )
        .await?;
    }
    Ok(())
}

/// What archiving or deleting a project's data did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DataChange {
    pub project: Project,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

/// Deleting data needs the project's name typed back.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmDelete {
    /// The project's name, exactly.
    pub confirm: String,
}

async fn set_status(
    db: &Db,
    ctx: &Ctx,
    project: &Project,
    proof: &cryowarden_core::Allowed,
    status: ProjectStatus,
    action: Event,
    counts: &TreeCounts,
) -> Result<Project, StoreError> {
    let mut tx = db.begin_write().await?;
    proof.require(DataAction::ManageProjectData.into())?;
    sqlx::query("UPDATE projects SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now_ms())
        .bind(project.id)
        .execute(&mut *tx.tx)
        .await?;
    let after = Project {
        status,
        ..project.clone()
    };
    ctx.audit_ok(
        &mut tx,
        action,
        &project.audit_target(),
        Some(json!({ "status": project.status })),
        Some(json!({ "status": status, "files": counts.files, "dirs": counts.dirs, "bytes": counts.bytes })),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Makes the project's data read-only in place (as the lab's account) and marks it archived.
pub async fn archive(
    db: &Db,
    runner: &Runner,
    ctx: &Ctx,
    id: i64,
) -> Result<DataChange, StoreError> {
    let (project, _, proof) = access(db, ctx, id, DataAction::ManageProjectData).await?;
    if project.status != ProjectStatus::Active {
        return Err(StoreError::InUse {
            field: "project",
            message: format!(
                "`{}` is {}, not active: nothing to archive",
                project.name,
                project.status.as_str()
            ),
        });
    }
    let account = lab_account(&labs::get(db, project.lab_id).await?)?;
    let (parent, name) = project.parent_and_name();
    let counts = runner.archive(&account, &parent, &name).await?;
    let project = set_status(
        db,
        ctx,
        &project,
        &proof,
        ProjectStatus::Archived,
        Event::ArchiveProjectData,
        &counts,
    )
    .await?;
    Ok(DataChange {
        project,
        files: counts.files,
        dirs: counts.dirs,
        bytes: counts.bytes,
    })
}

/// Deletes the project's directory and everything in it (as the lab's account). The record stays,
/// marked `data_deleted`, so its history remains.
pub async fn delete(
    db: &Db,
    runner: &Runner,
    ctx: &Ctx,
    id: i64,
    confirm: ConfirmDelete,
) -> Result<DataChange, StoreError> {
    let (project, _, proof) = access(db, ctx, id, DataAction::ManageProjectData).await?;
    if confirm.confirm != project.name {
        return Err(StoreError::invalid(
            "confirm",
            format!(
                "must be the project's name, `{}`, typed exactly",
                project.name
            ),
        ));
    }
    if project.status == ProjectStatus::DataDeleted {
        return Err(StoreError::InUse {
            field: "project",
            message: "the project's data is already deleted".into(),
        });
    }
    let account = lab_account(&labs::get(db, project.lab_id).await?)?;
    let (parent, name) = project.parent_and_name();
    let counts = match runner
        .delete_tree(&account, Path::new(&parent), &name)
        .await
    {
        Err(RunnerError::Refused { code, .. }) if code == "path-not-found" => TreeCounts::default(),
        other => other?,
    };
    let project = set_status(
        db,
        ctx,
        &project,
        &proof,
        ProjectStatus::DataDeleted,
        Event::DeleteProjectData,
        &counts,
    )
    .await?;
    Ok(DataChange {
        project,
        files: counts.files,
        dirs: counts.dirs,
        bytes: counts.bytes,
    })
}
