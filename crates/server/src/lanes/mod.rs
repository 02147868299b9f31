//! Lanes and their targets (CryoSPARC's scheduler lanes): node lanes whose targets have CPU,
//! GPU and RAM slots, and cluster lanes whose targets are CryoSPARC cluster configurations.
//! Managing them is the `compute` setting; who may queue where is the `lane-restrictions`
//! setting, stored as denials so that a new user gets every lane and a new lane goes to every
//! user. Admins queue to every lane.

pub mod info;
pub mod restrictions;

use std::collections::BTreeMap;

use cryowarden_core::{Action, Resource, Setting};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use crate::context::{Ctx, Target as AuditTarget};
use crate::db::{Db, WriteTx, format_ms, now_ms};
use crate::error::{StoreError, map_unique};

pub const COMPUTE: Action = Action::ChangeSetting {
    setting: Setting::Compute,
    field: None,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LaneKind {
    Node,
    Cluster,
}

impl LaneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LaneKind::Node => "node",
            LaneKind::Cluster => "cluster",
        }
    }
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "node" => Ok(LaneKind::Node),
            "cluster" => Ok(LaneKind::Cluster),
            other => Err(StoreError::Internal(format!("bad lane kind {other}"))),
        }
    }
}

/// A GPU of a node target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub id: u32,
    #[serde(default)]
    pub name: String,
    /// Memory in MiB, when known.
    #[serde(default)]
    pub mem_mb: u64,
}

/// The slots of a node target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub cpus: u32,
    pub ram_gb: u32,
    #[serde(default)]
    pub gpus: Vec<Gpu>,
}

/// A target as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LaneTarget {
    pub id: i64,
    pub lane_id: i64,
    pub name: String,
    #[schema(value_type = String)]
    pub kind: LaneKind,
    pub hostname: String,
    /// Node: `NodeConfig`; cluster: the cluster_info.json.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Cluster: the cluster_script.sh template.
    pub script: String,
    pub custom_vars: BTreeMap<String, String>,
}

impl LaneTarget {
    pub fn node(&self) -> Option<NodeConfig> {
        (self.kind == LaneKind::Node)
            .then(|| serde_json::from_value(self.config.clone()).ok())
            .flatten()
    }
}

/// A lane as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Lane {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub description: String,
    #[schema(value_type = String)]
    pub kind: LaneKind,
    pub targets: Vec<LaneTarget>,
    pub created_at: String,
}

impl Lane {
    pub fn audit_target(&self) -> AuditTarget {
        AuditTarget {
            kind: "lane",
            id: Some(self.id.to_string()),
            name: Some(self.name.clone()),
        }
    }
}

/// A new lane.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLane {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[schema(value_type = String)]
    pub kind: LaneKind,
    /// Node lanes: targets created with the lane, in the same transaction (all or nothing).
    #[serde(default)]
    pub targets: Vec<NewNodeTarget>,
}

/// A new node target in a node lane.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNodeTarget {
    pub name: String,
    #[serde(default)]
    pub hostname: Option<String>,
    /// The target's slots, as in [`NodeConfig`] (written out here: a flattened struct would make
    /// the documented schema unsatisfiable, both sides refusing the other's fields).
    pub cpus: u32,
    pub ram_gb: u32,
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    #[serde(default)]
    pub custom_vars: BTreeMap<String, String>,
}

fn parse<T: serde::de::DeserializeOwned>(col: &str, text: String) -> Result<T, StoreError> {
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Internal(format!("stored target {col}: {e}")))
}

fn target_from_row(r: &sqlx::any::AnyRow) -> Result<LaneTarget, StoreError> {
    Ok(LaneTarget {
        id: r.try_get("id")?,
        lane_id: r.try_get("lane_id")?,
        name: r.try_get("name")?,
        kind: LaneKind::parse(&r.try_get::<String, _>("kind")?)?,
        hostname: r.try_get("hostname")?,
        config: parse("config", r.try_get("config")?)?,
        script: r.try_get("script")?,
        custom_vars: parse("custom_vars", r.try_get("custom_vars")?)?,
    })
}

