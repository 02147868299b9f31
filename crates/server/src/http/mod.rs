//! What the API (`api/`) and the pages (`web/`) share of HTTP: the error answer (problem+json,
//! and the mapping of domain errors to statuses and stable codes), the extractors (strict JSON,
//! query and id parsing, the caller from a session or token with its CSRF check, the client's
//! address) and the security headers.

pub mod download;
pub mod error;
pub mod extract;
pub mod headers;
