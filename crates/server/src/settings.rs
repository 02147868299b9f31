//! Instance settings (the admin panel's Instance Settings tab): name, banner, login message,
//! system email address (look-and-feel); default job priority and lane queue override
//! (scheduler); maintenance mode (system-maintenance). Each field is authorized against its
//! row of `spec/roles.md` §1, every change is audited, and pages read a cached copy.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cryowarden_core::{Action, ImportPolicy, Resource, Setting, limits};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Row};

use crate::context::{Ctx, Target};
use crate::db::{Db, now_ms};
use crate::error::StoreError;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Banner {
    pub active: bool,
    pub text: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LoginMessage {
    pub active: bool,
    pub title: String,
    pub body: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Maintenance {
    pub active: bool,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct InstanceSettings {
    pub instance_name: String,
    pub banner: Banner,
    pub login_message: LoginMessage,
    pub system_email_address: String,
    /// 0..=100; users can be given priority above or below this mark.
    pub default_job_priority: i64,
    /// Lets import jobs be queued on lanes outside the default.
    pub lane_queue_override: bool,
    /// Queueing directly to GPUs that running jobs hold is refused (else it waits, with a warning).
    pub refuse_busy_gpus: bool,
    pub maintenance: Maintenance,
    /// The import policy a new lab gets when its creator names none (storage-roots: Site Admins).
    #[schema(value_type = String, example = "all_members")]
    pub default_import_policy: ImportPolicy,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            instance_name: "cryowarden".into(),
            banner: Banner::default(),
            login_message: LoginMessage::default(),
            system_email_address: String::new(),
            default_job_priority: 0,
            lane_queue_override: false,
            refuse_busy_gpus: false,
            maintenance: Maintenance::default(),
            default_import_policy: ImportPolicy::AllMembers,
        }
    }
}

/// A change to the instance settings; absent fields stay.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub instance_name: Option<String>,
    pub banner: Option<Banner>,
    pub login_message: Option<LoginMessage>,
    pub system_email_address: Option<String>,
    pub default_job_priority: Option<i64>,
    pub lane_queue_override: Option<bool>,
    pub refuse_busy_gpus: Option<bool>,
    pub maintenance: Option<Maintenance>,
    #[schema(value_type = Option<String>)]
    pub default_import_policy: Option<ImportPolicy>,
}

/// Which setting and field each part of the settings belongs to.
pub fn field_action(field: &'static str) -> Action {
    match field {
        "default_job_priority" | "lane_queue_override" | "refuse_busy_gpus" => {
            Action::ChangeSetting {
                setting: Setting::Scheduler,
                field: None,
            }
        }
        "maintenance" => Action::ChangeSetting {
            setting: Setting::SystemMaintenance,
            field: None,
        },
        "default_import_policy" => Action::ChangeSetting {
            setting: Setting::StorageRoots,
            field: None,
        },
        f => Action::ChangeSetting {
            setting: Setting::LookAndFeel,
            field: Some(f),
        },
    }
}

const KEY: &str = "instance";
const CACHE_TTL: Duration = Duration::from_secs(5);

/// The settings, cached for pages; refreshed on every change made here, and at most
/// `CACHE_TTL` old when another replica changed them.
pub struct SettingsCache {
    value: RwLock<(Arc<InstanceSettings>, Instant)>,
}

impl Default for SettingsCache {
    fn default() -> Self {
        SettingsCache {
            value: RwLock::new((
                Arc::new(InstanceSettings::default()),
                Instant::now() - CACHE_TTL * 2,
            )),
        }
    }
}

impl SettingsCache {
    pub async fn get(&self, db: &Db) -> Result<Arc<InstanceSettings>, StoreError> {
        {
            let guard = self
                .value
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if guard.1.elapsed() < CACHE_TTL {
                return Ok(guard.0.clone());
            }
        }
        let fresh = Arc::new(load(db).await?);
        *self
            .value
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (fresh.clone(), Instant::now());
        Ok(fresh)
    }

    fn set(&self, value: InstanceSettings) {
        *self
            .value
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(value), Instant::now());
    }
}

pub async fn load(db: &Db) -> Result<InstanceSettings, StoreError> {
    let row = sqlx::query::<Any>("SELECT value FROM instance_settings WHERE key = $1")
        .bind(KEY)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        None => Ok(InstanceSettings::default()),
        Some(r) => {
            let text: String = r.try_get("value")?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Internal(format!("stored instance settings: {e}")))
        }
    }
}