/// Every lane with its targets, by name (for the server's own use).
pub async fn all(db: &Db) -> Result<Vec<Lane>, StoreError> {
    let mut lanes: Vec<Lane> = Vec::new();
    for r in sqlx::query::<Any>(
        "SELECT id, name, title, description, kind, created_at FROM lanes ORDER BY name_key",
    )
    .fetch_all(&db.pool)
    .await?
    {
        lanes.push(Lane {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            title: r.try_get("title")?,
            description: r.try_get("description")?,
            kind: LaneKind::parse(&r.try_get::<String, _>("kind")?)?,
            targets: Vec::new(),
            created_at: format_ms(r.try_get("created_at")?),
        });
    }
    for r in sqlx::query::<Any>(
        "SELECT id, lane_id, name, kind, hostname, config, script, custom_vars FROM targets ORDER BY name_key",
    )
    .fetch_all(&db.pool)
    .await?
    {
        let t = target_from_row(&r)?;
        if let Some(l) = lanes.iter_mut().find(|l| l.id == t.lane_id) {
            l.targets.push(t);
        }
    }
    Ok(lanes)
}

/// One lane, whoever asks.
pub async fn get(db: &Db, id: i64) -> Result<Lane, StoreError> {
    all(db)
        .await?
        .into_iter()
        .find(|l| l.id == id)
        .ok_or(StoreError::NotFound { what: "lane" })
}

/// A lane by id or name.
pub async fn find(db: &Db, lane: &str) -> Result<Lane, StoreError> {
    let lanes = all(db).await?;
    let id = lane.parse::<i64>().ok();
    lanes
        .into_iter()
        .find(|l| Some(l.id) == id || l.name.eq_ignore_ascii_case(lane))
        .ok_or(StoreError::NotFound { what: "lane" })
}

/// The lanes the caller may queue to (every lane for admins), with their targets.
pub async fn list(db: &Db, ctx: &Ctx) -> Result<Vec<Lane>, StoreError> {
    let actor = ctx
        .actor
        .ok_or_else(|| StoreError::Internal("lanes with no actor".into()))?;
    let denied = restrictions::denied_for(db, &actor).await?;
    Ok(all(db)
        .await?
        .into_iter()
        .filter(|l| !denied.contains(&l.id))
        .collect())
}

fn check_name(name: &str) -> Result<String, StoreError> {
    crate::labs::validate_name(name)
}

/// Creates a lane (`compute`).
pub async fn create(db: &Db, ctx: &Ctx, new: NewLane) -> Result<Lane, StoreError> {
    let target = AuditTarget {
        kind: "lane",
        id: None,
        name: Some(new.name.clone()),
    };
    let proof = ctx
        .authorize(db, COMPUTE, Resource::instance(), &target)
        .await?;
    let name = check_name(&new.name)?;
    let title = new
        .title
        .as_deref()
        .map(crate::labs::validate_title)
        .transpose()?
        .filter(|t| !t.is_empty());
    let description = new.description.unwrap_or_default();
    if description.chars().count() > 1000 {
        return Err(StoreError::invalid(
            "description",
            "must be at most 1000 characters",
        ));
    }
    if !new.targets.is_empty() && new.kind != LaneKind::Node {
        return Err(StoreError::invalid(
            "targets",
            "only node lanes take targets here: connect a cluster with `cryowarden cluster connect`",
        ));
    }
    let targets = new
        .targets
        .into_iter()
        .map(NodeTargetRow::check)
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = db.begin_write().await?;
    proof.require(COMPUTE)?;
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO lanes (name, name_key, title, description, kind, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(title.clone().unwrap_or_else(|| name.clone()))
    .bind(&description)
    .bind(new.kind.as_str())
    .bind(now)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| map_unique(e, &[("name_key", "name")]))?;
    let after =
        json!({ "name": name, "kind": new.kind, "title": title, "description": description });
    let target = AuditTarget {
        kind: "lane",
        id: Some(id.to_string()),
        name: Some(name),
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::CreateLane,
        &target,
        None,
        Some(after),
    )
    .await?;
    for row in &targets {
        row.insert(&mut tx, ctx, id, &target).await?;
    }
    tx.commit().await?;
    get(db, id).await
}

