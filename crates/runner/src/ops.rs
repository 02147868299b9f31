//! The operations, performed after the privilege drop: every path is resolved beneath its root
//! by `cryowarden_paths`, and the kernel checks the lab account's permissions on top.

use std::ffi::{CStr, CString};
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use cryowarden_paths::{OpenHow, Page, PathError, RelPath, Root};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RawDir};
use rustix::io::Errno;
use serde::Serialize;
use serde_json::Value;

use crate::protocol::{
    Account, Checked, CreatedDir, Head, MAX_HEAD_BYTES, Op, Refusal, TreeCounts,
};

/// Mode of a new project directory: setgid (files inherit the lab's group), rwx for the lab's
/// account and group, nothing for others.
pub const PROJECT_DIR_MODE: u32 = 0o2770;
/// Deepest tree [`Op::DeleteTree`] and [`Op::Archive`] walk (one descriptor per level).
const MAX_DEPTH: usize = 256;

/// Performs `op` as `account` (whose identity the process already has).
pub fn perform(op: &Op, account: &Account) -> Result<Value, Refusal> {
    let path_error = |e: PathError| refusal_of(e, account);
    match op {
        Op::Check {} => answer(Checked {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            groups: nix::unistd::getgroups()
                .map_err(|e| Refusal::new("io-error", format!("getgroups failed: {e}")))?
                .into_iter()
                .map(nix::unistd::Gid::as_raw)
                .collect(),
        }),
        Op::List {
            root,
            path,
            offset,
            limit,
        } => {
            let (root, rel) = open(root, path).map_err(path_error)?;
            let page = Page::new(*offset, *limit).map_err(path_error)?;
            answer(root.list_dir(&rel, page).map_err(path_error)?)
        }
        Op::Stat { root, path } => {
            let (root, rel) = open(root, path).map_err(path_error)?;
            answer(root.stat(&rel).map_err(path_error)?)
        }
        Op::ReadHead {
            root,
            path,
            max_bytes,
        } => {
            if *max_bytes > MAX_HEAD_BYTES {
                return Err(Refusal::new(
                    "max-bytes-out-of-range",
                    format!(
                        "max_bytes {max_bytes} is over the limit of {MAX_HEAD_BYTES}: ask for fewer bytes"
                    ),
                ));
            }
            let (root, rel) = open(root, path).map_err(path_error)?;
            answer(read_head(&root, &rel, *max_bytes).map_err(path_error)?)
        }
        Op::CreateProjectDir { root, name } => answer(create_project_dir(root, name, account)?),
        Op::DeleteTree { root, path } => answer(delete_tree(root, path, account)?),
        Op::Archive { root, path } => answer(archive(root, path, account)?),
        op @ (Op::Glob { .. } | Op::ReadHeads { .. } | Op::WalkChains { .. }) => {
            crate::ops_import::perform(op, account)
        }
        op @ (Op::RunCommand { .. } | Op::StartJob { .. } | Op::KillJob { .. }) => {
            crate::ops_exec::perform(op, account)
        }
    }
}

fn answer<T: Serialize>(value: T) -> Result<Value, Refusal> {
    serde_json::to_value(value)
        .map_err(|e| Refusal::new("io-error", format!("cannot encode the answer: {e}")))
}

/// A refusal from a [`PathError`]: its own code, except that the kernel's EACCES/EPERM become
/// `permission-denied`, said of the lab's account.
pub fn refusal_of(e: PathError, account: &Account) -> Refusal {
    match e {
        PathError::PermissionDenied => denied(account),
        e => Refusal::new(e.code(), e.to_string()),
    }
}

fn denied(account: &Account) -> Refusal {
    Refusal::new(
        "permission-denied",
        format!(
            "the system refused the lab's Unix account {} (uid {}) access to this path: use a path of this lab, \
             or ask the data's owner to give the lab's group access",
            account.user, account.uid
        ),
    )
}

fn open(root: &str, path: &str) -> Result<(Root, RelPath), PathError> {
    let rel = RelPath::parse(path)?;
    Ok((Root::open(Path::new(root))?, rel))
}

fn read_head(root: &Root, rel: &RelPath, max_bytes: usize) -> Result<Head, PathError> {
    let fd = root.open_beneath(rel, OpenHow::File)?;
    let size = rustix::fs::fstat(&fd)
        .map_err(PathError::from_errno)?
        .st_size;
    let mut head = Vec::with_capacity(max_bytes);
    std::fs::File::from(fd)
        .take(max_bytes as u64)
        .read_to_end(&mut head)?;
    let mut head_hex = String::with_capacity(head.len() * 2);
    for b in head {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        head_hex.push(DIGITS[usize::from(b >> 4)] as char);
        head_hex.push(DIGITS[usize::from(b & 15)] as char);
    }
    Ok(Head {
        size: u64::try_from(size).unwrap_or(0),
        head_hex,
    })
}

