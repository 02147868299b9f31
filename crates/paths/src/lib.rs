//! Resolving user-supplied paths beneath a lab's or project's root (DESIGN.md invariant 2).
//!
//! Every path a user sends is checked for what it is ([`RelPath`]: no NUL, valid UTF-8, no
//! control characters, not absolute, within length limits) and then opened relative to a
//! directory handle of the root ([`Root`]) with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
//! The kernel, not a string comparison, decides whether `..` or a symlink leaves the root.
//!
//! - [`root`]: [`Root`], the root held open as an `O_PATH` descriptor;
//! - [`request`]: [`RelPath`], the checked request;
//! - [`resolve`]: [`Root::open_beneath`], opening a file or directory beneath the root, and
//!   [`Root::open_dir_no_symlinks`] for operations that change a tree (no symlink followed at all);
//! - [`list`]: [`Root::list_dir`], a sorted, paged listing that stays fast on huge directories,
//!   and [`Root::stat`], one entry;
//! - [`error`]: [`PathError`], every refusal with a stable code.
//!
//! Descriptors returned here pin the object they name: a directory renamed out of the root after
//! it was opened is still reachable through an old descriptor. Resolve from the [`Root`] for
//! each request instead of keeping descriptors of subdirectories.
//!
//! The server uses this crate to check paths before anything else; the privileged runner
//! (`cryowarden-runner`) uses it again for the file operations it performs as a lab's Unix
//! account, so that the kernel's permission checks come on top of the resolution beneath the root.

#[cfg(feature = "corpus")]
pub mod corpus;
pub mod error;
pub mod list;
pub mod request;
pub mod resolve;
pub mod root;

pub use error::PathError;
pub use list::{Entry, EntryKind, Listing, Page};
pub use request::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES, RelPath};
pub use resolve::OpenHow;
pub use root::Root;
