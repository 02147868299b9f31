//! `/api/v1/projects`: projects, their members and groups, workspaces, files and data management;
//! and `/api/v1/labs/{id}/browse`, the import dialog's view of a lab's data roots.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use crate::audit::Outcome;
use crate::context::Target;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiQuery, Caller, Id, parse_id};
use crate::labs;
use crate::paths::{Listing, RelPath};
use crate::projects::data::{self, ConfirmDelete, DataChange};
use crate::projects::members::{self, NewGroup, ProjectGroup, ProjectMember, SetProjectMember};
use crate::projects::workspaces::{self, NewWorkspace, SetFolderAdmins, Workspace, WorkspacePatch};
use crate::projects::{self, ListQuery, NewProject, Project, ProjectPage, ProjectPatch};
use crate::state::AppState;

/// Projects the caller may see: all for admins and troubleshooters; else those of their labs
/// that lab members may read, and those they are members of.
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    tag = "projects",
    params(ListQuery),
    responses(
        (status = 200, body = ProjectPage),
        (status = 400, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<axum::Json<ProjectPage>> {
    Ok(axum::Json(
        projects::list(&state.db, &caller.ctx(), &q).await?,
    ))
}

/// Create a project in a lab: its directory is made under the lab's project root by the runner,
/// as the lab's Unix account, mode 2770. The creator becomes its project admin.
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    tag = "projects",
    request_body = NewProject,
    responses(
        (status = 201, body = Project),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewProject>,
) -> ApiResult<(StatusCode, axum::Json<Project>)> {
    let p = projects::create(&state.db, &state.runner, &caller.ctx(), new).await?;
    Ok((StatusCode::CREATED, axum::Json(p)))
}

/// One project.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}",
    tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = Project), (status = 404, body = Problem)),
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Project>> {
    Ok(axum::Json(
        projects::show(&state.db, &caller.ctx(), id).await?,
    ))
}

/// Change a project's title, description, or whether its lab's members may read it.
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}",
    tag = "projects",
    params(("id" = i64, Path)),
    request_body = ProjectPatch,
    responses(
        (status = 200, body = Project),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(patch): ApiJson<ProjectPatch>,
) -> ApiResult<axum::Json<Project>> {
    Ok(axum::Json(
        projects::update(&state.db, &caller.ctx(), id, patch).await?,
    ))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Delete the record even though the project's directory is still on disk (it is left there).
    #[serde(default)]
    pub keep_data: bool,
}

/// Delete a project's record (Site and Application Admins). Its data must be deleted first,
/// unless `keep_data=true`.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}",
    tag = "projects",
    params(("id" = i64, Path), DeleteQuery),
    responses(
        (status = 204),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ),
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    projects::delete(&state.db, &caller.ctx(), id, q.keep_data).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a project.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/members",
    tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ProjectMember>), (status = 404, body = Problem)),
)]
pub async fn list_members(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<ProjectMember>>> {
    Ok(axum::Json(
        members::list(&state.db, &caller.ctx(), id).await?,
    ))
}

/// Add a member (who must belong to the project's lab) or change a member's role.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/members",
    tag = "projects",
    params(("id" = i64, Path)),
    request_body = SetProjectMember,
    responses(
        (status = 200, body = Vec<ProjectMember>),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<SetProjectMember>,
) -> ApiResult<axum::Json<Vec<ProjectMember>>> {
    Ok(axum::Json(
        members::set(&state.db, &caller.ctx(), id, req).await?,
    ))
}

/// Remove a member's direct role.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/members/{user_id}",
    tag = "projects",
    params(("id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
)]
pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, user_id) = (parse_id(&id, "id")?, parse_id(&user_id, "user_id")?);
    members::remove(&state.db, &caller.ctx(), id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The groups of a project.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/groups",
    tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ProjectGroup>), (status = 404, body = Problem)),
)]
pub async fn list_groups(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<ProjectGroup>>> {
    Ok(axum::Json(
        members::groups(&state.db, &caller.ctx(), id).await?,
    ))
}

/// Create a project group whose members hold its role.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/groups",
    tag = "projects",
    params(("id" = i64, Path)),
    request_body = NewGroup,
    responses(
        (status = 201, body = Vec<ProjectGroup>),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn create_group(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<NewGroup>,
) -> ApiResult<(StatusCode, axum::Json<Vec<ProjectGroup>>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(members::create_group(&state.db, &caller.ctx(), id, req).await?),
    ))
}

