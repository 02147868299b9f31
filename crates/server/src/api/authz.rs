//! `GET /api/v1/authz/explain`: the permission explainer (`crate::explain`). Visible to those
//! who may update site permissions (Site and Application Admins); a refused request is audited.

use std::sync::Arc;

use axum::extract::State;

use crate::explain::{ExplainQuery, Explanation};
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiQuery, Caller};
use crate::state::AppState;

/// What `authorize()` decides for an actor, an action and a resource, and why.
#[utoipa::path(
    get,
    path = "/api/v1/authz/explain",
    tag = "users",
    params(ExplainQuery),
    responses(
        (status = 200, body = Explanation),
        (status = 403, body = Problem),
        (status = 422, body = Problem),
    ),
)]
pub async fn explain(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExplainQuery>,
) -> ApiResult<axum::Json<Explanation>> {
    Ok(axum::Json(
        crate::explain::explain(&state, &caller.ctx(), &q).await?,
    ))
}
