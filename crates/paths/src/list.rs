//! [`Root::list_dir`]: a directory beneath the root, sorted by name and paged.
//!
//! The directory is opened beneath the root ([`Root::open_beneath`]) and read once with
//! `getdents64` (rustix's `RawDir`, the names gathered in one buffer); only the entries of the
//! requested page are ordered fully and only they are `statx`ed, relative to the directory's
//! descriptor with `AT_SYMLINK_NOFOLLOW` (symlinks are reported as symlinks, never followed). A page of 200 out of 100,000 entries
//! therefore costs one pass over the names, not 100,000 stats or a full sort.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, OFlags, RawDir, Statx, StatxFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::resolve::openat2_beneath;
use super::{OpenHow, PathError, RelPath, Root};

/// Bytes asked of each `getdents64` (about 2,000 entries of a 100,000-entry directory).
const GETDENTS_BUFFER: usize = 64 * 1024;

/// Which entries of the sorted listing to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Entries to skip.
    pub offset: usize,
    /// Entries to return, 1..=[`Page::MAX_LIMIT`].
    pub limit: usize,
}

impl Page {
    pub const MAX_LIMIT: usize = 1000;
    pub const DEFAULT_LIMIT: usize = 200;

    /// A checked page.
    pub fn new(offset: usize, limit: usize) -> Result<Page, PathError> {
        let page = Page { offset, limit };
        page.check()?;
        Ok(page)
    }

    fn check(&self) -> Result<(), PathError> {
        if (1..=Page::MAX_LIMIT).contains(&self.limit) {
            Ok(())
        } else {
            Err(PathError::PageLimit { limit: self.limit })
        }
    }
}

impl Default for Page {
    fn default() -> Page {
        Page {
            offset: 0,
            limit: Page::DEFAULT_LIMIT,
        }
    }
}

/// What an entry is, as `lstat` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl EntryKind {
    fn of(t: FileType) -> EntryKind {
        match t {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    /// The name, with invalid UTF-8 replaced by U+FFFD.
    pub name: String,
    /// False when the name on disk is not valid UTF-8 (so `name` is not the exact name, and the
    /// entry cannot be asked for by a [`RelPath`]).
    pub name_is_utf8: bool,
    pub kind: EntryKind,
    /// Size in bytes (of the link itself for a symlink); `None` if the entry vanished or could
    /// not be examined between reading the directory and stating it.
    pub size: Option<u64>,
    /// Last modification, RFC 3339 in UTC; `None` as for `size`.
    pub modified: Option<String>,
}

/// A page of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing {
    /// The listed directory, relative to the root (`.` for the root itself).
    pub path: String,
    /// Entries in the whole directory (`.` and `..` excluded).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// This page's entries, sorted by name (byte order).
    pub entries: Vec<Entry>,
}

impl Root {
    /// Lists the directory `rel` beneath this root: hidden entries included, sorted by name in
    /// byte order, the page `page` of it.
    pub fn list_dir(&self, rel: &RelPath, page: Page) -> Result<Listing, PathError> {
        page.check()?;
        let dirfd = self.open_beneath(rel, OpenHow::Directory)?;
        let mut names = Names::read(&dirfd)?;
        let total = names.index.len();
        let range = select_page(&mut names.index, &names.bytes, page);
        let entries = names.index[range]
            .iter()
            .map(|n| entry(dirfd.as_fd(), names.get(n), n.listed_as))
            .collect::<Result<_, _>>()?;
        Ok(Listing {
            path: rel.to_string(),
            total,
            offset: page.offset,
            limit: page.limit,
            entries,
        })
    }

    /// One entry beneath this root, described as [`Root::list_dir`] describes entries: the
    /// components before the last are resolved as by [`Root::open_beneath`], the last is never
    /// followed (a symlink is reported as a symlink, wherever it points). The entry is named by
    /// the last component of `rel`, `.` for the root itself.
    pub fn stat(&self, rel: &RelPath) -> Result<Entry, PathError> {
        let fd = openat2_beneath(self, rel, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)?;
        let st = rustix::fs::statx(&fd, "", NOFOLLOW | AtFlags::EMPTY_PATH, STATX_MASK)
            .map_err(PathError::from_errno)?;
        let (kind, size, modified) = describe(&st);
        let name = rel.components().last().unwrap_or(".").to_owned();
        Ok(Entry {
            name,
            name_is_utf8: true,
            kind,
            size,
            modified,
        })
    }
}

