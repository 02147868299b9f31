//! [`Root`]: a directory handle that every user-supplied path is resolved beneath.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::PathError;
use super::resolve::openat2_retrying;

/// A lab's data root or a project's root, held open as an `O_PATH` directory descriptor.
///
/// Once opened, the root is the directory object, not its name: renaming or replacing the
/// configured path afterwards does not move what paths are resolved beneath.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens the configured root: an absolute path without `..`, naming an existing directory
    /// whose last component is not a symbolic link. It is opened with
    /// `openat2(O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, RESOLVE_NO_MAGICLINKS)`; symlinks
    /// in the components above it (an administrator's `/data -> /gpfs/data`) are followed.
    pub fn open(path: &Path) -> Result<Root, PathError> {
        let shown = || path.to_string_lossy().into_owned();
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(PathError::RootNotAbsolute { path: shown() });
        }
        // Rebuilt from its components, which drops trailing slashes: "link/" would make the
        // kernel follow a final symlink despite O_NOFOLLOW.
        let clean: PathBuf = path.components().collect();
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match openat2_retrying(CWD, &clean, flags, ResolveFlags::NO_MAGICLINKS) {
            Ok(fd) => Ok(Root { fd, path: clean }),
            Err(Errno::NOTDIR) => {
                // Either the root itself is not a directory, or it is a symlink (O_NOFOLLOW with
                // O_DIRECTORY fails with ENOTDIR on a symlink); tell which, for the message.
                match rustix::fs::statat(CWD, &clean, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                        Err(PathError::RootIsSymlink { path: shown() })
                    }
                    Ok(_) => Err(PathError::RootNotADirectory { path: shown() }),
                    Err(e) => Err(PathError::from_errno(e)),
                }
            }
            Err(Errno::NOENT) => Err(PathError::RootNotFound { path: shown() }),
            Err(e) => Err(PathError::from_errno(e)),
        }
    }

    /// The configured path, as given (less trailing slashes): for display and logs only, never
    /// for resolving anything.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Root")
            .field("path", &self.path)
            .field("fd", &self.fd)
            .finish()
    }
}
