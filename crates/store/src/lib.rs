//! cryowarden's storage: one database seam over SQLite (the embedded default) and PostgreSQL with
//! each backend's migrations ([`db`]), the tamper-evident audit chain ([`audit`]), the caller's
//! context that asks `cryowarden_core::authorize` and records refusals ([`context`]), the private
//! data directory ([`datadir`]) and the error every storage and domain call returns ([`error`]).
//! It knows nothing of the domain above it or of HTTP.

pub mod audit;
pub mod context;
pub mod csv;
pub mod datadir;
pub mod db;
pub mod error;
