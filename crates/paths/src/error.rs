//! [`PathError`]: why a path was refused or could not be opened, with a stable [`PathError::code`].

use std::io;

/// Why a user-supplied path (or a configured root) was refused or could not be opened.
///
/// Messages are written for the person who sent the path: they say what was wrong and what to do,
/// and never reveal anything about where a refused path or symlink would have led.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    // --- The request itself (checked before any system call) ---
    /// The path starts with `/`. Paths are always relative to the lab's or project's root.
    #[error(
        "absolute paths are not accepted: give the path relative to the root (without a leading '/')"
    )]
    Absolute,
    /// The request contains a NUL byte.
    #[error("the path contains a NUL byte: remove it")]
    NulByte,
    /// The request is not valid UTF-8.
    #[error("the path is not valid UTF-8: send it UTF-8 encoded")]
    InvalidUtf8,
    /// The whole path is longer than [`super::MAX_PATH_BYTES`] bytes, or the kernel found it too long.
    #[error("the path is too long (at most 4096 bytes): shorten it")]
    TooLong,
    /// One component (between two `/`) is longer than [`super::MAX_COMPONENT_BYTES`] bytes.
    #[error("a path component is {len} bytes long, over the 255-byte limit: shorten that name")]
    ComponentTooLong { len: usize },
    /// A control character (U+0000–U+001F, U+007F–U+009F) at this byte offset.
    #[error("the path contains a control character ({ch:?}) at byte {offset}: remove it")]
    ControlCharacter { ch: char, offset: usize },

    // --- Resolution beneath the root (decided by the kernel) ---
    /// `..`, or a symlink met on the way, leads outside the root.
    #[error(
        "the path leads outside the root (through '..' or a symbolic link): use a path inside the root"
    )]
    Escapes,
    /// Too many symlinks on the way (a symlink loop), or a `/proc` magic link: the kernel reports
    /// both with ELOOP under `RESOLVE_NO_MAGICLINKS`, and they cannot be told apart safely.
    #[error(
        "the path runs into a symbolic link loop or a /proc magic link: remove or fix that link"
    )]
    SymlinkLoop,
    /// The path is, or goes through, a symbolic link, and the operation follows none
    /// ([`super::Root::open_dir_no_symlinks`]).
    #[error(
        "the path is or goes through a symbolic link, which this operation never follows: give the real path"
    )]
    Symlink,
    /// Nothing exists at the path beneath the root.
    #[error("no such file or directory beneath the root: check the path")]
    NotFound,
    /// A component on the way (or the target, when a directory was asked for) is not a directory.
    #[error("a component of the path is not a directory: check the path")]
    NotADirectory,
    /// A file was asked for and the path names a directory.
    #[error("the path names a directory, not a file: list it instead of opening it")]
    IsADirectory,
    /// A file was asked for and the path names something that is neither a regular file nor a
    /// directory (a FIFO, socket or device).
    #[error(
        "the path names a special file (FIFO, socket or device), which is never opened: use a regular file"
    )]
    NotAFile,
    /// The server's account may not read the path.
    #[error("permission denied on the path: ask the lab to make it readable by the service")]
    PermissionDenied,
    /// The kernel lacks `openat2` (Linux < 5.6); there is no string-based fallback.
    #[error(
        "this kernel cannot resolve paths safely (openat2 needs Linux 5.6 or later): upgrade the kernel"
    )]
    Unsupported,

    // --- Listing ---
    /// `Page::limit` outside 1..=1000.
    #[error("page limit {limit} is out of range: ask for 1 to 1000 entries")]
    PageLimit { limit: usize },

    // --- The configured root (an administrator's setting) ---
    /// The configured root is not an absolute path.
    #[error("the root {path:?} is not an absolute path: configure an absolute path")]
    RootNotAbsolute { path: String },
    /// The configured root's last component is a symbolic link.
    #[error("the root {path:?} is a symbolic link: configure the real directory it points to")]
    RootIsSymlink { path: String },
    /// The configured root exists but is not a directory.
    #[error("the root {path:?} is not a directory: configure a directory")]
    RootNotADirectory { path: String },
    /// The configured root does not exist.
    #[error("the root {path:?} does not exist: create it or fix the configuration")]
    RootNotFound { path: String },

    /// Any other system error.
    #[error("input/output error while resolving the path: {0}")]
    Io(#[from] io::Error),
}

impl PathError {
    /// A stable kebab-case code, for API answers and logs.
    pub fn code(&self) -> &'static str {
        match self {
            PathError::Absolute => "path-absolute",
            PathError::NulByte => "path-nul-byte",
            PathError::InvalidUtf8 => "path-invalid-utf8",
            PathError::TooLong => "path-too-long",
            PathError::ComponentTooLong { .. } => "path-component-too-long",
            PathError::ControlCharacter { .. } => "path-control-character",
            PathError::Escapes => "path-escapes-root",
            PathError::SymlinkLoop => "path-symlink-loop",
            PathError::Symlink => "path-symlink-refused",
            PathError::NotFound => "path-not-found",
            PathError::NotADirectory => "path-not-a-directory",
            PathError::IsADirectory => "path-is-a-directory",
            PathError::NotAFile => "path-not-a-file",
            PathError::PermissionDenied => "path-permission-denied",
            PathError::Unsupported => "path-resolution-unsupported",
            PathError::PageLimit { .. } => "page-limit-out-of-range",
            PathError::RootNotAbsolute { .. } => "root-not-absolute",
            PathError::RootIsSymlink { .. } => "root-is-symlink",
            PathError::RootNotADirectory { .. } => "root-not-a-directory",
            PathError::RootNotFound { .. } => "root-not-found",
            PathError::Io(_) => "path-io-error",
        }
    }

    /// True when the path was refused for what it is or where it leads (as opposed to being
    /// absent, unreadable, or an I/O failure): the request checks and the kernel's escape refusals.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PathError::Absolute
                | PathError::NulByte
                | PathError::InvalidUtf8
                | PathError::TooLong
                | PathError::ComponentTooLong { .. }
                | PathError::ControlCharacter { .. }
                | PathError::Escapes
                | PathError::SymlinkLoop
                | PathError::Symlink
        )
    }

    /// Maps an errno of `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` (or of a call relative
    /// to a directory opened that way).
    pub fn from_errno(e: rustix::io::Errno) -> PathError {
        use rustix::io::Errno;
        match e {
            Errno::XDEV => PathError::Escapes,
            Errno::LOOP => PathError::SymlinkLoop,
            Errno::NOENT => PathError::NotFound,
            Errno::NOTDIR => PathError::NotADirectory,
            Errno::ACCESS | Errno::PERM => PathError::PermissionDenied,
            Errno::NAMETOOLONG => PathError::TooLong,
            Errno::NOSYS => PathError::Unsupported,
            other => PathError::Io(other.into()),
        }
    }
}
