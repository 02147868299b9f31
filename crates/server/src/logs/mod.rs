//! Instance logs and the diagnostic report (spec/instance-logs.md).
//!
//! - [`service`]: the services that get a log file each, and which tracing target goes where;
//! - [`rotate`]: the size-rotated file writer behind each of them (`DIR/SERVICE.log`, `.1` … `.keep`);
//! - [`init`]: installs the global tracing subscriber writing those files;
//! - [`tail`]: the last N lines of a service's log, read backwards so that the cost does not
//!   depend on the file's size;
//! - [`report`]: the diagnostic report, a zip of every log file and two JSON documents,
//!   streamed with bounded memory.

mod diagnostics;
pub mod init;
pub mod report;
pub mod rotate;
pub mod service;
pub mod tail;
pub mod view;

pub use init::{LogGuard, init, log_dir};
pub use report::{report_stream, runtime_diagnostics, write_report};
pub use rotate::RotatingFile;
pub use service::Service;
pub use tail::{LINE_COUNTS, parse_line_count, tail};