fn check_len(field: &'static str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.chars().count() > max {
        return Err(StoreError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn validate(p: &SettingsPatch) -> Result<(), StoreError> {
    if let Some(name) = &p.instance_name {
        if name.trim().is_empty() {
            return Err(StoreError::invalid("instance_name", "must not be empty"));
        }
        check_len("instance_name", name, 100)?;
    }
    if let Some(b) = &p.banner {
        check_len("banner", &b.text, 500)?;
        if b.active && b.text.trim().is_empty() {
            return Err(StoreError::invalid(
                "banner",
                "an active banner needs a text",
            ));
        }
    }
    if let Some(m) = &p.login_message {
        check_len("login_message", &m.title, 200)?;
        check_len("login_message", &m.body, 5000)?;
        if m.active && m.title.trim().is_empty() && m.body.trim().is_empty() {
            return Err(StoreError::invalid(
                "login_message",
                "an active login message needs a title or a body",
            ));
        }
    }
    if let Some(e) = p.system_email_address.as_deref().filter(|e| !e.is_empty()) {
        crate::users::validate_email(e).map_err(|_| {
            StoreError::invalid("system_email_address", "is not a valid email address")
        })?;
    }
    if let Some(prio) = p.default_job_priority
        && !(0..=limits::PRIORITY_MAX).contains(&prio)
    {
        return Err(StoreError::invalid(
            "default_job_priority",
            "must be an integer from 0 to 100",
        ));
    }
    if let Some(m) = &p.maintenance {
        check_len("maintenance", &m.message, 1000)?;
    }
    Ok(())
}

/// Applies `patch`: every changed field is authorized first (a refusal changes nothing), then
/// all commit together with one audit event per field.
pub async fn update(
    db: &Db,
    cache: &SettingsCache,
    ctx: &Ctx,
    patch: SettingsPatch,
) -> Result<InstanceSettings, StoreError> {
    let before = load(db).await?;
    let mut after = before.clone();
    let mut changed: Vec<&'static str> = Vec::new();
    macro_rules! take {
        ($field:ident) => {
            if let Some(v) = patch.$field.clone() {
                if v != before.$field {
                    after.$field = v;
                    changed.push(stringify!($field));
                }
            }
        };
    }
    take!(instance_name);
    take!(banner);
    take!(login_message);
    take!(system_email_address);
    take!(default_job_priority);
    take!(lane_queue_override);
    take!(refuse_busy_gpus);
    take!(maintenance);
    take!(default_import_policy);
    let target = |field: &str| Target {
        kind: "setting",
        id: Some(field.to_owned()),
        name: None,
    };
    let mut proofs = Vec::new();
    for field in &changed {
        proofs.push(
            ctx.authorize(
                db,
                field_action(field),
                Resource::instance(),
                &target(field),
            )
            .await?,
        );
    }
    validate(&patch)?;
    if changed.is_empty() {
        return Ok(before);
    }
    let value = serde_json::to_string(&after).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut tx = db.begin_write().await?;
    for (proof, field) in proofs.iter().zip(&changed) {
        proof.require(field_action(field))?;
    }
    let now = now_ms();
    let updated =
        sqlx::query("UPDATE instance_settings SET value = $1, updated_at = $2 WHERE key = $3")
            .bind(&value)
            .bind(now)
            .bind(KEY)
            .execute(&mut *tx.tx)
            .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO instance_settings (key, value, updated_at) VALUES ($1, $2, $3)")
            .bind(KEY)
            .bind(&value)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
    }
    let before_json = serde_json::to_value(&before).unwrap_or_default();
    let after_json = serde_json::to_value(&after).unwrap_or_default();
    for field in &changed {
        ctx.audit_ok(
            &mut tx,
            field_action(field),
            &target(field),
            Some(before_json[field].clone()),
            Some(after_json[field].clone()),
        )
        .await?;
    }
    tx.commit().await?;
    cache.set(after.clone());
    Ok(after)
}

/// The instance settings one viewer may read: each group of §1 they have no read access to is
/// left out (its fields absent, never null).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct VisibleSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<Banner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_message: Option<LoginMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_email_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_job_priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane_queue_override: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_busy_gpus: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "all_members")]
    pub default_import_policy: Option<ImportPolicy>,
}

/// The settings `actor` may read ([`VisibleSettings`]).
pub fn visible_to(settings: &InstanceSettings, actor: &cryowarden_core::Actor) -> VisibleSettings {
    let can_read = |setting| {
        cryowarden_core::authorize(actor, Action::ReadSetting(setting), &Resource::instance())
            .is_allowed()
    };
    let s = settings.clone();
    let (look, scheduler) = (can_read(Setting::LookAndFeel), can_read(Setting::Scheduler));
    VisibleSettings {
        instance_name: look.then_some(s.instance_name),
        banner: look.then_some(s.banner),
        login_message: look.then_some(s.login_message),
        system_email_address: look.then_some(s.system_email_address),
        default_job_priority: scheduler.then_some(s.default_job_priority),
        lane_queue_override: scheduler.then_some(s.lane_queue_override),
        refuse_busy_gpus: scheduler.then_some(s.refuse_busy_gpus),
        maintenance: can_read(Setting::SystemMaintenance).then_some(s.maintenance),
        default_import_policy: can_read(Setting::StorageRoots).then_some(s.default_import_policy),
    }
}

/// What every visitor sees: the instance name, and the banner and maintenance notice when on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicInstance {
    pub instance_name: String,
    pub banner: Option<Banner>,
    pub maintenance: Option<Maintenance>,
}

impl PublicInstance {
    pub fn from(s: &InstanceSettings) -> PublicInstance {
        PublicInstance {
            instance_name: s.instance_name.clone(),
            banner: s.banner.active.then(|| s.banner.clone()),
            maintenance: s.maintenance.active.then(|| s.maintenance.clone()),
        }
    }
}