/// A system call's failure on `what` (a path relative to the root, for the message).
fn sys_refusal(e: Errno, what: &str, account: &Account) -> Refusal {
    match e {
        Errno::ACCESS | Errno::PERM => denied(account),
        Errno::LOOP => refusal_of(PathError::Symlink, account),
        e => {
            let e = PathError::from_errno(e);
            match e {
                PathError::Io(io) => {
                    Refusal::new("io-error", format!("{what}: {io}: check the file system"))
                }
                e => refusal_of(e, account),
            }
        }
    }
}

fn create_project_dir(root: &str, name: &str, account: &Account) -> Result<CreatedDir, Refusal> {
    let path_error = |e: PathError| refusal_of(e, account);
    let rel = RelPath::parse(name).map_err(path_error)?;
    if rel.as_str() != name || name.contains('/') || name == ".." || rel.components().count() != 1 {
        return Err(Refusal::new(
            "name-not-a-component",
            format!(
                "{name:?} is not a plain directory name (one component, no '/', not '.' or '..'): choose a plain name"
            ),
        ));
    }
    let root = Root::open(Path::new(root)).map_err(path_error)?;
    let sys = |e: Errno| sys_refusal(e, name, account);
    match rustix::fs::mkdirat(&root, name, Mode::from_raw_mode(PROJECT_DIR_MODE)) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            return Err(Refusal::new(
                "exists",
                format!(
                    "{name} already exists in {}: choose another name",
                    root.path().display()
                ),
            ));
        }
        Err(e) => return Err(sys(e)),
    }
    let dir = rustix::fs::openat(
        &root,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys)?;
    // In a setgid parent the new directory took the parent's group: give it the lab's.
    let st = rustix::fs::fstat(&dir).map_err(sys)?;
    if st.st_gid != account.gid {
        rustix::fs::fchown(&dir, None, Some(rustix::fs::Gid::from_raw(account.gid)))
            .map_err(sys)?;
    }
    // Explicitly, after any chown (which clears setgid) and despite the umask.
    rustix::fs::fchmod(&dir, Mode::from_raw_mode(PROJECT_DIR_MODE)).map_err(sys)?;
    let st = rustix::fs::fstat(&dir).map_err(sys)?;
    Ok(CreatedDir {
        path: root.path().join(name).to_string_lossy().into_owned(),
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode & 0o7777,
    })
}

/// The directory at `path` beneath `root` as (parent descriptor, name), following no symlink.
fn parent_and_name(
    root: &Root,
    path: &str,
    account: &Account,
) -> Result<(OwnedFd, CString), Refusal> {
    let rel = RelPath::parse(path).map_err(|e| refusal_of(e, account))?;
    let Some((parent, name)) = rel.split_last() else {
        return Err(Refusal::new(
            "path-is-root",
            "the path names the root itself, which is never deleted: give the path of a directory inside it",
        ));
    };
    if name == ".." {
        return Err(Refusal::new(
            "path-ends-in-dot-dot",
            "the path ends in '..': give the directory's own path",
        ));
    }
    let parent = root
        .open_dir_no_symlinks(&parent)
        .map_err(|e| refusal_of(e, account))?;
    Ok((parent, CString::new(name).expect("RelPath has no NUL")))
}

fn delete_tree(root: &str, path: &str, account: &Account) -> Result<TreeCounts, Refusal> {
    let root = Root::open(Path::new(root)).map_err(|e| refusal_of(e, account))?;
    let (parent, name) = parent_and_name(&root, path, account)?;
    let mut walk = Walk {
        account,
        depth: 0,
        counts: TreeCounts::default(),
    };
    let sys = |e: Errno| sys_refusal(e, path, account);
    let st =
        rustix::fs::statat(&parent, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(sys)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {}
        FileType::Symlink => return Err(refusal_of(PathError::Symlink, account)),
        _ => return Err(refusal_of(PathError::NotADirectory, account)),
    }
    let dir = open_dir(&parent, &name).map_err(sys)?;
    walk.delete_contents(&dir, path)?;
    drop(dir);
    rustix::fs::unlinkat(&parent, name.as_c_str(), AtFlags::REMOVEDIR).map_err(sys)?;
    walk.counts.dirs += 1;
    Ok(walk.counts)
}

fn archive(root: &str, path: &str, account: &Account) -> Result<TreeCounts, Refusal> {
    let (root, rel) = open(root, path).map_err(|e| refusal_of(e, account))?;
    let dir = root
        .open_dir_no_symlinks(&rel)
        .map_err(|e| refusal_of(e, account))?;
    let mut walk = Walk {
        account,
        depth: 0,
        counts: TreeCounts::default(),
    };
    walk.archive_dir(&dir, &rel.to_string())?;
    Ok(walk.counts)
}