/// A node target's row, checked before any transaction opens.
struct NodeTargetRow {
    name: String,
    hostname: String,
    config: NodeConfig,
    custom_vars: BTreeMap<String, String>,
}

impl NodeTargetRow {
    fn check(new: NewNodeTarget) -> Result<NodeTargetRow, StoreError> {
        let name = check_name(&new.name)?;
        let c = &NodeConfig {
            cpus: new.cpus,
            ram_gb: new.ram_gb,
            gpus: new.gpus,
        };
        if c.cpus == 0 || c.cpus > 4096 {
            return Err(StoreError::invalid("cpus", "must be between 1 and 4096"));
        }
        if c.ram_gb == 0 || c.ram_gb > 65536 {
            return Err(StoreError::invalid("ram_gb", "must be between 1 and 65536"));
        }
        let mut ids: Vec<u32> = c.gpus.iter().map(|g| g.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != c.gpus.len() || c.gpus.len() > 64 {
            return Err(StoreError::invalid(
                "gpus",
                "GPU ids must be distinct (at most 64 GPUs)",
            ));
        }
        crate::jobs::check_custom_vars("custom_vars", &new.custom_vars)?;
        let hostname = new.hostname.unwrap_or_else(|| name.clone());
        Ok(NodeTargetRow {
            name,
            hostname,
            config: c.clone(),
            custom_vars: new.custom_vars,
        })
    }

    /// Inserts the target into lane `lane_id` with its audit event, inside `tx`.
    async fn insert(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        lane_id: i64,
        lane: &AuditTarget,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO targets (lane_id, name, name_key, kind, hostname, config, custom_vars, created_at, updated_at) \
             VALUES ($1, $2, $3, 'node', $4, $5, $6, $7, $7)",
        )
        .bind(lane_id)
        .bind(&self.name)
        .bind(self.name.to_lowercase())
        .bind(&self.hostname)
        .bind(serde_json::to_string(&self.config).unwrap_or_default())
        .bind(serde_json::to_string(&self.custom_vars).unwrap_or_default())
        .bind(now)
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| map_unique(e, &[("name_key", "name")]))?;
        let after =
            json!({ "target": self.name, "hostname": self.hostname, "config": self.config });
        ctx.audit_ok(
            tx,
            cryowarden_core::Event::AddTarget,
            lane,
            None,
            Some(after),
        )
        .await
    }
}

/// Removes a lane and its targets; queued jobs on it go back to building.
pub async fn remove(db: &Db, ctx: &Ctx, id: i64) -> Result<Lane, StoreError> {
    let lane = get(db, id).await?;
    let proof = ctx
        .authorize(db, COMPUTE, Resource::instance(), &lane.audit_target())
        .await?;
    let mut tx = db.begin_write().await?;
    proof.require(COMPUTE)?;
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE lane_id = $1 AND status IN ('launched', 'running')",
    )
    .bind(id)
    .fetch_one(&mut *tx.tx)
    .await?;
    if active > 0 {
        return Err(StoreError::InUse {
            field: "lane",
            message: format!(
                "{active} job(s) are running on `{}`: kill them or wait for them first",
                lane.name
            ),
        });
    }
    sqlx::query(
        "UPDATE jobs SET status = 'building', queue_state = NULL, queue_message = NULL, queued_seq = NULL, \
         lane_id = NULL, target_id = NULL WHERE lane_id = $1 AND status = 'queued'",
    )
    .bind(id)
    .execute(&mut *tx.tx)
    .await?;
    sqlx::query("DELETE FROM lanes WHERE id = $1")
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::RemoveLane,
        &lane.audit_target(),
        Some(json!({ "name": lane.name })),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(lane)
}