/// Delete a project group.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/groups/{group_id}",
    tag = "projects",
    params(("id" = i64, Path), ("group_id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
)]
pub async fn delete_group(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, group)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, group) = (parse_id(&id, "id")?, parse_id(&group, "group_id")?);
    members::delete_group(&state.db, &caller.ctx(), id, group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a user to a project group.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/groups/{group_id}/members/{user_id}",
    tag = "projects",
    params(("id" = i64, Path), ("group_id" = i64, Path), ("user_id" = i64, Path)),
    responses(
        (status = 200, body = Vec<ProjectGroup>),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn add_group_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, group, user)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<Vec<ProjectGroup>>> {
    let (id, group, user) = (
        parse_id(&id, "id")?,
        parse_id(&group, "group_id")?,
        parse_id(&user, "user_id")?,
    );
    Ok(axum::Json(
        members::set_group_member(&state.db, &caller.ctx(), id, group, user, true).await?,
    ))
}

/// Remove a user from a project group.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/groups/{group_id}/members/{user_id}",
    tag = "projects",
    params(("id" = i64, Path), ("group_id" = i64, Path), ("user_id" = i64, Path)),
    responses(
        (status = 200, body = Vec<ProjectGroup>),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn remove_group_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, group, user)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<Vec<ProjectGroup>>> {
    let (id, group, user) = (
        parse_id(&id, "id")?,
        parse_id(&group, "group_id")?,
        parse_id(&user, "user_id")?,
    );
    Ok(axum::Json(
        members::set_group_member(&state.db, &caller.ctx(), id, group, user, false).await?,
    ))
}

/// The workspaces of a project.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/workspaces",
    tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Workspace>), (status = 404, body = Problem)),
)]
pub async fn list_workspaces(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<Vec<Workspace>>> {
    Ok(axum::Json(
        workspaces::list(&state.db, &caller.ctx(), id).await?,
    ))
}

/// Create a workspace (project admins, folder admins of the parent, admins).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/workspaces",
    tag = "projects",
    params(("id" = i64, Path)),
    request_body = NewWorkspace,
    responses(
        (status = 201, body = Workspace),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn create_workspace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<NewWorkspace>,
) -> ApiResult<(StatusCode, axum::Json<Workspace>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(workspaces::create(&state.db, &caller.ctx(), id, req).await?),
    ))
}

/// Delete a workspace and its subfolders.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/workspaces/{workspace_id}",
    tag = "projects",
    params(("id" = i64, Path), ("workspace_id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
)]
pub async fn delete_workspace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, ws)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, ws) = (parse_id(&id, "id")?, parse_id(&ws, "workspace_id")?);
    workspaces::delete(&state.db, &caller.ctx(), id, ws).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rename a workspace or change its title (its folder admins, project admins, admins).
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}/workspaces/{workspace_id}",
    tag = "projects",
    params(("id" = i64, Path), ("workspace_id" = i64, Path)),
    request_body = WorkspacePatch,
    responses(
        (status = 200, body = Workspace),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn update_workspace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, ws)): Path<(String, String)>,
    ApiJson(patch): ApiJson<WorkspacePatch>,
) -> ApiResult<axum::Json<Workspace>> {
    let (id, ws) = (parse_id(&id, "id")?, parse_id(&ws, "workspace_id")?);
    Ok(axum::Json(
        workspaces::update(&state.db, &caller.ctx(), id, ws, patch).await?,
    ))
}

/// Replace the folder admins of a workspace.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/workspaces/{workspace_id}/admins",
    tag = "projects",
    params(("id" = i64, Path), ("workspace_id" = i64, Path)),
    request_body = SetFolderAdmins,
    responses(
        (status = 200, body = Workspace),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn set_folder_admins(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, ws)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetFolderAdmins>,
) -> ApiResult<axum::Json<Workspace>> {
    let (id, ws) = (parse_id(&id, "id")?, parse_id(&ws, "workspace_id")?);
    Ok(axum::Json(
        workspaces::set_admins(&state.db, &caller.ctx(), id, ws, req).await?,
    ))
}

/// A browse request's query, decoded strictly: unknown keys, bad numbers and paths that are not
/// valid UTF-8 are refused (form decoding would silently replace invalid bytes).
#[derive(Debug, Default)]
pub struct BrowseParams {
    pub root: Option<String>,
    pub path: String,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

fn decode(raw: &str) -> Vec<u8> {
    percent_encoding::percent_decode(raw.replace('+', " ").as_bytes()).collect()
}

/// Decodes the query; a path that is refused for what it is comes back as `Err(Ok(..))` so that
/// the caller can audit it, any other fault as `Err(Err(..))`.
fn browse_params(
    raw: Option<&str>,
    with_root: bool,
) -> Result<BrowseParams, Result<crate::paths::PathError, ApiError>> {
    let mut p = BrowseParams::default();
    let number = |field: &'static str,
                  v: &[u8]|
     -> Result<usize, Result<crate::paths::PathError, ApiError>> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    "must be a non-negative integer",
                )
                .field(field))
            })
    };
    for pair in raw.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match decode(k).as_slice() {
            b"path" => p.path = RelPath::from_bytes(&v).map_err(Ok)?.as_str().to_owned(),
            b"root" if with_root => {
                p.root = Some(
                    String::from_utf8(v).map_err(|_| Ok(crate::paths::PathError::InvalidUtf8))?,
                );
            }
            b"offset" => p.offset = Some(number("offset", &v)?),
            b"limit" => p.limit = Some(number("limit", &v)?),
            other => {
                let shown: String = String::from_utf8_lossy(other).chars().take(40).collect();
                return Err(Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    format!(
                        "unknown query parameter `{shown}`: use path, offset, limit{}",
                        if with_root { ", root" } else { "" }
                    ),
                )
                .field(shown)));
            }
        }
    }
    Ok(p)
}

