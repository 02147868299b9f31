//! The diagnostic report: one zip holding every file of the log directory (`logs/NAME`),
//! `runtime-diagnostics.json` and `browser-diagnostics.json`, written as a stream (no seeking,
//! sizes in data descriptors) so that it can go straight to an HTTP response or a pipe. Files
//! are copied in 64 KiB pieces: memory stays bounded however large the logs are.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

pub use super::diagnostics::runtime_diagnostics;

/// The size of the pieces copied from the logs and of the chunks [`report_stream`] yields.
pub const CHUNK: usize = 64 * 1024;
/// Chunks [`report_stream`] holds ready before the writer waits for the reader.
const CHANNEL_CHUNKS: usize = 4;
/// Deflate level: logs compress ~10:1 at 1 already, and the report of a full log directory
/// should be quick to make.
const COMPRESSION_LEVEL: i64 = 1;

/// Writes the report zip to `out` and gives `out` back. `progress(done, total)` is called as
/// log bytes are copied, `total` being the size of the logs when the copy began (a file that
/// grows meanwhile is copied up to that size). A log that cannot be opened is listed in
/// `report-errors.txt` instead; any other error stops the report.
pub fn write_report<W: Write + Send>(
    out: W,
    dir: &Path,
    runtime: &Value,
    browser: &Value,
    progress: &mut dyn FnMut(u64, u64),
) -> io::Result<W> {
    let files = log_files(dir)?;
    let total: u64 = files.iter().map(|f| f.len).sum();
    let mut zip = ZipWriter::new_stream(Latch {
        inner: out,
        failed: false,
    });
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0;
    let mut errors = String::new();
    progress(0, total);
    for f in &files {
        let end = done + f.len;
        match File::open(&f.path) {
            Ok(file) => {
                zip.start_file(
                    format!("logs/{}", f.name),
                    options(f.modified).large_file(f.len >= 0xFFFF_0000),
                )
                .map_err(zip_error)?;
                let mut file = file.take(f.len);
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    zip.write_all(&buf[..n])?;
                    done += n as u64;
                    progress(done, total);
                }
            }
            Err(e) => errors.push_str(&format!("logs/{}: {e}\n", f.name)),
        }
        if done != end {
            done = end; // shrank or vanished since it was listed
            progress(done, total);
        }
    }
    let now = Some(SystemTime::now());
    for (name, value) in [
        ("runtime-diagnostics.json", runtime),
        ("browser-diagnostics.json", browser),
    ] {
        zip.start_file(name, options(now)).map_err(zip_error)?;
        serde_json::to_writer_pretty(&mut zip, value)?;
        zip.write_all(b"\n")?;
    }
    if !errors.is_empty() {
        zip.start_file("report-errors.txt", options(now))
            .map_err(zip_error)?;
        zip.write_all(errors.as_bytes())?;
    }
    Ok(zip.finish().map_err(zip_error)?.into_inner().inner)
}

/// Passes writes on until one fails, then discards them: on an error the `ZipWriter` is dropped,
/// and its drop would otherwise try to finish the archive on the failed writer and complain on
/// stderr. The error itself has already been returned to the caller.
struct Latch<W> {
    inner: W,
    failed: bool,
}

impl<W: Write> Write for Latch<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Ok(data.len());
        }
        self.inner
            .write(data)
            .inspect_err(|e| self.failed = e.kind() != io::ErrorKind::Interrupted)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            Ok(())
        } else {
            self.inner.flush().inspect_err(|_| self.failed = true)
        }
    }
}

struct LogFile {
    name: String,
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// The regular files of `dir` (not symbolic links, not subdirectories), by name; none if `dir`
/// does not exist.
fn log_files(dir: &Path) -> io::Result<Vec<LogFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let meta = entry.metadata()?;
        files.push(LogFile {
            name: entry.file_name().to_string_lossy().into_owned(),
            path: entry.path(),
            len: meta.len(),
            modified: meta.modified().ok(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn options(modified: Option<SystemTime>) -> SimpleFileOptions {
    let time = modified
        .map(OffsetDateTime::from)
        .and_then(|t| {
            DateTime::from_date_and_time(
                u16::try_from(t.year()).ok()?,
                t.month().into(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
            .ok()
        })
        .unwrap_or_default();
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(COMPRESSION_LEVEL))
        .unix_permissions(0o644)
        .last_modified_time(time)
}

fn zip_error(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// The report as a stream of chunks of at most [`CHUNK`] bytes, for an HTTP body:
/// [`write_report`] runs on Tokio's blocking pool (started on the first poll, so this must be
/// polled within a Tokio runtime) and hands chunks over a channel of [`CHANNEL_CHUNKS`], so that
/// memory stays bounded whatever the client's speed. The first bytes are sent at once. Dropping
/// the stream stops the writer at its next chunk. A failure ends the stream with an error, so
/// that a truncated report is never taken for a complete one.
pub fn report_stream(
    dir: PathBuf,
    runtime: Value,
    browser: Value,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    enum State {
        Start(PathBuf, Value, Value),
        Running(mpsc::Receiver<Message>),
        Done,
    }
    futures_util::stream::unfold(State::Start(dir, runtime, browser), |state| async move {
        let mut rx = match state {
            State::Start(dir, runtime, browser) => start(dir, runtime, browser).0,
            State::Running(rx) => rx,
            State::Done => return None,
        };
        match rx.recv().await {
            Some(Message::Data(chunk)) => Some((Ok(chunk), State::Running(rx))),
            Some(Message::Failed(e)) => Some((Err(e), State::Done)),
            Some(Message::End) => None,
            None => Some((
                Err(io::Error::other("the report writer stopped unexpectedly")),
                State::Done,
            )),
        }
    })
}

/// Starts [`write_report`] on the blocking pool, writing into the channel returned.
fn start(
    dir: PathBuf,
    runtime: Value,
    browser: Value,
) -> (mpsc::Receiver<Message>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let task = tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: BytesMut::new(),
            sent: false,
        };
        let result = write_report(writer, &dir, &runtime, &browser, &mut |_, _| {})
            .and_then(|mut w| w.flush());
        let _ = tx.blocking_send(match result {
            Ok(()) => Message::End,
            Err(e) => Message::Failed(e),
        });
    });
    (rx, task)
}

enum Message {
    Data(Bytes),
    Failed(io::Error),
    End,
}

/// Cuts what it is given into chunks of [`CHUNK`] bytes for the channel (the first one sent as
/// soon as there is anything), waiting while the channel is full.
struct ChannelWriter {
    tx: mpsc::Sender<Message>,
    buf: BytesMut,
    sent: bool,
}

impl ChannelWriter {
    fn send(&mut self, chunk: Bytes) -> io::Result<()> {
        self.sent = true;
        self.tx
            .blocking_send(Message::Data(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the report's reader has gone"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= CHUNK {
            let chunk = self.buf.split_to(CHUNK).freeze();
            self.send(chunk)?;
        }
        if !self.sent && !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.send(chunk)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.send(chunk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
