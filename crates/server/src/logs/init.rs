//! The process's tracing subscriber: one plain-text file per service (`DATA_DIR/logs/SERVICE.log`,
//! rotated by size), chosen by the event's target ([`Service::for_target`]), optionally stderr too.
//! Each file has its own filter (`inspect::loggers::ServiceFilter`): the `RUST_LOG`-style filter
//! of the configuration, or the level the loggers diagnostic set for its service at run time.
//! Two more layers feed the admin console's diagnostics whatever the files' levels: every sqlx
//! statement event the query statistics (`inspect::queries`), every ERROR event the site errors
//! (`inspect::errors`).
//!
//! Each event is one line: `TIMESTAMP LEVEL spans: target: message field=value ...`. Line breaks
//! inside an event (a multi-line message or field) are written as `\n` and `\r`, so that a line
//! is always an event and a logged value cannot forge a line of its own.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tracing::Level;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::fmt::{self, MakeWriter};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;

use super::rotate::{DEFAULT_KEEP, DEFAULT_MAX_BYTES, RotatingFile};
use super::service::Service;
use crate::inspect::errors::ErrorRingLayer;
use crate::inspect::loggers::ServiceFilter;
use crate::inspect::queries::{QueryStatsLayer, SQLX_TARGET};

/// Where the logs of a data directory are: `DATA_DIR/logs`.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// Keeps the log files of [`init`]; hold it for the life of the process.
pub struct LogGuard {
    dir: PathBuf,
    files: Vec<Arc<RotatingFile>>,
}

impl LogGuard {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current file of each service.
    pub fn files(&self) -> impl Iterator<Item = (Service, PathBuf)> + '_ {
        self.files.iter().map(|f| (f.service(), f.path()))
    }
}

/// Installs the global tracing subscriber (and the `log` bridge): every service's file in
/// `log_dir`, created empty if missing, 16 MiB per file and 4 older ones; stderr as well if
/// `also_stderr`. `filter` is an [`EnvFilter`] directive such as `info,sqlx=warn`. Fails, without
/// changing anything global, if the filter is invalid, a file cannot be opened, or a global
/// subscriber or logger is already installed.
pub fn init(log_dir: &Path, filter: &str, also_stderr: bool) -> anyhow::Result<LogGuard> {
    let (subscriber, guard) = subscriber(
        log_dir,
        filter,
        also_stderr,
        DEFAULT_MAX_BYTES,
        DEFAULT_KEEP,
    )?;
    subscriber
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logging to {}: {e}", log_dir.display()))?;
    crate::inspect::loggers::installed(filter);
    log_panics();
    Ok(guard)
}

/// Makes a panic an ERROR event too (target `panic`: the app log and the site errors), before the
/// previous hook prints it: a panicking request is answered 500 by the catch-panic layer, which
/// logs nothing itself.
fn log_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(target: "panic", %location, "panicked: {payload}");
        previous(info);
    }));
}

/// The subscriber [`init`] installs, without installing it (for `tracing::subscriber::with_default`).
pub fn subscriber(
    log_dir: &Path,
    filter: &str,
    also_stderr: bool,
    max_bytes: u64,
    keep: usize,
) -> anyhow::Result<(impl Subscriber + Send + Sync + 'static, LogGuard)> {
    let env_filter = || {
        EnvFilter::builder()
            .parse(filter)
            .with_context(|| format!("invalid log filter `{filter}`"))
    };
    env_filter()?;
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let mut files = Vec::new();
    for service in Service::ALL {
        let file = Arc::new(
            RotatingFile::open(log_dir, service, max_bytes, keep).with_context(|| {
                format!("cannot open the {service} log in {}", log_dir.display())
            })?,
        );
        files.push(file.clone());
        // The service's own events, at its run-time level (the loggers diagnostic) or the
        // filter's; spans go to every file, so that an event keeps its context wherever it lands.
        let routed = ServiceFilter::new(service, env_filter()?);
        layers.push(
            fmt::layer()
                .with_writer(OneLine(file))
                .with_ansi(false)
                .with_target(true)
                .with_filter(routed)
                .boxed(),
        );
    }
    if also_stderr {
        layers.push(
            fmt::layer()
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal())
                .with_filter(env_filter()?)
                .boxed(),
        );
    }
    // Diagnostics: every sqlx statement event feeds the query statistics, every ERROR event the
    // site errors, whatever the files' levels.
    layers.push(
        QueryStatsLayer::new()
            .with_filter(Targets::new().with_target(SQLX_TARGET, Level::DEBUG))
            .boxed(),
    );
    layers.push(
        ErrorRingLayer::new()
            .with_filter(LevelFilter::ERROR)
            .boxed(),
    );
    let subscriber = Registry::default().with(layers);
    Ok((
        subscriber,
        LogGuard {
            dir: log_dir.to_owned(),
            files,
        },
    ))
}

