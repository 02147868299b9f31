//! A lab's storage roots: any number of data roots and at most one project root, each an
//! existing directory (not a symlink) given as an absolute, normalized path, and none nested
//! with a root of another lab (compared by components of the canonical paths). Setting them is
//! the `storage-roots` setting of §1.

use std::path::{Path, PathBuf};

use cryowarden_core::{Action, Resource, Setting};
use serde::Deserialize;
use sqlx::{Any, Row};

use super::{Lab, show, snapshot};
use crate::context::Ctx;
use crate::db::Db;
use crate::error::StoreError;

pub const PATH_MAX: usize = 4096;
pub const DATA_ROOTS_MAX: usize = 64;

pub const ACTION: Action = Action::ChangeSetting {
    setting: Setting::StorageRoots,
    field: None,
};

/// Replaces the lab's roots.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoots {
    pub data_roots: Vec<String>,
    #[serde(default)]
    pub project_root: Option<String>,
}

/// Checks one root's shape and that it is a directory; returns its canonical path.
pub(crate) fn check_root(field: &'static str, path: &str) -> Result<PathBuf, StoreError> {
    let shown: String = path.chars().take(200).collect();
    let bad = |why: &str| StoreError::invalid(field, format!("`{shown}` {why}"));
    if path.len() > PATH_MAX {
        return Err(bad(&format!("is longer than {PATH_MAX} bytes")));
    }
    if path.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    if !path.starts_with('/') {
        return Err(bad("is not an absolute path"));
    }
    if path.split('/').any(|c| c == "." || c == "..") {
        return Err(bad("must not contain `.` or `..` components"));
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("does not exist")),
        Err(e) => return Err(bad(&format!("cannot be examined: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(bad("is a symbolic link: give the directory it points to"));
    }
    if !meta.is_dir() {
        return Err(bad("is not a directory"));
    }
    std::fs::canonicalize(path).map_err(|e| bad(&format!("cannot be resolved: {e}")))
}

/// Whether one of `a`, `b` lies inside the other (or they are the same), by path components.
pub fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Validates the request against the filesystem: the canonical data roots and project root.
fn check_all(req: &SetRoots) -> Result<(Vec<PathBuf>, Option<PathBuf>), StoreError> {
    if req.data_roots.len() > DATA_ROOTS_MAX {
        return Err(StoreError::invalid(
            "data_roots",
            format!("must hold at most {DATA_ROOTS_MAX} paths"),
        ));
    }
    let mut data: Vec<PathBuf> = Vec::new();
    for p in &req.data_roots {
        let c = check_root("data_roots", p)?;
        if data.contains(&c) {
            return Err(StoreError::invalid(
                "data_roots",
                format!("`{}` is given twice", c.display()),
            ));
        }
        data.push(c);
    }
    let project = req
        .project_root
        .as_deref()
        .map(|p| check_root("project_root", p))
        .transpose()?;
    if let Some(p) = project.as_ref().filter(|p| data.contains(p)) {
        return Err(StoreError::invalid(
            "project_root",
            format!(
                "`{}` is also a data root of this lab: use another directory",
                p.display()
            ),
        ));
    }
    Ok((data, project))
}

fn utf8(p: &Path, field: &'static str) -> Result<String, StoreError> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::invalid(field, format!("`{}` is not valid UTF-8", p.display())))
}

/// Replaces the storage roots of a lab. Returns the lab as it is afterwards.
pub async fn set(db: &Db, ctx: &Ctx, lab_id: i64, req: SetRoots) -> Result<Lab, StoreError> {
    let before = show(db, ctx, lab_id).await?;
    let proof = ctx
        .authorize(db, ACTION, Resource::instance(), &before.audit_target())
        .await?;
    let (data, project) = tokio::task::spawn_blocking(move || check_all(&req))
        .await
        .map_err(|e| StoreError::Internal(format!("root check: {e}")))??;
    let mut new_roots: Vec<(&'static str, &'static str, String, &PathBuf)> = Vec::new();
    for p in &data {
        new_roots.push(("data_roots", "data", utf8(p, "data_roots")?, p));
    }
    if let Some(p) = &project {
        new_roots.push(("project_root", "project", utf8(p, "project_root")?, p));
    }

    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    // Inside the write transaction, so that two labs cannot claim nested roots at once.
    let others = sqlx::query::<Any>(
        "SELECT l.name, r.path FROM lab_roots r JOIN labs l ON l.id = r.lab_id WHERE r.lab_id <> $1",
    )
    .bind(lab_id)
    .fetch_all(&mut *tx.tx)
    .await?;
    for r in &others {
        let other_name: String = r.try_get("name")?;
        let other: String = r.try_get("path")?;
        let other_canon = std::fs::canonicalize(&other).unwrap_or_else(|_| PathBuf::from(&other));
        for (field, _, shown, canon) in &new_roots {
            if nested(canon, &other_canon) {
                let how = if canon == &&other_canon {
                    "is"
                } else if canon.starts_with(&other_canon) {
                    "lies inside"
                } else {
                    "contains"
                };
                return Err(StoreError::invalid(
                    field,
                    format!("`{shown}` {how} `{other}`, a storage root of lab `{other_name}`"),
                ));
            }
        }
    }
    sqlx::query("DELETE FROM lab_roots WHERE lab_id = $1")
        .bind(lab_id)
        .execute(&mut *tx.tx)
        .await?;
    for (_, kind, path, _) in &new_roots {
        sqlx::query("INSERT INTO lab_roots (lab_id, kind, path) VALUES ($1, $2, $3)")
            .bind(lab_id)
            .bind(*kind)
            .bind(path)
            .execute(&mut *tx.tx)
            .await?;
    }
    super::touch(&mut tx, lab_id).await?;
    let mut after = before.clone();
    after.data_roots = new_roots
        .iter()
        .filter(|r| r.1 == "data")
        .map(|r| r.2.clone())
        .collect();
    after.data_roots.sort();
    after.project_root = new_roots
        .iter()
        .find(|r| r.1 == "project")
        .map(|r| r.2.clone());
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::SetLabRoots,
        &before.audit_target(),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_by_components_not_by_prefix() {
        assert!(!nested(Path::new("/x/lab1"), Path::new("/x/lab10")));
        assert!(nested(Path::new("/x/lab1"), Path::new("/x/lab1/sub")));
        assert!(nested(Path::new("/x/lab1/sub"), Path::new("/x/lab1")));
        assert!(nested(Path::new("/x/lab1"), Path::new("/x/lab1")));
    }
}
