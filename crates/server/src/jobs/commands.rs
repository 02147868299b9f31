//! Command templates: commands an admin registers (a MotionCor2 or CTFFIND wrapper) as an argv
//! whose elements are minijinja templates over declared, typed parameters. A job's values are
//! checked against the declaration and rendered into separate argv elements, which the runner
//! executes directly: no shell ever parses them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{Any, Row};

use crate::context::{Ctx, Target};
use crate::db::{Db, now_ms};
use crate::error::{StoreError, map_unique};
use crate::lanes::COMPUTE;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    String,
    Int,
    Float,
    Bool,
    /// A path relative to the project directory (checked like every user path).
    Path,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParamKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub default: Option<Value>,
}

/// A registered command.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandTemplate {
    #[serde(default)]
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub title: String,
    pub params: Vec<Param>,
    /// The program and its arguments; each element may use `{{ param }}`.
    pub argv: Vec<String>,
    #[serde(default = "one")]
    pub num_cpu: i64,
    #[serde(default)]
    pub num_gpu: i64,
    #[serde(default = "one")]
    pub ram_gb: i64,
}

fn one() -> i64 {
    1
}

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
}

impl CommandTemplate {
    fn validate(&self) -> Result<(), StoreError> {
        crate::labs::validate_name(&self.name)?;
        if self.argv.is_empty() || self.argv.len() > 256 {
            return Err(StoreError::invalid(
                "argv",
                "must hold the program and at most 255 arguments",
            ));
        }
        if !self.argv[0].starts_with('/') || self.argv[0].contains("{{") {
            return Err(StoreError::invalid(
                "argv",
                "the program must be a fixed absolute path",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.params {
            let ok = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok || !seen.insert(p.name.clone()) {
                return Err(StoreError::invalid(
                    "params",
                    format!("`{}` is not a distinct parameter name", p.name),
                ));
            }
        }
        let env = env();
        for (i, a) in self.argv.iter().enumerate() {
            let t = env.template_from_str(a).map_err(|e| {
                StoreError::invalid("argv", format!("element {i} is not a valid template: {e}"))
            })?;
            for v in t.undeclared_variables(false) {
                if !seen.contains(&v) {
                    return Err(StoreError::invalid(
                        "argv",
                        format!("element {i} uses `{v}`, which is not a parameter"),
                    ));
                }
            }
        }
        for (field, v, max) in [
            ("num_cpu", self.num_cpu, 1024),
            ("num_gpu", self.num_gpu, 64),
            ("ram_gb", self.ram_gb, 65536),
        ] {
            if !(0..=max).contains(&v) {
                return Err(StoreError::invalid(
                    field,
                    format!("must be between 0 and {max}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks a job's values: every key declared, every type right, every required one given.
    pub fn check_values(&self, values: &Value) -> Result<(), StoreError> {
        let obj = values
            .as_object()
            .ok_or_else(|| StoreError::invalid("params", "`values` must be an object"))?;
        for k in obj.keys() {
            if !self.params.iter().any(|p| &p.name == k) {
                return Err(StoreError::invalid(
                    "params",
                    format!("`{}` has no parameter `{k}`", self.name),
                ));
            }
        }
        for p in &self.params {
            let v = match obj.get(&p.name).or(p.default.as_ref()) {
                Some(v) => v,
                None if p.required => {
                    return Err(StoreError::invalid(
                        "params",
                        format!("`{}` is required", p.name),
                    ));
                }
                None => continue,
            };
            let ok = match p.kind {
                ParamKind::String => v
                    .as_str()
                    .is_some_and(|s| s.len() <= 4096 && !s.contains('\0')),
                ParamKind::Int => v.as_i64().is_some(),
                ParamKind::Float => v.as_f64().is_some(),
                ParamKind::Bool => v.as_bool().is_some(),
                ParamKind::Path => v
                    .as_str()
                    .is_some_and(|s| crate::paths::RelPath::parse(s).is_ok()),
            };
            if !ok {
                return Err(StoreError::invalid(
                    "params",
                    format!("`{}` must be a {:?}", p.name, p.kind),
                ));
            }
        }
        Ok(())
    }

    /// The argv for a job's values (with defaults), each element rendered on its own.
    pub fn render(&self, values: &Value) -> Result<Vec<String>, StoreError> {
        self.check_values(values)?;
        let mut ctx = serde_json::Map::new();
        for p in &self.params {
            if let Some(v) = values.get(&p.name).or(p.default.as_ref()) {
                ctx.insert(p.name.clone(), v.clone());
            }
        }
        let env = env();
        self.argv
            .iter()
            .map(|a| {
                env.render_str(a, &ctx)
                    .map_err(|e| StoreError::invalid("params", format!("cannot render `{a}`: {e}")))
            })
            .collect()
    }
}

fn parse<T: serde::de::DeserializeOwned>(col: &str, text: String) -> Result<T, StoreError> {
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Internal(format!("stored command template {col}: {e}")))
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<CommandTemplate, StoreError> {
    Ok(CommandTemplate {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        title: r.try_get("title")?,
        params: parse("params", r.try_get("params")?)?,
        argv: parse("argv", r.try_get("argv")?)?,
        num_cpu: r.try_get("num_cpu")?,
        num_gpu: r.try_get("num_gpu")?,
        ram_gb: r.try_get("ram_gb")?,
    })
}

const COLUMNS: &str = "id, name, title, params, argv, num_cpu, num_gpu, ram_gb";

pub async fn get(db: &Db, name: &str) -> Result<CommandTemplate, StoreError> {
    let row = sqlx::query::<Any>(&format!(
        "SELECT {COLUMNS} FROM command_templates WHERE name_key = $1"
    ))
    .bind(name.to_lowercase())
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| {
        StoreError::invalid("params", format!("there is no command template `{name}`"))
    })?;
    from_row(&row)
}

pub async fn list(db: &Db) -> Result<Vec<CommandTemplate>, StoreError> {
    let rows = sqlx::query::<Any>(&format!(
        "SELECT {COLUMNS} FROM command_templates ORDER BY name_key"
    ))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Registers (or replaces) a command template (`compute`).
pub async fn put(db: &Db, ctx: &Ctx, t: CommandTemplate) -> Result<CommandTemplate, StoreError> {
    let target = Target {
        kind: "command-template",
        id: None,
        name: Some(t.name.clone()),
    };
    let proof = ctx
        .authorize(db, COMPUTE, cryowarden_core::Resource::instance(), &target)
        .await?;
    t.validate()?;
    let title = if t.title.trim().is_empty() {
        t.name.clone()
    } else {
        crate::labs::validate_title(&t.title)?
    };
    let mut tx = db.begin_write().await?;
    proof.require(COMPUTE)?;
    let now = now_ms();
    sqlx::query("DELETE FROM command_templates WHERE name_key = $1")
        .bind(t.name.to_lowercase())
        .execute(&mut *tx.tx)
        .await?;
    sqlx::query(
        "INSERT INTO command_templates (name, name_key, title, params, argv, num_cpu, num_gpu, ram_gb, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&t.name)
    .bind(t.name.to_lowercase())
    .bind(&title)
    .bind(serde_json::to_string(&t.params).unwrap_or_default())
    .bind(serde_json::to_string(&t.argv).unwrap_or_default())
    .bind(t.num_cpu)
    .bind(t.num_gpu)
    .bind(t.ram_gb)
    .bind(now)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, &[("name_key", "name")]))?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::PutCommandTemplate,
        &target,
        None,
        Some(json!({ "argv": t.argv, "params": t.params })),
    )
    .await?;
    tx.commit().await?;
    get(db, &t.name).await
}