/// Writes each formatted event as one line: line breaks before its final one are escaped.
struct OneLine(Arc<RotatingFile>);

impl<'a> MakeWriter<'a> for OneLine {
    type Writer = OneLineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter(&self.0)
    }
}

struct OneLineWriter<'a>(&'a RotatingFile);

impl Write for OneLineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        if memchr::memchr2(b'\n', b'\r', body).is_none() {
            return (&mut &*self.0).write(buf);
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                _ => line.push(b),
            }
        }
        line.push(b'\n');
        (&mut &*self.0).write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, service: Service) -> String {
        std::fs::read_to_string(dir.join(service.file_name())).unwrap()
    }

    #[test]
    fn routes_each_event_to_its_service_file_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let (subscriber, guard) = subscriber(dir.path(), "debug", false, 1 << 20, 2).unwrap();
        assert_eq!(guard.files().count(), 6);
        for service in Service::ALL {
            assert_eq!(read(dir.path(), service), "", "{service} created empty");
        }
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!(target: "tower_http::trace", "request", uri = "/api/v1/users");
            let _entered = span.enter();
            tracing::info!(target: "cryowarden_server::api::users", user = 7, "listed");
            tracing::debug!(target: "sqlx::query", statement = "SELECT 1", "query");
            tracing::info!(target: "cryowarden_server::audit", "appended");
            tracing::warn!(target: "cryowarden_server::scheduler", "late");
            tracing::error!(target: "cryowarden_runner::slurm", "sbatch failed");
            tracing::info!(target: "cryowarden_server::app", "first line\nforged line\r\n");
            tracing::trace!(target: "cryowarden_server::app", "below the filter");
        });
        let api = read(dir.path(), Service::Api);
        assert!(api.starts_with("20"), "timestamp first: {api}");
        assert!(api.contains(
            " INFO request{uri=\"/api/v1/users\"}: cryowarden_server::api::users: listed user=7\n"
        ));
        assert!(
            read(dir.path(), Service::Database)
                .contains("DEBUG request{uri=\"/api/v1/users\"}: sqlx::query: query")
        );
        assert!(read(dir.path(), Service::Audit).contains("cryowarden_server::audit: appended"));
        assert!(read(dir.path(), Service::Scheduler).contains(" WARN "));
        assert!(
            read(dir.path(), Service::Worker)
                .contains("ERROR request{uri=\"/api/v1/users\"}: cryowarden_runner")
        );
        let app = read(dir.path(), Service::App);
        assert!(app.contains(r"first line\nforged line\r\n"), "{app}");
        for service in Service::ALL {
            assert_eq!(read(dir.path(), service).lines().count(), 1, "{service}");
        }
    }

    #[test]
    fn the_filter_applies_to_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let (subscriber, _guard) =
            subscriber(dir.path(), "warn,sqlx=info", false, 1 << 20, 2).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "cryowarden_server::api", "dropped");
            tracing::warn!(target: "cryowarden_server::api", "kept");
            tracing::info!(target: "sqlx::query", "kept too");
            tracing::debug!(target: "sqlx::query", "dropped too");
        });
        let api = read(dir.path(), Service::Api);
        assert!(api.contains("kept") && !api.contains("dropped"), "{api}");
        let db = read(dir.path(), Service::Database);
        assert!(db.contains("kept too") && !db.contains("dropped"), "{db}");
    }

    #[test]
    fn rejects_a_bad_filter_and_a_second_global_subscriber() {
        let dir = tempfile::tempdir().unwrap();
        assert!(init(dir.path(), "cryowarden=loud", false).is_err());
        assert_eq!(log_dir(Path::new("/srv/cw")), Path::new("/srv/cw/logs"));
        // The only test of this crate that installs a global subscriber: other tests' events may
        // land in these files, then in their unlinked inodes once the directory is gone.
        let first = init(dir.path(), "info", false);
        let second = init(dir.path(), "info", false);
        assert!(second.is_err(), "a second install must fail, not panic");
        if first.is_ok() {
            tracing::warn!(target: "cryowarden_server::audit", "through the global subscriber");
            assert!(read(dir.path(), Service::Audit).contains("through the global subscriber"));
            // A panic is an ERROR event too: in the app log and among the site errors.
            let marker = format!("panic marker {:x}", rand::random::<u64>());
            let caught = std::panic::catch_unwind(|| panic!("{marker}"));
            assert!(caught.is_err());
            let errors = crate::inspect::errors::recent();
            let e = errors
                .iter()
                .find(|e| e.message.contains(&marker))
                .expect("the panic is a site error");
            assert_eq!((e.target.as_str(), e.service), ("panic", "app"));
            assert!(read(dir.path(), Service::App).contains(&format!("panicked: {marker}")));
        }
    }
}
