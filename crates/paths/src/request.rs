//! [`RelPath`]: a user-supplied path, checked for what it is before the kernel decides where it
//! leads.
//!
//! The checks here are about the request's bytes only (NUL, encoding, length, control characters,
//! a leading `/`). Whether the path stays beneath the root is never decided here: `..` components
//! are kept as they are and the kernel resolves them (`openat2` with `RESOLVE_BENEATH`), together
//! with every symlink on the way.

use std::fmt;

use super::PathError;

/// Longest accepted request, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted component, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// A relative path from a user, checked and normalised: empty and `.` components are dropped
/// (so `""`, `"."` and `"./"` all name the root itself), `..` components are kept for the kernel.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelPath {
    /// Components joined by `/`; empty for the root itself.
    joined: String,
}

impl RelPath {
    /// The root itself.
    pub fn root() -> RelPath {
        RelPath {
            joined: String::new(),
        }
    }

    /// Checks a request given as text.
    ///
    /// Refused, in this order: a NUL byte, more than [`MAX_PATH_BYTES`] bytes, a control
    /// character, a leading `/`, a component longer than [`MAX_COMPONENT_BYTES`] bytes.
    pub fn parse(request: &str) -> Result<RelPath, PathError> {
        if request.as_bytes().contains(&0) {
            return Err(PathError::NulByte);
        }
        if request.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if let Some((offset, ch)) = request.char_indices().find(|(_, c)| c.is_control()) {
            return Err(PathError::ControlCharacter { ch, offset });
        }
        if request.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let mut joined = String::with_capacity(request.len());
        for component in request.split('/') {
            if component.len() > MAX_COMPONENT_BYTES {
                return Err(PathError::ComponentTooLong {
                    len: component.len(),
                });
            }
            if component.is_empty() || component == "." {
                continue;
            }
            if !joined.is_empty() {
                joined.push('/');
            }
            joined.push_str(component);
        }
        Ok(RelPath { joined })
    }

    /// Checks a request given as bytes (a raw URL path segment, a form field): a NUL byte is
    /// reported as such, then invalid UTF-8 is refused, then [`RelPath::parse`] applies.
    pub fn from_bytes(request: &[u8]) -> Result<RelPath, PathError> {
        if request.contains(&0) {
            return Err(PathError::NulByte);
        }
        let text = std::str::from_utf8(request).map_err(|_| PathError::InvalidUtf8)?;
        RelPath::parse(text)
    }

    /// True for the root itself.
    pub fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    /// The normalised path, `""` for the root itself.
    pub fn as_str(&self) -> &str {
        &self.joined
    }

    /// The components, `..` included.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.joined.split('/').filter(|c| !c.is_empty())
    }

    /// The path of the parent and the last component, `None` for the root itself. The last
    /// component may be `..`: callers that act on the named entry itself refuse that.
    pub fn split_last(&self) -> Option<(RelPath, &str)> {
        match self.joined.rsplit_once('/') {
            Some((parent, last)) => Some((
                RelPath {
                    joined: parent.to_owned(),
                },
                last,
            )),
            None if self.joined.is_empty() => None,
            None => Some((RelPath::root(), &self.joined)),
        }
    }

    /// What to hand to `openat2`: `.` for the root itself.
    pub(crate) fn for_syscall(&self) -> &str {
        if self.joined.is_empty() {
            "."
        } else {
            &self.joined
        }
    }
}

/// Shows the normalised path, `.` for the root itself.
impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.for_syscall())
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", self.for_syscall())
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