/// Adds a node target to a node lane.
pub async fn add_node_target(
    db: &Db,
    ctx: &Ctx,
    lane_id: i64,
    new: NewNodeTarget,
) -> Result<Lane, StoreError> {
    let lane = get(db, lane_id).await?;
    let proof = ctx
        .authorize(db, COMPUTE, Resource::instance(), &lane.audit_target())
        .await?;
    if lane.kind != LaneKind::Node {
        return Err(StoreError::invalid(
            "lane",
            "is a cluster lane: connect a cluster with `cryowarden cluster connect`",
        ));
    }
    let row = NodeTargetRow::check(new)?;
    let mut tx = db.begin_write().await?;
    proof.require(COMPUTE)?;
    row.insert(&mut tx, ctx, lane_id, &lane.audit_target())
        .await?;
    tx.commit().await?;
    get(db, lane_id).await
}

/// The local machine as a node target: its cores, its memory, and its GPUs from `nvidia-smi`
/// when present.
pub fn detect_local_node() -> NodeConfig {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let ram_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                })
        })
        .map_or(1, |kb| (kb / (1024 * 1024)).max(1) as u32);
    let gpus = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(',').map(str::trim).collect();
                    Some(Gpu {
                        id: f.first()?.parse().ok()?,
                        name: f.get(1)?.to_string(),
                        mem_mb: f.get(2)?.parse().ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    NodeConfig { cpus, ram_gb, gpus }
}

/// On a fresh instance, one local node lane (`default`, target `localhost`), made by the server
/// itself and audited as such.
pub async fn ensure_default_lane(db: &Db) -> Result<(), StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lanes")
        .fetch_one(&db.pool)
        .await?;
    if n > 0 {
        return Ok(());
    }
    let config = tokio::task::spawn_blocking(detect_local_node)
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    let ctx = Ctx::system("default-lane", "server");
    let proof = cryowarden_core::Allowed::system(COMPUTE, "default-lane", None);
    let mut tx = db.begin_write().await?;
    proof.require(COMPUTE)?;
    let again: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lanes")
        .fetch_one(&mut *tx.tx)
        .await?;
    if again > 0 {
        return Ok(());
    }
    let now = now_ms();
    let lane: i64 = sqlx::query_scalar(
        "INSERT INTO lanes (name, name_key, title, description, kind, created_at, updated_at) \
         VALUES ('default', 'default', 'Default (this machine)', 'The machine cryowarden runs on', 'node', $1, $1) RETURNING id",
    )
    .bind(now)
    .fetch_one(&mut *tx.tx)
    .await?;
    sqlx::query(
        "INSERT INTO targets (lane_id, name, name_key, kind, hostname, config, created_at, updated_at) \
         VALUES ($1, 'localhost', 'localhost', 'node', 'localhost', $2, $3, $3)",
    )
    .bind(lane)
    .bind(serde_json::to_string(&config).unwrap_or_default())
    .bind(now)
    .execute(&mut *tx.tx)
    .await?;
    let target = AuditTarget {
        kind: "lane",
        id: Some(lane.to_string()),
        name: Some("default".into()),
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::CreateLane,
        &target,
        None,
        Some(json!({ "name": "default", "config": config })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// CryoSPARC's two cluster files, as `cryowarden cluster connect` sends them.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectCluster {
    /// The cluster_info.json, as JSON.
    #[schema(value_type = Object)]
    pub info: serde_json::Value,
    /// The cluster_script.sh template.
    pub script: String,
}

/// A connected cluster's lane, and what will not work as the files expect.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectedCluster {
    #[serde(flatten)]
    pub lane: Lane,
    /// Things that will not work as the files seem to expect (a script that never runs
    /// `{{ run_cmd }}`...); empty when none.
    pub warnings: Vec<String>,
}

/// What a connected cluster's files will not do as they seem to expect.
fn cluster_warnings(info: &crate::cluster::ClusterInfo, script: &str) -> Vec<String> {
    use crate::cluster::template::uses_variable;
    let mut warnings = Vec::new();
    if !uses_variable(script, "run_cmd") {
        warnings.push(
            "cluster_script.sh never uses {{ run_cmd }}: its jobs will not run the job's command (put \
             {{ run_cmd }} where CryoSPARC's worker command would go)"
                .to_owned(),
        );
    }
    for (field, tpl) in [
        ("qstat_cmd_tpl", &info.qstat_cmd_tpl),
        ("qdel_cmd_tpl", &info.qdel_cmd_tpl),
    ] {
        if !uses_variable(tpl, "cluster_job_id") {
            warnings.push(format!(
                "{field} never uses {{{{ cluster_job_id }}}}: it cannot name the job it is for"
            ));
        }
    }
    if info.name != info.lane_name() {
        warnings.push(format!(
            "the name {:?} cannot be a lane name: the lane is `{}` (the name stays its title)",
            info.name,
            info.lane_name()
        ));
    }
    warnings
}

/// Adds or updates a cluster target (and its lane, named after it): `cluster connect`. Refuses
/// only what cannot work: a template that does not render (each is rendered once with sample
/// values), a `send_cmd_tpl` that never sends the command, another scheduler's commands.
pub async fn connect_cluster(
    db: &Db,
    ctx: &Ctx,
    req: ConnectCluster,
) -> Result<ConnectedCluster, StoreError> {
    let info = crate::cluster::ClusterInfo::from_value(req.info)?;
    crate::cluster::template::check_script(&req.script)?;
    for (field, tpl) in info.cmd_templates() {
        crate::cluster::template::check(tpl, field)?;
    }
    info.check_scheduler()?;
    if !crate::cluster::template::uses_variable(&info.send_cmd_tpl, "command") {
        return Err(StoreError::invalid(
            "send_cmd_tpl",
            "never uses {{ command }}: it must run the command it is given, e.g. `ssh loginnode {{ command }}`",
        ));
    }
    let templates: Vec<(&'static str, &str)> = info.cmd_templates().to_vec();
    crate::cluster::template::check_renders(&req.script, &templates, &BTreeMap::new())?;
    let warnings = cluster_warnings(&info, &req.script);
    let name = check_name(&info.lane_name())?;
    let target = AuditTarget {
        kind: "lane",
        id: None,
        name: Some(name.clone()),
    };
    let proof = ctx
        .authorize(db, COMPUTE, Resource::instance(), &target)
        .await?;
    let mut tx = db.begin_write().await?;
    proof.require(COMPUTE)?;
    let now = now_ms();
    let existing: Option<(i64, String)> =
        sqlx::query("SELECT id, kind FROM lanes WHERE name_key = $1")
            .bind(name.to_lowercase())
            .fetch_optional(&mut *tx.tx)
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("kind")?)))
            .transpose()?;
    if let Some((id, _)) = &existing {
        // The lane of another cluster whose name maps to the same lane name: refuse, never merge.
        let configs: Vec<String> =
            sqlx::query_scalar("SELECT config FROM targets WHERE lane_id = $1")
                .bind(*id)
                .fetch_all(&mut *tx.tx)
                .await?;
        let other = configs.iter().find_map(|c| {
            let v: serde_json::Value = serde_json::from_str(c).ok()?;
            let theirs = v.get("name")?.as_str()?.to_owned();
            (theirs != info.name).then_some(theirs)
        });
        if let Some(other) = other {
            return Err(StoreError::invalid(
                "name",
                format!(
                    "lane `{name}` already holds the cluster {other:?}: give this cluster another name"
                ),
            ));
        }
    }
    let lane_id = match existing {
        Some((_, kind)) if kind != "cluster" => {
            return Err(StoreError::invalid(
                "name",
                format!("`{name}` is a node lane: give the cluster another name"),
            ));
        }
        Some((id, _)) => {
            sqlx::query("UPDATE lanes SET title = $1, updated_at = $2 WHERE id = $3")
                .bind(&info.title)
                .bind(now)
                .bind(id)
                .execute(&mut *tx.tx)
                .await?;
            id
        }
        None => sqlx::query_scalar(
            "INSERT INTO lanes (name, name_key, title, description, kind, created_at, updated_at) \
                 VALUES ($1, $2, $3, '', 'cluster', $4, $4) RETURNING id",
        )
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(&info.title)
        .bind(now)
        .fetch_one(&mut *tx.tx)
        .await?,
    };
    let updated = sqlx::query(
        "UPDATE targets SET config = $1, script = $2, updated_at = $3 WHERE lane_id = $4 AND name_key = $5",
    )
    .bind(info.to_json())
    .bind(&req.script)
    .bind(now)
    .bind(lane_id)
    .bind(name.to_lowercase())
    .execute(&mut *tx.tx)
    .await?
    .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO targets (lane_id, name, name_key, kind, hostname, config, script, created_at, updated_at) \
             VALUES ($1, $2, $3, 'cluster', '', $4, $5, $6, $6)",
        )
        .bind(lane_id)
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(info.to_json())
        .bind(&req.script)
        .bind(now)
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| map_unique(e, &[("name_key", "name")]))?;
    }
    let target = AuditTarget {
        kind: "lane",
        id: Some(lane_id.to_string()),
        name: Some(name),
    };
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::ConnectCluster,
        &target,
        None,
        Some(json!({ "info": info, "script": req.script })),
    )
    .await?;
    tx.commit().await?;
    Ok(ConnectedCluster {
        lane: get(db, lane_id).await?,
        warnings,
    })
}