/// Every name of a directory, `.` and `..` excluded, in one buffer (NUL-terminated each), with
/// an index into it: two growing vectors rather than one allocation per entry.
struct Names {
    bytes: Vec<u8>,
    index: Vec<Name>,
}

#[derive(Clone, Copy)]
struct Name {
    start: usize,
    /// Without the NUL.
    len: usize,
    /// The type from the directory entry, used if the entry vanishes before it is stated.
    listed_as: FileType,
}

impl Names {
    fn read(dirfd: &OwnedFd) -> Result<Names, PathError> {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); GETDENTS_BUFFER];
        let mut dir = RawDir::new(dirfd, &mut buf);
        let mut names = Names {
            bytes: Vec::new(),
            index: Vec::new(),
        };
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(PathError::from_errno)?;
            let name = entry.file_name().to_bytes_with_nul();
            if name != b".\0" && name != b"..\0" {
                let start = names.bytes.len();
                names.bytes.extend_from_slice(name);
                names.index.push(Name {
                    start,
                    len: name.len() - 1,
                    listed_as: entry.file_type(),
                });
            }
        }
        Ok(names)
    }

    fn get(&self, n: &Name) -> &CStr {
        CStr::from_bytes_with_nul(&self.bytes[n.start..=n.start + n.len])
            .expect("NUL-terminated by read()")
    }
}

/// Orders `names` just enough that `names[range]` holds the page's entries in sorted order:
/// O(n) selections around the page, then a sort of the page only.
fn select_page(names: &mut [Name], bytes: &[u8], page: Page) -> std::ops::Range<usize> {
    let by_name =
        |a: &Name, b: &Name| bytes[a.start..a.start + a.len].cmp(&bytes[b.start..b.start + b.len]);
    let total = names.len();
    let start = page.offset.min(total);
    let end = page.offset.saturating_add(page.limit).min(total);
    if start == end {
        return start..end;
    }
    if end < total {
        names.select_nth_unstable_by(end, by_name);
    }
    let head = &mut names[..end];
    if start > 0 {
        head.select_nth_unstable_by(start, by_name);
    }
    head[start..].sort_unstable_by(by_name);
    start..end
}

/// What [`entry`] and [`Root::stat`] ask of `statx`.
const STATX_MASK: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::SIZE)
    .union(StatxFlags::MTIME);
/// Entries are described, never followed.
const NOFOLLOW: AtFlags = AtFlags::SYMLINK_NOFOLLOW.union(AtFlags::NO_AUTOMOUNT);

/// Kind, size and modification time (RFC 3339, UTC) of a `statx` answer.
fn describe(st: &Statx) -> (EntryKind, Option<u64>, Option<String>) {
    let kind = EntryKind::of(FileType::from_raw_mode(u32::from(st.stx_mode)));
    let modified = OffsetDateTime::from_unix_timestamp(st.stx_mtime.tv_sec)
        .ok()
        .map(|t| t + time::Duration::nanoseconds(i64::from(st.stx_mtime.tv_nsec)))
        .and_then(|t| t.format(&Rfc3339).ok());
    (kind, Some(st.stx_size), modified)
}

fn entry(dirfd: BorrowedFd<'_>, name: &CStr, listed_as: FileType) -> Result<Entry, PathError> {
    let (name_text, name_is_utf8) = match std::str::from_utf8(name.to_bytes()) {
        Ok(s) => (s.to_owned(), true),
        Err(_) => (String::from_utf8_lossy(name.to_bytes()).into_owned(), false),
    };
    let (kind, size, modified) = match rustix::fs::statx(dirfd, name, NOFOLLOW, STATX_MASK) {
        Ok(st) => describe(&st),
        // Removed since the directory was read, or not examinable: listed from the directory
        // entry alone.
        Err(Errno::NOENT | Errno::ACCESS | Errno::PERM) => (EntryKind::of(listed_as), None, None),
        Err(e) => return Err(PathError::from_errno(e)),
    };
    Ok(Entry {
        name: name_text,
        name_is_utf8,
        kind,
        size,
        modified,
    })
}
