//! A cluster lane's `qinfo_cmd_tpl` (e.g. `sinfo`) run on demand, as `cluster validate` does
//! first, and the instance-wide custom variables read: each after its read check.

use std::collections::BTreeMap;

use crate::context::{Ctx, Target};
use crate::error::StoreError;
use crate::lanes;
use crate::services::Services;

/// What a cluster's `qinfo_cmd_tpl` printed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClusterInfoOutput {
    pub command: String,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Which lab's account runs a cluster's `qinfo_cmd_tpl`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClusterInfoQuery {
    /// A project whose lab's Unix account runs the command (required: cluster commands run as a
    /// lab's account, never as the server).
    pub project: Option<i64>,
}

/// Runs the lane's `qinfo_cmd_tpl` with `/bin/sh -c`, through the lane's `send_cmd_tpl`, as the
/// Unix account of the lab of `project` (which the caller must be able to see), after the
/// `compute` read check.
pub async fn cluster_info(
    services: &Services,
    ctx: &Ctx,
    id: i64,
    q: &ClusterInfoQuery,
) -> Result<ClusterInfoOutput, StoreError> {
    use crate::cluster::template::{render_command, send_line};
    let lane = lanes::get(&services.db, id).await?;
    let read = cryowarden_core::Action::ReadSetting(cryowarden_core::Setting::Compute);
    let _may_read = ctx
        .authorize(
            &services.db,
            read,
            cryowarden_core::Resource::instance(),
            &lane.audit_target(),
        )
        .await?;
    let target = lane
        .targets
        .first()
        .filter(|_| lane.kind == lanes::LaneKind::Cluster)
        .ok_or_else(|| StoreError::Unsupported {
            field: "lane",
            code: "not-a-cluster",
            message: format!("`{}` is not a cluster lane", lane.name),
        })?;
    let project = q.project.ok_or_else(|| {
        StoreError::invalid(
            "project",
            "is required: the cluster's commands run as a lab's Unix account; name a project of \
             that lab (`cryowarden cluster validate NAME --project LAB/PROJECT`)",
        )
    })?;
    let project = crate::projects::show(&services.db, ctx, project).await?;
    let lab = crate::labs::get(&services.db, project.lab_id).await?;
    let account = crate::projects::lab_account(&lab)?;
    let info = crate::cluster::ClusterInfo::from_value(target.config.clone())?;
    let custom = crate::cluster::CustomValues {
        instance: crate::scheduler::cluster::instance_vars(&services.db).await?,
        target: target.custom_vars.clone(),
        job: Default::default(),
    };
    let line = render_command(
        &info.qinfo_cmd_tpl,
        "qinfo_cmd_tpl",
        &Default::default(),
        &custom,
    )?;
    let line = send_line(&info.send_cmd_tpl, &line, &Default::default(), &custom)?;
    let slurm = crate::cluster::Slurm::default();
    let timeout = std::time::Duration::from_secs(20);
    let out = match slurm
        .run_line(&services.runner, &account, &line, &project.dir(), timeout)
        .await
    {
        Ok(out) => out,
        Err(crate::cluster::SlurmError::Runner(e)) => {
            return Err(StoreError::Runner(e));
        }
        Err(e) => {
            return Ok(ClusterInfoOutput {
                command: line,
                exit_code: None,
                stdout: String::new(),
                stderr: e.to_string(),
            });
        }
    };
    Ok(ClusterInfoOutput {
        command: line,
        exit_code: out.exit_code,
        stdout: out.stdout.chars().take(64 << 10).collect(),
        stderr: out.stderr.chars().take(64 << 10).collect(),
    })
}

/// The instance-wide custom variables, after the `cluster-custom-variables` read check.
pub async fn instance_vars(
    services: &Services,
    ctx: &Ctx,
) -> Result<BTreeMap<String, String>, StoreError> {
    let read =
        cryowarden_core::Action::ReadSetting(cryowarden_core::Setting::ClusterCustomVariables);
    let target = Target {
        kind: "setting",
        id: Some("cluster_custom_vars".into()),
        name: None,
    };
    let _may_read = ctx
        .authorize(
            &services.db,
            read,
            cryowarden_core::Resource::instance(),
            &target,
        )
        .await?;
    crate::scheduler::cluster::instance_vars(&services.db).await
}
