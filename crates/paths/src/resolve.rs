//! [`Root::open_beneath`]: resolving a [`RelPath`] beneath a [`Root`] with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
//!
//! The kernel walks every component relative to the root's descriptor and refuses, with EXDEV,
//! any step that would leave it: `..` above the root, an absolute symlink, a relative symlink
//! climbing out, at any depth and through any chain of symlinks. `..` and symlinks that stay
//! inside are followed. Magic links (`/proc/self/root`, `/proc/PID/fd/N`) fail with ELOOP.
//! There is no fallback to string checks: a kernel without `openat2` gets
//! [`PathError::Unsupported`].

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{PathError, RelPath, Root};

/// What [`Root::open_beneath`] opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenHow {
    /// A regular file, read-only. Directories are refused with [`PathError::IsADirectory`],
    /// FIFOs, sockets and devices with [`PathError::NotAFile`] (opened non-blocking first, so
    /// that a FIFO planted in the tree cannot stall the caller).
    File,
    /// A directory, read-only (its entries can be read, paths resolved relative to it).
    Directory,
}

/// The resolution flags used for every user-supplied path.
pub const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// How often a resolution is retried when the kernel answers EAGAIN (a rename elsewhere on the
/// system raced with a `..` step) before giving up with [`PathError::Io`].
const EAGAIN_RETRIES: usize = 32;

impl Root {
    /// Opens `rel` beneath this root. See the module documentation for what is refused.
    pub fn open_beneath(&self, rel: &RelPath, how: OpenHow) -> Result<OwnedFd, PathError> {
        match how {
            OpenHow::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                openat2_beneath(self, rel, flags)
            }
            OpenHow::File => {
                let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
                let fd = openat2_beneath(self, rel, flags)?;
                let stat = rustix::fs::fstat(&fd).map_err(PathError::from_errno)?;
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::RegularFile => {}
                    FileType::Directory => return Err(PathError::IsADirectory),
                    _ => return Err(PathError::NotAFile),
                }
                // Back to blocking reads (no effect on regular files, but no surprise either).
                rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(PathError::from_errno)?;
                Ok(fd)
            }
        }
    }
}

impl Root {
    /// Opens the directory `rel` beneath this root without following any symlink at all, on the
    /// way or at the end (`RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS`): for
    /// operations that change a tree (deleting it, making it read-only), where even a symlink
    /// that stays inside the root would make the operation act on something other than what
    /// was named. A symlink met gives [`PathError::Symlink`].
    pub fn open_dir_no_symlinks(&self, rel: &RelPath) -> Result<OwnedFd, PathError> {
        // No O_NOFOLLOW: with O_DIRECTORY it would turn a final symlink into ENOTDIR, while
        // RESOLVE_NO_SYMLINKS refuses it (as every other symlink) with ELOOP.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        openat2_retrying(
            self,
            rel.for_syscall(),
            flags,
            BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| match e {
            Errno::LOOP => PathError::Symlink,
            e => PathError::from_errno(e),
        })
    }
}

/// `openat2(root, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, errors mapped.
pub(crate) fn openat2_beneath(
    root: &Root,
    rel: &RelPath,
    flags: OFlags,
) -> Result<OwnedFd, PathError> {
    openat2_retrying(root, rel.for_syscall(), flags, BENEATH).map_err(PathError::from_errno)
}

/// `openat2`, retried on EINTR and (a bounded number of times) on EAGAIN.
pub(crate) fn openat2_retrying<Fd: AsFd, P: rustix::path::Arg + Copy>(
    dirfd: Fd,
    path: P,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut again = 0;
    loop {
        match rustix::fs::openat2(dirfd.as_fd(), path, flags, Mode::empty(), resolve) {
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) if again < EAGAIN_RETRIES => again += 1,
            other => return other,
        }
    }
}
