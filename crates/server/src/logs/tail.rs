//! The last N lines of a service's log, for the Instance Logs view.
//!
//! The file is read backwards from its end in 64 KiB blocks until N line breaks are found, then
//! forwards from there: the cost depends on the length of the last N lines, not on the size of
//! the file. If the current file holds fewer than N lines, the older files (`SERVICE.log.1`, ...)
//! supply the rest. Lines are split on `\n` (a `\r` before it is dropped), decoded as UTF-8 with
//! invalid bytes replaced, and cut at [`MAX_LINE_BYTES`], the cut marked with "…".

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::rotate::file_path;
use super::service::Service;

/// The line counts the Instance Logs view offers; callers validate against them.
pub const LINE_COUNTS: [usize; 4] = [50, 100, 200, 500];

/// The longest line returned, in bytes, "…" included.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

const BLOCK: usize = 64 * 1024;
const ELLIPSIS: &str = "…";

/// `Some(n)` if `n` (e.g. a query parameter) is one of [`LINE_COUNTS`].
pub fn parse_line_count(n: &str) -> Option<usize> {
    n.parse().ok().filter(|n| LINE_COUNTS.contains(n))
}

/// The last `lines` lines of `service`'s log in `dir`, oldest first. A missing or empty log
/// gives an empty list. The cost grows with `lines` (and the length of those lines), not with
/// the size of the file: callers accept only [`LINE_COUNTS`]. Blocking file I/O, ~35 µs for 500
/// lines of 120 bytes from the page cache.
pub fn tail(dir: &Path, service: Service, lines: usize) -> io::Result<Vec<String>> {
    let mut parts: Vec<Vec<String>> = Vec::new(); // newest file first
    let mut have = 0;
    let mut previous = None;
    for generation in 0.. {
        if have >= lines {
            break;
        }
        let file = match File::open(file_path(dir, service, generation)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && generation == 0 => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        // If the log rotated while we read it, `.1` is the file just read: skip to `.2`.
        let id = file_id(&meta);
        if id.is_some() && id == previous {
            continue;
        }
        previous = id;
        let part = tail_file(&file, meta.len(), lines - have, BLOCK)?;
        have += part.len();
        parts.push(part);
    }
    Ok(parts.into_iter().rev().flatten().collect())
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The last `want` lines of the first `len` bytes of `file`, reading `block` bytes at a time.
fn tail_file(mut file: &File, len: u64, want: usize, block: usize) -> io::Result<Vec<String>> {
    if want == 0 || len == 0 {
        return Ok(Vec::new());
    }
    // Backwards: find where the `want`-th last line starts. The final line break ends the last
    // line; it does not start a new one.
    let mut buf = vec![0u8; block.min(len as usize)];
    let mut pos = len;
    let mut found = 0;
    let mut start = 0;
    'scan: while pos > 0 {
        let n = (pos.min(block as u64)) as usize;
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..n])?;
        let scan = if pos + n as u64 == len {
            buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n])
        } else {
            &buf[..n]
        };
        for i in memchr::memrchr_iter(b'\n', scan) {
            found += 1;
            if found == want {
                start = pos + i as u64 + 1;
                break 'scan;
            }
        }
    }
    let mut lines = Lines::with_capacity(want.min(LINE_COUNTS[3]));
    if pos + buf.len() as u64 >= len {
        // The last lines all lie in the one block read (the usual case).
        lines.push_bytes(&buf[(start - pos) as usize..(len - pos) as usize]);
    } else {
        // Forwards from `start`, keeping at most MAX_LINE_BYTES of each line.
        file.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::with_capacity(block.max(1024), file.take(len - start));
        loop {
            let data = reader.fill_buf()?;
            if data.is_empty() {
                break;
            }
            let n = data.len();
            lines.push_bytes(data);
            reader.consume(n);
        }
    }
    let mut lines = lines.finish();
    if lines.len() > want {
        lines.drain(..lines.len() - want);
    }
    Ok(lines)
}

/// Splits bytes fed in pieces into capped, decoded lines.
struct Lines {
    done: Vec<String>,
    current: Vec<u8>,
    cut: bool,
}

impl Lines {
    fn with_capacity(n: usize) -> Lines {
        Lines {
            done: Vec::with_capacity(n),
            current: Vec::new(),
            cut: false,
        }
    }

    fn push_bytes(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (piece, ends_line) = match memchr::memchr(b'\n', data) {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            let room = MAX_LINE_BYTES - self.current.len();
            if piece.len() > room {
                self.current.extend_from_slice(&piece[..room]);
                self.cut = true;
            } else {
                self.current.extend_from_slice(piece);
            }
            data = &data[piece.len()..];
            if ends_line {
                self.end_line();
                data = &data[1..];
            }
        }
    }

    fn end_line(&mut self) {
        if !self.cut && self.current.last() == Some(&b'\r') {
            self.current.pop();
        }
        let raw = std::mem::take(&mut self.current);
        let mut line = String::from_utf8(raw)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if self.cut || line.len() > MAX_LINE_BYTES {
            let mut at = MAX_LINE_BYTES - ELLIPSIS.len();
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            line.truncate(at);
            line.push_str(ELLIPSIS);
        }
        self.cut = false;
        self.done.push(line);
    }

    /// The lines, the last one included even without a final line break.
    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() || self.cut {
            self.end_line();
        }
        self.done
    }
}

#[cfg(test)]
#[path = "tail_tests.rs"]
mod tests;
