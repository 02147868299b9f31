//! Browsing a lab's data roots for the import dialog: `import-data` decides who may (the lab's
//! import policy), the root must be one of the lab's own data roots, and the listing runs through
//! the runner as the lab's Unix account, beneath a handle of the root. Every refusal is audited.

use cryowarden_core::{DataAction, DataScope, Resource};
use serde::Deserialize;

use super::{Lab, show};
use crate::audit::Outcome;
use crate::context::Ctx;
use crate::db::Db;
use crate::error::StoreError;
use crate::paths::Listing;
use crate::projects::data::audit_refusal;
use crate::projects::lab_account;
use crate::runner::Runner;

/// Which directory of which data root, and which page of it.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    /// One of the lab's data roots, as the lab shows it; defaults to the first.
    #[serde(default)]
    pub root: Option<String>,
    /// A path relative to the root; empty for the root itself.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub offset: Option<usize>,
    /// Entries per page, 1..=1000 (default 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// May the caller import from this lab (and so browse its data roots)? The proof, or "not found"
/// for someone outside the lab, or "forbidden" under the lab's import policy.
pub async fn authorize_import(
    db: &Db,
    ctx: &Ctx,
    lab: &Lab,
) -> Result<cryowarden_core::Allowed, StoreError> {
    let lab_role = super::role_for(db, lab.id, ctx).await?;
    let resource = Resource::data(DataScope::lab(lab_role, lab.import_policy));
    ctx.authorize(
        db,
        DataAction::ImportData.into(),
        resource,
        &lab.audit_target(),
    )
    .await
}

/// Lists a directory beneath one of the lab's data roots.
pub async fn browse(
    db: &Db,
    runner: &Runner,
    ctx: &Ctx,
    lab_id: i64,
    q: &BrowseQuery,
) -> Result<Listing, StoreError> {
    let lab = show(db, ctx, lab_id).await?;
    let _may_import = authorize_import(db, ctx, &lab).await?;
    let root = match &q.root {
        Some(r) if lab.data_roots.iter().any(|d| d == r) => r.clone(),
        Some(r) => {
            let shown: String = r.chars().filter(|c| !c.is_control()).take(300).collect();
            ctx.record(
                db,
                cryowarden_core::Event::BrowseLabData,
                &lab.audit_target(),
                Outcome::Denied,
                Some(format!("`{shown}` is not a data root of this lab")),
                None,
                None,
            )
            .await?;
            return Err(StoreError::invalid(
                "root",
                "is not one of this lab's data roots: choose one the lab lists",
            ));
        }
        None => lab
            .data_roots
            .first()
            .cloned()
            .ok_or_else(|| StoreError::InUse {
                field: "lab",
                message: format!(
                    "lab `{}` has no data roots yet: a Site Admin must set them",
                    lab.name
                ),
            })?,
    };
    let account = lab_account(&lab)?;
    let result = runner
        .list(
            &account,
            std::path::Path::new(&root),
            &q.path,
            q.offset.unwrap_or(0),
            q.limit.unwrap_or(200),
        )
        .await;
    audit_refusal(
        db,
        ctx,
        cryowarden_core::Event::BrowseLabData,
        &lab.audit_target(),
        &q.path,
        &result,
    )
    .await?;
    Ok(result?)
}
