//! One error shape for the whole API: `application/problem+json` with a stable `code`.
//! A client's fault is a 4xx naming what to fix; internal failures are logged, never shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use cryowarden_core::{Action, DataAction};

use crate::error::StoreError;
use crate::runner::RunnerError;

/// RFC 9457 problem details, plus `code` (stable, machine-readable) and `field`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/CODE`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable code, e.g. `invalid-field`, `conflict`, `forbidden`, `not-found`.
    pub code: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in (POST /api/v1/auth/login) or send an API token as `Authorization: Bearer cwt_...`",
        )
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no such {what}"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict { field } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", format!("{field} is already taken: choose another"))
                    .field(field)
            }
            StoreError::InUse { field, message } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", format!("{field}: {message}")).field(field)
            }
            StoreError::NotFound { what } => ApiError::not_found(what),
            StoreError::Impersonating(why) => ApiError::new(StatusCode::FORBIDDEN, "impersonating", why),
            StoreError::Invalid { field, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", format!("{field} {message}"))
                    .field(field)
            }
            StoreError::Unsupported { field, code, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, format!("{field} {message}")).field(field)
            }
            StoreError::BadToken => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-token",
                "the token is unknown, already used or expired: ask an admin for a new one",
            )
            .field("token"),
            StoreError::LaneNotAllowed { lane } => ApiError::new(
                StatusCode::FORBIDDEN,
                "lane-not-allowed",
                format!("lane `{lane}` is not among your allowed lanes: choose one of yours (GET /api/v1/lanes) or ask an admin"),
            )
            .field("lane"),
            StoreError::UserLimit { cap } => ApiError::new(
                StatusCode::CONFLICT,
                "user-limit",
                format!("the instance is limited to {cap} active users (admin console, limit-active-users): deactivate someone or ask a Site Admin to raise the cap"),
            ),
            StoreError::SmtpFailed { reply } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "smtp-failed", format!("the mail server said: {reply}"))
            }
            StoreError::Denied(d) if d.conceal => ApiError::not_found(concealed_what(d.action)),
            // While impersonating, the real person's own account is out of reach (issue 11):
            // a 403 with its own stable code, so that a client can tell it from a role bound.
            StoreError::Denied(d) if d.rule == "impersonator-own-account" => {
                ApiError::new(StatusCode::FORBIDDEN, "impersonator-own-account", format!("denied: {}", d.reason))
            }
            StoreError::Denied(d) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("denied: {}", d.reason)),
            StoreError::Path(e) => {
                let code = e.code();
                ApiError::new(path_status(code), code, e.to_string()).field("path")
            }
            StoreError::Runner(RunnerError::Refused { code, message }) => {
                let (status, code) = runner_code(&code);
                let err = ApiError::new(status, code, message);
                if code.starts_with("path-") { err.field("path") } else { err }
            }
            StoreError::Runner(RunnerError::Unavailable(message)) => {
                tracing::error!(%message, "the runner is unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "runner-unavailable",
                    "the file operation could not run as the lab's account: the runner is unavailable; an admin should check the server log",
                )
            }
            StoreError::Db(sqlx::Error::PoolTimedOut) => {
                tracing::error!("database pool timed out");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is not answering; try again shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

/// What a concealed refusal says does not exist.
fn concealed_what(action: Action) -> &'static str {
    match action {
        Action::Data(DataAction::ImportData | DataAction::CreateLabProject) => "lab",
        _ => "project",
    }
}

/// The status of a path refusal, by its code.
fn path_status(code: &str) -> StatusCode {
    match code {
        "path-escapes-root"
        | "path-symlink-loop"
        | "path-permission-denied"
        | "permission-denied" => StatusCode::FORBIDDEN,
        "path-not-found" => StatusCode::NOT_FOUND,
        "path-symlink-refused" | "path-is-root" | "path-ends-in-dot-dot" => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        "path-not-a-directory"
        | "path-is-a-directory"
        | "path-not-a-file"
        | "page-limit-out-of-range"
        | "exists" => StatusCode::UNPROCESSABLE_ENTITY,
        "path-io-error" | "path-resolution-unsupported" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The stable code and status of a runner refusal. Codes are matched against the known set so
/// that the API only ever answers codes it documents.
fn runner_code(code: &str) -> (StatusCode, &'static str) {
    const PATH_CODES: &[&str] = &[
        "path-absolute",
        "path-nul-byte",
        "path-invalid-utf8",
        "path-too-long",
        "path-component-too-long",
        "path-control-character",
        "path-escapes-root",
        "path-symlink-loop",
        "path-not-found",
        "path-not-a-directory",
        "path-is-a-directory",
        "path-not-a-file",
        "path-permission-denied",
        "permission-denied",
        "page-limit-out-of-range",
        "path-resolution-unsupported",
        "path-io-error",
        "path-symlink-refused",
        "path-is-root",
        "path-ends-in-dot-dot",
        "exists",
    ];
    if let Some(&c) = PATH_CODES.iter().find(|&&c| c == code) {
        let status = if c == "exists" {
            StatusCode::CONFLICT
        } else {
            path_status(c)
        };
        return (status, c);
    }
    match code {
        // The lab's Unix account is refused by the runner: an admin's configuration to fix.
        "account-refused" => (StatusCode::CONFLICT, "account-refused"),
        "runner-not-configured" => (StatusCode::SERVICE_UNAVAILABLE, "runner-not-configured"),
        "name-not-a-component" => (StatusCode::UNPROCESSABLE_ENTITY, "name-not-a-component"),
        "tree-too-deep" => (StatusCode::UNPROCESSABLE_ENTITY, "tree-too-deep"),
        "root-not-utf8" => (StatusCode::CONFLICT, "root-unavailable"),
        "privilege-drop-failed" => (StatusCode::SERVICE_UNAVAILABLE, "privilege-drop-failed"),
        "root-not-found" | "root-not-a-directory" | "root-is-symlink" | "root-not-absolute" => {
            (StatusCode::CONFLICT, "root-unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "runner-error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let body = Problem {
            kind: format!("/problems/{}", self.code),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            field: self.field,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cryowarden\""),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
