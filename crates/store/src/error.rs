//! The storage and domain error type. HTTP maps it to problem+json in the server's `http::error`.

use cryowarden_core::{Denied, WrongProof};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("configuration: {0}")]
    Config(String),
    /// A unique field already holds this value.
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// The change conflicts with the current state (not a taken name): says what to do first.
    #[error("{field}: {message}")]
    InUse {
        field: &'static str,
        message: String,
    },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// Input that breaks a domain rule: names the field and says what is wrong.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Input that is well formed but asks for something cryowarden does not do (a cluster file
    /// of another scheduler): a stable `code` of its own, the field, and what to do instead.
    #[error("{field}: {message}")]
    Unsupported {
        field: &'static str,
        code: &'static str,
        message: String,
    },
    /// The token is unknown, used or expired.
    #[error("the token is invalid, used or expired")]
    BadToken,
    #[error("{}", .0.reason)]
    Denied(Box<Denied>),
    #[error("{0}")]
    WrongProof(#[from] WrongProof),
    /// The caller may not queue to this lane (lane restrictions).
    #[error("lane `{lane}` is not among your allowed lanes")]
    LaneNotAllowed { lane: String },
    /// A user-supplied path refused before any file was touched.
    #[error(transparent)]
    Path(#[from] cryowarden_paths::PathError),
    /// The runner (acting as a lab's Unix account) refused or could not run.
    #[error(transparent)]
    Runner(#[from] cryowarden_runner::error::RunnerError),
    /// Refused while the session impersonates (API tokens, a second impersonation): says why.
    #[error("{0}")]
    Impersonating(&'static str),
    /// The cap on active users (admin console, limit-active-users) is reached.
    #[error("the instance is limited to {cap} active users")]
    UserLimit { cap: i64 },
    /// The SMTP server refused or could not be reached (admin console, email).
    #[error("SMTP: {reply}")]
    SmtpFailed { reply: String },
    #[error("internal: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<Denied> for StoreError {
    fn from(d: Denied) -> Self {
        StoreError::Denied(Box::new(d))
    }
}

/// Maps a unique-constraint violation to a conflict naming the field; other errors pass.
pub fn map_unique(e: sqlx::Error, fields: &[(&'static str, &'static str)]) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let text = format!("{} {}", db.message(), db.constraint().unwrap_or(""));
        for (needle, field) in fields {
            if text.contains(needle) {
                return StoreError::Conflict { field };
            }
        }
        return StoreError::Conflict { field: "value" };
    }
    StoreError::Db(e)
}