/// A directory opened by name relative to its parent, never through a symlink.
fn open_dir(parent: &impl AsFd, name: &CStr) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty())
}

/// Every name in a directory, `.` and `..` excluded.
fn names(dir: BorrowedFd<'_>) -> Result<Vec<CString>, Errno> {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut raw = RawDir::new(dir, &mut buf);
    let mut out = Vec::new();
    while let Some(entry) = raw.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// A walk over a tree, one directory descriptor per level, no symlink followed: every entry is
/// examined with `AT_SYMLINK_NOFOLLOW` and every directory opened with `O_NOFOLLOW` relative
/// to its parent's descriptor.
struct Walk<'a> {
    account: &'a Account,
    depth: usize,
    counts: TreeCounts,
}

impl Walk<'_> {
    fn sys(&self, at: &str) -> impl Fn(Errno) -> Refusal + '_ {
        let at = at.to_owned();
        move |e| sys_refusal(e, &at, self.account)
    }

    fn descend(&mut self, at: &str) -> Result<(), Refusal> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Refusal::new(
                "tree-too-deep",
                format!(
                    "{at} is more than {MAX_DEPTH} directories deep: remove its deepest part first"
                ),
            ));
        }
        Ok(())
    }

    /// Removes everything in `dir`; the directory itself stays.
    fn delete_contents(&mut self, dir: &OwnedFd, at: &str) -> Result<(), Refusal> {
        self.descend(at)?;
        // An archived (read-only) directory of the account's own is made writable again.
        let st = rustix::fs::fstat(dir).map_err(self.sys(at))?;
        if st.st_uid == self.account.uid && st.st_mode & 0o700 != 0o700 {
            rustix::fs::fchmod(dir, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777))
                .map_err(self.sys(at))?;
        }
        for name in names(dir.as_fd()).map_err(self.sys(at))? {
            let sub = format!("{at}/{}", name.to_string_lossy());
            let st = match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.sys(&sub)(e)),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let child = open_dir(dir, &name).map_err(self.sys(&sub))?;
                    self.delete_contents(&child, &sub)?;
                    drop(child);
                    rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)
                        .map_err(self.sys(&sub))?;
                    self.counts.dirs += 1;
                }
                kind => {
                    rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty())
                        .map_err(self.sys(&sub))?;
                    self.counts.files += 1;
                    if kind == FileType::RegularFile {
                        self.counts.bytes += u64::try_from(st.st_size).unwrap_or(0);
                    }
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// Removes every write bit in the tree of `dir`, the directory itself included (last).
    fn archive_dir(&mut self, dir: &OwnedFd, at: &str) -> Result<(), Refusal> {
        self.descend(at)?;
        for name in names(dir.as_fd()).map_err(self.sys(at))? {
            let sub = format!("{at}/{}", name.to_string_lossy());
            let st = match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.sys(&sub)(e)),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let child = open_dir(dir, &name).map_err(self.sys(&sub))?;
                    self.archive_dir(&child, &sub)?;
                }
                // A symlink's own mode means nothing, and its target is never touched.
                FileType::Symlink => self.counts.files += 1,
                kind => {
                    self.read_only_entry(dir, &name, &sub)?;
                    self.counts.files += 1;
                    if kind == FileType::RegularFile {
                        self.counts.bytes += u64::try_from(st.st_size).unwrap_or(0);
                    }
                }
            }
        }
        let st = rustix::fs::fstat(dir).map_err(self.sys(at))?;
        if st.st_mode & 0o222 != 0 {
            rustix::fs::fchmod(dir, Mode::from_raw_mode(st.st_mode & 0o7777 & !0o222))
                .map_err(self.sys(at))?;
        }
        self.counts.dirs += 1;
        self.depth -= 1;
        Ok(())
    }

    /// Removes the write bits of a non-directory entry without following it: the entry is
    /// pinned with `O_PATH | O_NOFOLLOW` (no read permission needed, nothing opened for I/O)
    /// and changed through its `/proc/self/fd` link, which names exactly that inode.
    fn read_only_entry(&self, dir: &OwnedFd, name: &CStr, at: &str) -> Result<(), Refusal> {
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.sys(at))?;
        let st = rustix::fs::fstat(&fd).map_err(self.sys(at))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink | FileType::Directory => return Ok(()), // replaced meanwhile: left alone
            _ => {}
        }
        if st.st_mode & 0o222 != 0 {
            let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rustix::fs::chmodat(
                CWD,
                link.as_str(),
                Mode::from_raw_mode(st.st_mode & 0o7777 & !0o222),
                AtFlags::empty(),
            )
            .map_err(self.sys(at))?;
        }
        Ok(())
    }
}
