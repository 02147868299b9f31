//! The Unix account a lab's jobs run as: looked up in the system's user and group databases
//! (getpwnam_r / getgrnam_r through `nix`), never a system account (uid < 1000) nor the
//! account the server itself runs as. Setting it is the `storage-roots` setting of §1.

use serde::Deserialize;

use super::{Lab, roots::ACTION, show, snapshot};
use crate::context::Ctx;
use crate::db::{Db, now_ms};
use crate::error::StoreError;

/// The lowest uid (and gid) of an ordinary account.
pub const FIRST_ORDINARY_ID: u32 = 1000;
const NAME_MAX: usize = 256;

/// The Unix account of a lab.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUnixAccount {
    pub user: String,
    /// Defaults to the user's primary group.
    #[serde(default)]
    pub group: Option<String>,
}

/// A resolved account: names and numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
}

fn check_name(field: &'static str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if name.len() > NAME_MAX || name.chars().any(|c| c.is_control() || c == ':' || c == '/') {
        return Err(StoreError::invalid(
            field,
            "is not a valid Unix account name",
        ));
    }
    Ok(())
}

/// Looks the account up and applies the rules; `server_uid` is the uid the server runs as.
pub fn resolve(user: &str, group: Option<&str>, server_uid: u32) -> Result<Account, StoreError> {
    check_name("unix_user", user)?;
    if let Some(g) = group {
        check_name("unix_group", g)?;
    }
    let lookup = |e: nix::Error| StoreError::Internal(format!("user database lookup: {e}"));
    let pw = nix::unistd::User::from_name(user)
        .map_err(lookup)?
        .ok_or_else(|| {
            StoreError::invalid(
                "unix_user",
                format!("`{user}` is not a Unix user on this server"),
            )
        })?;
    let uid = pw.uid.as_raw();
    if uid == server_uid {
        return Err(StoreError::invalid(
            "unix_user",
            format!(
                "`{user}` (uid {uid}) is the account the server runs as: jobs must not run as it"
            ),
        ));
    }
    if uid < FIRST_ORDINARY_ID {
        return Err(StoreError::invalid(
            "unix_user",
            format!(
                "`{user}` has uid {uid}, a system account: choose an account with uid {FIRST_ORDINARY_ID} or above"
            ),
        ));
    }
    let gr = match group {
        Some(g) => nix::unistd::Group::from_name(g)
            .map_err(lookup)?
            .ok_or_else(|| {
                StoreError::invalid(
                    "unix_group",
                    format!("`{g}` is not a Unix group on this server"),
                )
            })?,
        None => nix::unistd::Group::from_gid(pw.gid)
            .map_err(lookup)?
            .ok_or_else(|| {
                StoreError::invalid(
                    "unix_group",
                    format!(
                        "the primary group (gid {}) of `{user}` does not exist",
                        pw.gid
                    ),
                )
            })?,
    };
    let gid = gr.gid.as_raw();
    if gid < FIRST_ORDINARY_ID {
        return Err(StoreError::invalid(
            "unix_group",
            format!(
                "`{}` has gid {gid}, a system group: choose a group with gid {FIRST_ORDINARY_ID} or above",
                gr.name
            ),
        ));
    }
    Ok(Account {
        user: pw.name,
        uid,
        group: gr.name,
        gid,
    })
}

/// Sets the Unix account of a lab. Returns the lab as it is afterwards.
pub async fn set(db: &Db, ctx: &Ctx, lab_id: i64, req: SetUnixAccount) -> Result<Lab, StoreError> {
    let before = show(db, ctx, lab_id).await?;
    let proof = ctx
        .authorize(
            db,
            ACTION,
            cryowarden_core::Resource::instance(),
            &before.audit_target(),
        )
        .await?;
    let server_uid = rustix::process::getuid().as_raw();
    let account =
        tokio::task::spawn_blocking(move || resolve(&req.user, req.group.as_deref(), server_uid))
            .await
            .map_err(|e| StoreError::Internal(format!("account lookup: {e}")))??;
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    sqlx::query("UPDATE labs SET unix_user = $1, unix_group = $2, uid = $3, gid = $4, updated_at = $5 WHERE id = $6")
        .bind(&account.user)
        .bind(&account.group)
        .bind(i64::from(account.uid))
        .bind(i64::from(account.gid))
        .bind(now_ms())
        .bind(lab_id)
        .execute(&mut *tx.tx)
        .await?;
    let after = Lab {
        unix_user: Some(account.user.clone()),
        unix_group: Some(account.group.clone()),
        uid: Some(i64::from(account.uid)),
        gid: Some(i64::from(account.gid)),
        ..before.clone()
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::SetLabUnixAccount,
        &before.audit_target(),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}
