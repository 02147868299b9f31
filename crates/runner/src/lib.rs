//! cryowarden's privileged runner (DESIGN.md, invariant 2): the small program that performs file
//! operations *as a lab's Unix account*, so that the kernel refuses one lab's account access to
//! another lab's data even if a check in the server had a bug.
//!
//! The runner reads one JSON [`protocol::Request`] from stdin and writes one JSON
//! [`protocol::Answer`] to stdout; no data travels in its arguments. It runs as root (installed
//! setuid root, or through `sudo -n` from the server's account) and, in this order:
//!
//! 1. reads its [`policy`] (`/etc/cryowarden/runner.toml`; a root caller may name another file in
//!    `CRYOWARDEN_RUNNER_CONFIG`), refusing a file that is missing, not root's, or writable by
//!    others (`runner-not-configured`);
//! 2. [`account::check`]s the requested account: an ordinary account of this system, not the
//!    caller's, allowed by the policy (`account-refused`);
//! 3. [`account::become_account`]: drops every privilege for good and verifies the drop
//!    (`privilege-drop-failed`);
//! 4. performs the [`ops`] operation, resolving every path beneath its root with
//!    `cryowarden_paths` (the kernel's EACCES/EPERM become `permission-denied`).

pub mod account;
pub mod error;
pub mod ops;
pub mod ops_exec;
pub mod ops_import;
pub mod policy;
pub mod protocol;

use std::path::PathBuf;

use account::Caller;
use policy::Policy;
use protocol::{Answer, Refusal, Request};

/// What the runner takes from its environment.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `CRYOWARDEN_RUNNER_CONFIG`, if set.
    pub config: Option<PathBuf>,
    /// `SUDO_UID`, if set and a number.
    pub sudo_uid: Option<u32>,
    /// `SLURM_CONF`, if set: passed on to the programs of the exec ops when the real uid is 0
    /// ([`ops_exec::inherit`]).
    pub slurm_conf: Option<std::ffi::OsString>,
}

impl Env {
    /// Reads the process's environment (nothing else in it is used).
    pub fn from_process() -> Env {
        Env {
            config: std::env::var_os(policy::CONFIG_ENV).map(PathBuf::from),
            sudo_uid: std::env::var("SUDO_UID")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            slurm_conf: std::env::var_os(ops_exec::SLURM_CONF_ENV),
        }
    }
}

/// The exit status when the request could not be parsed.
pub const EXIT_BAD_REQUEST: u8 = 2;

/// Runs one request: the answer to print and the exit status (0, or [`EXIT_BAD_REQUEST`]).
pub fn run(input: std::io::Result<Vec<u8>>, env: &Env) -> (Answer, u8) {
    let request = input
        .map_err(|e| format!("cannot read stdin: {e}"))
        .and_then(|bytes| {
            if bytes.len() as u64 > protocol::MAX_REQUEST_BYTES {
                Err(format!(
                    "the request is over {} bytes",
                    protocol::MAX_REQUEST_BYTES
                ))
            } else {
                Request::parse(&bytes)
            }
        });
    let request = match request {
        Ok(request) => request,
        Err(e) => {
            let message = format!(
                "the runner could not read its request ({e}): install the server and the runner from the same release"
            );
            return (
                Answer::Error(Refusal::new("bad-request", message)),
                EXIT_BAD_REQUEST,
            );
        }
    };
    match serve(&request, env) {
        Ok(value) => (Answer::Ok(value), 0),
        Err(refusal) => (Answer::Error(refusal), 0),
    }
}

fn serve(request: &Request, env: &Env) -> Result<serde_json::Value, Refusal> {
    let real_uid = rustix::process::getuid().as_raw();
    let policy = Policy::load(&Policy::path(real_uid, env.config.clone()))?;
    account::check_caller(
        &policy,
        Caller {
            real_uid,
            sudo_uid: env.sudo_uid,
        },
        account::name_of,
    )?;
    account::check(
        &request.account,
        &policy,
        Caller {
            real_uid,
            sudo_uid: env.sudo_uid,
        },
    )?;
    ops_exec::inherit(env, real_uid);
    account::become_account(&request.account)?;
    ops::perform(&request.op, &request.account)
}