/// List a directory beneath one of a lab's data roots (the import dialog). Allowed by the lab's
/// import policy; runs as the lab's Unix account; paths are resolved beneath the root by the
/// kernel. Refusals are audited.
#[utoipa::path(
    get,
    path = "/api/v1/labs/{id}/browse",
    tag = "labs",
    params(
        ("id" = i64, Path),
        ("root" = Option<String>, Query),
        ("path" = Option<String>, Query),
        ("offset" = Option<usize>, Query),
        ("limit" = Option<usize>, Query),
    ),
    responses(
        (status = 200, body = Listing),
        (status = 400, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn browse_lab(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::Json<Listing>> {
    let ctx = caller.ctx();
    let lab = labs::show(&state.db, &ctx, id).await?;
    let _may_import = labs::browse::authorize_import(&state.db, &ctx, &lab).await?;
    let params = match browse_params(raw.as_deref(), true) {
        Ok(p) => p,
        Err(e) => {
            return Err(refused(
                &state,
                &ctx,
                cryowarden_core::Event::BrowseLabData,
                &lab.audit_target(),
                e,
            )
            .await);
        }
    };
    let q = labs::browse::BrowseQuery {
        root: params.root,
        path: params.path,
        offset: params.offset,
        limit: params.limit,
    };
    Ok(axum::Json(
        labs::browse::browse(&state.db, &state.runner, &ctx, id, &q).await?,
    ))
}

/// Audits a path refused while decoding the request, and turns it into the answer.
async fn refused(
    state: &AppState,
    ctx: &crate::context::Ctx,
    action: cryowarden_core::Event,
    target: &Target,
    e: Result<crate::paths::PathError, ApiError>,
) -> ApiError {
    match e {
        Ok(path_error) => {
            let reason = format!("{}: {path_error}", path_error.code());
            if let Err(err) = ctx
                .record(
                    &state.db,
                    action,
                    target,
                    Outcome::Denied,
                    Some(reason),
                    None,
                    None,
                )
                .await
            {
                return err.into();
            }
            crate::error::StoreError::Path(path_error).into()
        }
        Err(api) => api,
    }
}

/// List a directory of a project's files (as the lab's Unix account).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/files",
    tag = "projects",
    params(
        ("id" = i64, Path),
        ("path" = Option<String>, Query),
        ("offset" = Option<usize>, Query),
        ("limit" = Option<usize>, Query),
    ),
    responses(
        (status = 200, body = Listing),
        (status = 400, body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
    ),
)]
pub async fn browse_project(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::Json<Listing>> {
    let ctx = caller.ctx();
    let project = projects::show(&state.db, &ctx, id).await?;
    let params = match browse_params(raw.as_deref(), false) {
        Ok(p) => p,
        Err(e) => {
            return Err(refused(
                &state,
                &ctx,
                cryowarden_core::Event::BrowseProjectFiles,
                &project.audit_target(),
                e,
            )
            .await);
        }
    };
    let q = data::BrowseQuery {
        path: params.path,
        offset: params.offset,
        limit: params.limit,
    };
    Ok(axum::Json(
        data::browse(&state.db, &state.runner, &ctx, id, &q).await?,
    ))
}

/// Make a project's data read-only in place and mark it archived (live data management).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/data/archive",
    tag = "projects",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = DataChange),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ),
)]
pub async fn archive_data(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<axum::Json<DataChange>> {
    Ok(axum::Json(
        data::archive(&state.db, &state.runner, &caller.ctx(), id).await?,
    ))
}

/// Delete a project's data (live data management): the body repeats the project's name.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/data/delete",
    tag = "projects",
    params(("id" = i64, Path)),
    request_body = ConfirmDelete,
    responses(
        (status = 200, body = DataChange),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn delete_data(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    ApiJson(req): ApiJson<ConfirmDelete>,
) -> ApiResult<axum::Json<DataChange>> {
    Ok(axum::Json(
        data::delete(&state.db, &state.runner, &caller.ctx(), id, req).await?,
    ))
}
