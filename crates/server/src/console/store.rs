//! The console's own settings: each a typed value stored as JSON in `instance_settings` under
//! `console:<key>`, changed field by field with one audit event per changed field.

use cryowarden_core::{Action, Resource, Setting};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sqlx::{Any, Row};

use crate::context::{Ctx, Target};
use crate::db::{Db, WriteTx, now_ms};
use crate::error::StoreError;

/// A setting the console stores itself.
pub trait Stored: Serialize + DeserializeOwned + Default + Clone + PartialEq + Send + Sync {
    /// The key in `instance_settings`.
    const KEY: &'static str;
    /// Every field, as the JSON object names them (unknown fields are refused by name).
    const FIELDS: &'static [&'static str];
    /// Write-only fields: never returned (`"***"` when set), never written to the audit log.
    const SECRETS: &'static [&'static str] = &[];
    /// Fields the server keeps (a client may send them back unchanged, never change them).
    const DERIVED: &'static [&'static str] = &[];
    /// Sets the derived fields of a new value from the one it replaces.
    fn derive(&mut self, _before: &Self) {}
    /// Checks a whole new value; an error names the field.
    fn validate(&self) -> Result<(), StoreError>;
}

/// The stored value, or the default when never set.
pub async fn load<T: Stored>(db: &Db) -> Result<T, StoreError> {
    let row = sqlx::query::<Any>("SELECT value FROM instance_settings WHERE key = $1")
        .bind(T::KEY)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        None => Ok(T::default()),
        Some(r) => {
            let text: String = r.try_get("value")?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Internal(format!("stored {}: {e}", T::KEY)))
        }
    }
}

/// Writes the value inside the change's transaction.
pub async fn save<T: Stored>(tx: &mut WriteTx, value: &T) -> Result<(), StoreError> {
    let text = serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))?;
    let now = now_ms();
    let updated =
        sqlx::query("UPDATE instance_settings SET value = $1, updated_at = $2 WHERE key = $3")
            .bind(&text)
            .bind(now)
            .bind(T::KEY)
            .execute(&mut *tx.tx)
            .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO instance_settings (key, value, updated_at) VALUES ($1, $2, $3)")
            .bind(T::KEY)
            .bind(&text)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
    }
    Ok(())
}

fn redact_with(mut v: Value, secrets: &[&str]) -> Value {
    if let Some(map) = v.as_object_mut() {
        for s in secrets {
            if let Some(x) = map.get_mut(*s) {
                let set = x.as_str().is_some_and(|t| !t.is_empty());
                *x = Value::String(if set { "***".into() } else { String::new() });
            }
        }
    }
    v
}

/// The value as the API shows it: secrets replaced by `"***"` when set (`""` when not).
pub fn redact<T: Stored>(value: T) -> Value {
    redact_with(serde_json::to_value(&value).unwrap_or_default(), T::SECRETS)
}

pub async fn redacted<T: Stored>(db: &Db) -> Result<Value, StoreError> {
    Ok(redact(load::<T>(db).await?))
}

/// Decodes an object into `T`, a failure naming the field at fault (one of `fields`).
pub fn from_object<T: DeserializeOwned>(
    fields: &[&'static str],
    v: Value,
) -> Result<T, StoreError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let first = e
            .path()
            .iter()
            .next()
            .map(std::string::ToString::to_string)
            .unwrap_or_default();
        let field = fields
            .iter()
            .copied()
            .find(|f| *f == first)
            .unwrap_or("body");
        StoreError::invalid(field, format!("has the wrong type: {}", e.inner()))
    })
}

/// Applies a JSON object of fields to a stored setting: unknown fields and bad values are a 422
/// naming the field; a secret sent back as `"***"` stays; unchanged fields are not written.
/// The caller has authorized `ChangeSetting { setting }`; the write takes its proof again.
pub async fn update<T: Stored>(
    db: &Db,
    ctx: &Ctx,
    setting: Setting,
    body: Map<String, Value>,
) -> Result<T, StoreError> {
    let action = Action::ChangeSetting {
        setting,
        field: None,
    };
    let target = |field: &str| Target {
        kind: "setting",
        id: Some(format!("{setting}.{field}")),
        name: None,
    };
    let before = load::<T>(db).await?;
    let mut merged =
        serde_json::to_value(&before).map_err(|e| StoreError::Internal(e.to_string()))?;
    for (k, v) in body {
        let Some(field) = T::FIELDS.iter().copied().find(|f| *f == k) else {
            return Err(StoreError::invalid(
                "body",
                format!(
                    "`{}` is not a field of {setting}: use {}",
                    k.chars().take(40).collect::<String>(),
                    T::FIELDS.join(", ")
                ),
            ));
        };
        if T::SECRETS.contains(&field) && v.as_str() == Some("***") {
            continue;
        }
        if T::DERIVED.contains(&field) {
            if v != merged[field] {
                return Err(StoreError::invalid(
                    field,
                    "is kept by the server and cannot be set",
                ));
            }
            continue;
        }
        merged[field] = v;
    }
    let mut after: T = from_object(T::FIELDS, merged)?;
    after.validate()?;
    after.derive(&before);
    let (b, a) = (
        serde_json::to_value(&before).unwrap_or_default(),
        serde_json::to_value(&after).unwrap_or_default(),
    );
    let changed: Vec<&str> = T::FIELDS
        .iter()
        .copied()
        .filter(|f| b[*f] != a[*f])
        .collect();
    if changed.is_empty() {
        return Ok(after);
    }
    let proof = ctx
        .authorize(db, action, Resource::instance(), &target(changed[0]))
        .await?;
    let mut tx = db.begin_write().await?;
    proof.require(action)?;
    save(&mut tx, &after).await?;
    for field in changed {
        let (before_v, after_v) = if T::SECRETS.contains(&field) {
            let shown = |v: &Value| {
                Value::String(
                    if v.as_str().is_some_and(|s| !s.is_empty()) {
                        "(set)"
                    } else {
                        "(empty)"
                    }
                    .into(),
                )
            };
            (shown(&b[field]), shown(&a[field]))
        } else {
            (b[field].clone(), a[field].clone())
        };
        ctx.audit_ok(
            &mut tx,
            action,
            &target(field),
            Some(before_v),
            Some(after_v),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}
