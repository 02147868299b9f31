//! A size-rotated log file: `DIR/SERVICE.log`, renamed to `SERVICE.log.1` (and the older ones
//! shifted up to `SERVICE.log.{keep}`, the oldest deleted) when the next record would take it past
//! `max_bytes`. A service's logs therefore never take more than `(keep + 1) * max_bytes`.
//!
//! Each `write` call is one record (tracing's fmt layer writes one event per call) and is written
//! whole, under a lock, with one `write` on a file opened in append mode, so records from several
//! threads never interleave and a record is never split between two files. A record longer than
//! `max_bytes` on its own is cut to fit and ends with "…".

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

use super::service::Service;

pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
pub const DEFAULT_KEEP: usize = 4;

/// What ends a record that was cut to fit in `max_bytes`.
const CUT_MARK: &[u8] = "…\n".as_bytes();

/// `DIR/api.log` for generation 0, `DIR/api.log.N` for the N-th older one.
pub fn file_path(dir: &Path, service: Service, generation: usize) -> PathBuf {
    if generation == 0 {
        dir.join(service.file_name())
    } else {
        dir.join(format!("{}.{generation}", service.file_name()))
    }
}

/// A thread-safe, size-rotated log file; `&RotatingFile` is an [`io::Write`], and it is a
/// [`MakeWriter`] for `tracing_subscriber::fmt` (so is `Arc<RotatingFile>`).
pub struct RotatingFile {
    dir: PathBuf,
    service: Service,
    max_bytes: u64,
    keep: usize,
    state: Mutex<State>,
}

struct State {
    /// `None` after a failed write or rotation: reopened by the next write.
    file: Option<File>,
    /// Bytes in the current file.
    len: u64,
}

impl RotatingFile {
    /// Opens (creating it and `dir` if needed) `DIR/SERVICE.log` for appending, and deletes
    /// `SERVICE.log.N` for N > `keep` left by an earlier configuration. `max_bytes` is at least 1.
    pub fn open(
        dir: &Path,
        service: Service,
        max_bytes: u64,
        keep: usize,
    ) -> io::Result<RotatingFile> {
        crate::datadir::create_private_dir(dir)?;
        let this = RotatingFile {
            dir: dir.to_owned(),
            service,
            max_bytes: max_bytes.max(1),
            keep,
            state: Mutex::new(State { file: None, len: 0 }),
        };
        this.remove_stragglers()?;
        let (file, len) = this.open_current(false)?;
        *this.state.lock().unwrap_or_else(PoisonError::into_inner) = State {
            file: Some(file),
            len,
        };
        Ok(this)
    }

    /// With the defaults: 16 MiB per file, 4 older files.
    pub fn open_default(dir: &Path, service: Service) -> io::Result<RotatingFile> {
        RotatingFile::open(dir, service, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
    }

    pub fn service(&self) -> Service {
        self.service
    }

    /// The current file, `DIR/SERVICE.log`.
    pub fn path(&self) -> PathBuf {
        file_path(&self.dir, self.service, 0)
    }

    fn open_current(&self, truncate: bool) -> io::Result<(File, u64)> {
        let mut options = OpenOptions::new();
        // Logs name users and addresses: the server account's alone.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::datadir::FILE_MODE);
        if truncate {
            options.write(true).create(true).truncate(true);
        } else {
            options.append(true).create(true);
        }
        let file = options.open(self.path())?;
        let len = file.metadata()?.len();
        Ok((file, len))
    }

    fn remove_stragglers(&self) -> io::Result<()> {
        let prefix = format!("{}.", self.service.file_name());
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(n) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if n.parse::<usize>().is_ok_and(|n| n > self.keep) {
                remove_if_exists(&self.dir.join(&name))?;
            }
        }
        Ok(())
    }

    /// Writes one record, rotating first if it would not fit.
    fn write_record(&self, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let record = cut_to_fit(buf, self.max_bytes);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.file.is_none() {
            let (file, len) = self.open_current(false)?;
            *state = State {
                file: Some(file),
                len,
            };
        }
        if state.len > 0 && state.len + record.len() as u64 > self.max_bytes {
            state.file = None;
            let (file, len) = match self.rotate() {
                Ok(()) => self.open_current(false)?,
                // Could not rename: start the current file over rather than grow it unbounded.
                Err(_) => self.open_current(true)?,
            };
            *state = State {
                file: Some(file),
                len,
            };
        }
        let Some(file) = state.file.as_mut() else {
            unreachable!("opened above")
        };
        match file.write_all(&record) {
            Ok(()) => {
                state.len += record.len() as u64;
                Ok(())
            }
            Err(e) => {
                state.file = None;
                Err(e)
            }
        }
    }

    /// `.keep` is deleted, `.N` becomes `.N+1`, the current file becomes `.1`.
    fn rotate(&self) -> io::Result<()> {
        let path = |n| file_path(&self.dir, self.service, n);
        if self.keep == 0 {
            return remove_if_exists(&path(0));
        }
        remove_if_exists(&path(self.keep))?;
        for n in (0..self.keep).rev() {
            match fs::rename(path(n), path(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The record itself, or its first bytes (cut at a UTF-8 character boundary) and "…\n" so that
/// it takes at most `max` bytes.
fn cut_to_fit(buf: &[u8], max: u64) -> Cow<'_, [u8]> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if buf.len() <= max {
        return Cow::Borrowed(buf);
    }
    if max <= CUT_MARK.len() {
        return Cow::Borrowed(&buf[..max]);
    }
    let mut cut = max - CUT_MARK.len();
    while cut > 0 && buf[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    let mut out = Vec::with_capacity(cut + CUT_MARK.len());
    out.extend_from_slice(&buf[..cut]);
    out.extend_from_slice(CUT_MARK);
    Cow::Owned(out)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Write for &RotatingFile {
    /// Writes `buf` whole, as one record (see the module documentation).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_record(buf)?;
        Ok(buf.len())
    }

    /// Records go straight to the file (no buffer in this process).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = &'a RotatingFile;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
#[path = "rotate_tests.rs"]
mod tests;
