//! The runner's policy file: which accounts it may act as.
//!
//! ```toml
//! # /etc/cryowarden/runner.toml, owned by root, not writable by group or others.
//! min_uid = 1000                        # optional; may only raise the floor of 1000
//! allowed_users = ["cwlab1", "cwlab2"]  # these accounts
//! allowed_groups = ["cryowarden-labs"]  # and every member of these groups
//! ```

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::protocol::Refusal;

/// Where the policy is read from, unless a root caller names another file in
/// [`CONFIG_ENV`].
pub const DEFAULT_PATH: &str = "/etc/cryowarden/runner.toml";
/// The variable naming another policy file; honoured only when the runner's real uid is 0.
pub const CONFIG_ENV: &str = "CRYOWARDEN_RUNNER_CONFIG";
/// The lowest uid and gid the runner ever acts as.
pub const FIRST_ORDINARY_ID: u32 = 1000;
/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 1 << 20;

const FORMAT: &str = "owned by root, not writable by group or others, containing \
    `allowed_users = [\"lab-account\", ...]` and/or `allowed_groups = [\"group\", ...]` \
    (optionally `min_uid = 1000`)";

/// The parsed policy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Accounts below this uid are refused; at least [`FIRST_ORDINARY_ID`].
    #[serde(default = "first_ordinary_id")]
    pub min_uid: u32,
    /// Accounts allowed by name.
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// Accounts allowed because they belong to one of these groups (primary or supplementary).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Accounts that may call the runner (the server's own), when it is entered through sudo or
    /// installed setuid. Root calling it directly needs no entry.
    #[serde(default)]
    pub server_users: Vec<String>,
}

fn first_ordinary_id() -> u32 {
    FIRST_ORDINARY_ID
}

fn not_configured(message: String) -> Refusal {
    Refusal::new("runner-not-configured", message)
}

impl Policy {
    /// The file to read: [`CONFIG_ENV`] when the real uid is 0 and it is set, else
    /// [`DEFAULT_PATH`].
    pub fn path(real_uid: u32, from_env: Option<PathBuf>) -> PathBuf {
        match from_env {
            Some(path) if real_uid == 0 && !path.as_os_str().is_empty() => path,
            _ => PathBuf::from(DEFAULT_PATH),
        }
    }

    /// Reads and checks the policy file: a regular file owned by root, not writable by group or
    /// others, valid TOML of the documented shape.
    pub fn load(path: &Path) -> Result<Policy, Refusal> {
        let shown = path.display();
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_configured(format!(
                    "the runner's policy file {shown} does not exist: create it, {FORMAT}"
                )));
            }
            Err(e) => {
                return Err(not_configured(format!(
                    "cannot read the runner's policy file {shown}: {e}"
                )));
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| not_configured(format!("cannot examine {shown}: {e}")))?;
        if !meta.is_file() {
            return Err(not_configured(format!(
                "the runner's policy file {shown} is not a regular file: {FORMAT}"
            )));
        }
        if meta.uid() != 0 {
            return Err(not_configured(format!(
                "the runner's policy file {shown} is owned by uid {}, not root: `chown root {shown}`",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(not_configured(format!(
                "the runner's policy file {shown} is writable by group or others (mode {:o}): `chmod go-w {shown}`",
                meta.mode() & 0o7777
            )));
        }
        let mut text = String::new();
        (&mut file)
            .take(MAX_POLICY_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| {
                not_configured(format!("cannot read the runner's policy file {shown}: {e}"))
            })?;
        Policy::parse(&text)
            .map_err(|e| not_configured(format!("the runner's policy file {shown}: {e}")))
    }

    /// Parses the policy's text.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy =
            toml::from_str(text).map_err(|e| format!("{e}; expected a file {FORMAT}"))?;
        if policy.min_uid < FIRST_ORDINARY_ID {
            return Err(format!(
                "min_uid = {} is below {FIRST_ORDINARY_ID}: system accounts are never allowed; remove the line or raise it",
                policy.min_uid
            ));
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let p = Policy::parse("allowed_users = [\"cwlab1\"]").unwrap();
        assert_eq!(
            (p.min_uid, p.allowed_users, p.allowed_groups),
            (1000, vec!["cwlab1".to_owned()], vec![])
        );
        assert_eq!(Policy::parse("min_uid = 5000").unwrap().min_uid, 5000);
        assert!(
            Policy::parse("min_uid = 999")
                .unwrap_err()
                .contains("below 1000")
        );
        assert!(Policy::parse("allowed_user = [\"x\"]").is_err());
        assert!(Policy::parse("allowed_users = \"x\"").is_err());
    }

    #[test]
    fn the_environment_names_the_file_only_for_root() {
        let other = Some(PathBuf::from("/tmp/p.toml"));
        assert_eq!(Policy::path(0, other.clone()), PathBuf::from("/tmp/p.toml"));
        assert_eq!(Policy::path(1000, other), PathBuf::from(DEFAULT_PATH));
        assert_eq!(Policy::path(0, None), PathBuf::from(DEFAULT_PATH));
    }
}