/// The custom variables of one target, replacing its current ones (`cluster-custom-variables`).
pub async fn set_target_vars(
    db: &Db,
    ctx: &Ctx,
    target_id: i64,
    vars: BTreeMap<String, String>,
) -> Result<Lane, StoreError> {
    const ACTION: Action = Action::ChangeSetting {
        setting: Setting::ClusterCustomVariables,
        field: None,
    };
    let lane = all(db)
        .await?
        .into_iter()
        .find(|l| l.targets.iter().any(|t| t.id == target_id))
        .ok_or(StoreError::NotFound { what: "target" })?;
    let proof = ctx
        .authorize(db, ACTION, Resource::instance(), &lane.audit_target())
        .await?;
    for (k, v) in &vars {
        crate::cluster::template::check_custom("custom_vars", k, v)?;
    }
    let before = lane
        .targets
        .iter()
        .find(|t| t.id == target_id)
        .map(|t| t.custom_vars.clone());
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    sqlx::query("UPDATE targets SET custom_vars = $1, updated_at = $2 WHERE id = $3")
        .bind(serde_json::to_string(&vars).unwrap_or_default())
        .bind(now_ms())
        .bind(target_id)
        .execute(&mut *tx.tx)
        .await?;
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::SetTargetCustomVars,
        &lane.audit_target(),
        before.map(|b| json!(b)),
        Some(json!(vars)),
    )
    .await?;
    tx.commit().await?;
    get(db, lane.id).await
}

