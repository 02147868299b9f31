//! What a client of the runner gets when a call fails: a refusal with the runner's stable code,
//! or the runner being unavailable. Lives beside the protocol, so that the server's error type
//! depends on this crate rather than on the server's runner client.

/// Why a runner call failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The runner refused the request or the operation failed: `code` is stable (the runner's,
    /// e.g. `permission-denied`, `account-refused`, `exists`, or a path code such as
    /// `path-escapes-root`), `message` is written for people.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
    /// The runner could not be started, crashed, timed out or answered something unreadable; the
    /// message names the command and what to install or configure. For the server's log.
    #[error("the runner is unavailable: {0}")]
    Unavailable(String),
}

impl RunnerError {
    /// The stable code of a refusal, `None` when the runner is unavailable.
    pub fn code(&self) -> Option<&str> {
        match self {
            RunnerError::Refused { code, .. } => Some(code),
            RunnerError::Unavailable(_) => None,
        }
    }
}
