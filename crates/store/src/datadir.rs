//! The data directory holds the database (password hashes, the SMTP password), logs, audit
//! archives, reports and backups: it is the server account's alone. It is created 0700, files
//! in it 0600 (explicit modes; `cryowarden serve` also sets umask 077), and `serve` refuses to
//! start on a data directory that group or others may read, write or enter.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::StoreError;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Options that create a file 0600 (the mode applies only when it is created).
pub fn private_file() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Sets `path` to 0600 if it exists (a file a library created under the process umask).
pub fn make_private(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot make the file private (0600)");
    }
}

/// Creates the data directory 0700 if missing; refuses one that group or others can read,
/// write or enter, saying the command that fixes it.
pub fn prepare_for_serve(dir: &Path) -> Result<(), StoreError> {
    create_private_dir(dir).map_err(|e| {
        StoreError::Config(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| {
            StoreError::Config(format!(
                "cannot read the data directory {}: {e}",
                dir.display()
            ))
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let shown = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        return Err(StoreError::Config(format!(
            "the data directory {} has mode {:04o}: group or others can reach the database (password hashes, \
             the SMTP password), logs and backups in it. Make it the server account's alone and start again:\n  \
             chmod 700 {}",
            shown.display(),
            mode & 0o7777,
            shlex::try_quote(&shown.display().to_string()).unwrap_or_default(),
        )));
    }
    Ok(())
}

/// Everything the server creates from now on is its own alone, whatever the caller's umask.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}