/// The instance-wide custom variables, replacing the current ones (`cluster-custom-variables`).
pub async fn set_instance_vars(
    db: &Db,
    ctx: &Ctx,
    vars: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, StoreError> {
    const ACTION: Action = Action::ChangeSetting {
        setting: Setting::ClusterCustomVariables,
        field: None,
    };
    let target = AuditTarget {
        kind: "setting",
        id: Some("cluster_custom_vars".into()),
        name: None,
    };
    let proof = ctx
        .authorize(db, ACTION, Resource::instance(), &target)
        .await?;
    for (k, v) in &vars {
        crate::cluster::template::check_custom("custom_vars", k, v)?;
    }
    let before = crate::scheduler::cluster::instance_vars(db).await?;
    let mut tx = db.begin_write().await?;
    proof.require(ACTION)?;
    let value = serde_json::to_string(&vars).unwrap_or_default();
    let now = now_ms();
    let updated =
        sqlx::query("UPDATE instance_settings SET value = $1, updated_at = $2 WHERE key = 'cluster_custom_vars'")
            .bind(&value)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
    if updated == 0 {
        sqlx::query("INSERT INTO instance_settings (key, value, updated_at) VALUES ('cluster_custom_vars', $1, $2)")
            .bind(&value)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
    }
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::SetInstanceCustomVars,
        &target,
        Some(json!(before)),
        Some(json!(vars)),
    )
    .await?;
    tx.commit().await?;
    Ok(vars)
}
