//! Checking the requested account, then becoming it.
//!
//! [`check`] runs first, with the runner's full privileges but before any path is touched;
//! [`become_account`] then drops every privilege for good (supplementary groups, gid, uid — in
//! that order, as setuid would otherwise forbid the later calls) and verifies the drop.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

use crate::policy::{FIRST_ORDINARY_ID, Policy};
use crate::protocol::{Account, Refusal};

/// Who called the runner: its real uid and, when it came through sudo, `SUDO_UID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub real_uid: u32,
    pub sudo_uid: Option<u32>,
}

fn refused(message: String) -> Refusal {
    Refusal::new("account-refused", message)
}

/// Refuses a caller that is neither root nor one of the policy's `server_users`: a runner
/// installed setuid or behind sudo must not act for any local user. The real uid cannot be
/// forged; `SUDO_UID` is believed only when the real uid is root (sudo sets both).
pub fn check_caller(
    policy: &Policy,
    caller: Caller,
    name_of: impl Fn(u32) -> Option<String>,
) -> Result<(), Refusal> {
    let uid = match (caller.real_uid, caller.sudo_uid) {
        (0, None) => return Ok(()),
        (0, Some(sudo)) => sudo,
        (real, _) => real,
    };
    if uid == 0 {
        return Ok(());
    }
    match name_of(uid) {
        Some(name) if policy.server_users.contains(&name) => Ok(()),
        who => Err(Refusal::new(
            "caller-refused",
            format!(
                "{} (uid {uid}) may not call the runner: list the server's account in server_users of the runner policy",
                who.unwrap_or_else(|| "an unknown account".into())
            ),
        )),
    }
}

/// The name of a uid from passwd.
pub fn name_of(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Longest accepted account name.
const NAME_MAX: usize = 256;

/// Refuses the account unless it is an ordinary account of this system (uid and gid at or
/// above the floors, the name resolving to that uid, the gid one of its groups), not the
/// caller's own, and allowed by the policy.
pub fn check(account: &Account, policy: &Policy, caller: Caller) -> Result<(), Refusal> {
    let Account { user, uid, gid } = account;
    let (uid, gid) = (*uid, *gid);
    if user.is_empty()
        || user.len() > NAME_MAX
        || user.chars().any(|c| c.is_control() || c == ':' || c == '/')
    {
        return Err(refused(format!(
            "{user:?} is not a valid Unix account name: configure the lab's account name"
        )));
    }
    if uid == 0 || gid == 0 {
        return Err(refused(format!(
            "the runner never acts as root (account {user}, uid {uid}, gid {gid}): configure the lab's own account"
        )));
    }
    if uid < policy.min_uid {
        return Err(refused(format!(
            "uid {uid} of {user} is below {}, a system account: configure an ordinary account for the lab",
            policy.min_uid
        )));
    }
    if gid < FIRST_ORDINARY_ID {
        return Err(refused(format!(
            "gid {gid} is below {FIRST_ORDINARY_ID}, a system group: configure an ordinary group for the lab"
        )));
    }
    let lookup =
        |e: nix::Error| refused(format!("cannot look {user} up in the user database: {e}"));
    let pw = User::from_name(user).map_err(lookup)?.ok_or_else(|| {
        refused(format!(
            "{user} is not a Unix user on this machine: create it or fix the lab's account"
        ))
    })?;
    if pw.uid.as_raw() != uid {
        return Err(refused(format!(
            "{user} has uid {} on this machine, not {uid}: set the lab's Unix account again so the server reads the uid afresh",
            pw.uid
        )));
    }
    let name = CString::new(user.as_str())
        .map_err(|_| refused(format!("{user:?} contains a NUL byte")))?;
    let groups = nix::unistd::getgrouplist(&name, pw.gid).map_err(lookup)?;
    if !groups.contains(&Gid::from_raw(gid)) {
        return Err(refused(format!(
            "gid {gid} is neither the primary group of {user} nor a group it belongs to: configure one of its groups"
        )));
    }
    if uid == caller.real_uid || caller.sudo_uid == Some(uid) {
        return Err(refused(format!(
            "{user} (uid {uid}) is the account that called the runner: the server must not run as a lab's account"
        )));
    }
    let by_name = policy.allowed_users.iter().any(|u| u == user);
    let by_group = || {
        policy
            .allowed_groups
            .iter()
            .any(|g| match Group::from_name(g) {
                Ok(Some(group)) => groups.contains(&group.gid),
                _ => false,
            })
    };
    if !(by_name || by_group()) {
        return Err(refused(format!(
            "{user} is not allowed by the runner's policy: add it to allowed_users, or it to a group of \
             allowed_groups, in the runner's policy file"
        )));
    }
    Ok(())
}

fn drop_failed(message: String) -> Refusal {
    Refusal::new("privilege-drop-failed", message)
}

/// Becomes the account for good: `setgroups([gid])`, `setgid(gid)`, `setuid(uid)`, umask 007;
/// then verifies real, effective and saved ids, the group list, and that `setuid(0)` now fails.
pub fn become_account(account: &Account) -> Result<(), Refusal> {
    let (uid, gid) = (Uid::from_raw(account.uid), Gid::from_raw(account.gid));
    let step = |what: &str, e: nix::Error| {
        drop_failed(format!(
            "{what} failed ({e}): the runner must run as root — install it owned by root with mode 4755, \
             or let the server's account run it through `sudo -n`"
        ))
    };
    nix::unistd::setgroups(&[gid]).map_err(|e| step("setgroups", e))?;
    nix::unistd::setgid(gid).map_err(|e| step("setgid", e))?;
    nix::unistd::setuid(uid).map_err(|e| step("setuid", e))?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o007));

    let ids =
        nix::unistd::getresuid().map_err(|e| drop_failed(format!("getresuid failed: {e}")))?;
    let gids =
        nix::unistd::getresgid().map_err(|e| drop_failed(format!("getresgid failed: {e}")))?;
    let groups =
        nix::unistd::getgroups().map_err(|e| drop_failed(format!("getgroups failed: {e}")))?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3]
        || [gids.real, gids.effective, gids.saved] != [gid; 3]
        || groups != [gid]
    {
        return Err(drop_failed(format!(
            "after the drop the runner has uids {:?}, gids {:?}, groups {groups:?} instead of {uid}, {gid}, [{gid}]: \
             report this; nothing was done",
            [ids.real, ids.effective, ids.saved],
            [gids.real, gids.effective, gids.saved]
        )));
    }
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(drop_failed(
            "after the drop the runner could become root again: report this; nothing was done"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod caller_tests {
    use super::*;

    fn policy(servers: &[&str]) -> Policy {
        Policy {
            min_uid: FIRST_ORDINARY_ID,
            allowed_users: vec![],
            allowed_groups: vec![],
            server_users: servers.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn names(uid: u32) -> Option<String> {
        match uid {
            999 => Some("cryowarden".into()),
            2102 => Some("cwlab2".into()),
            _ => None,
        }
    }

    #[test]
    fn only_root_and_the_server_account_may_call() {
        let p = policy(&["cryowarden"]);
        assert!(
            check_caller(
                &p,
                Caller {
                    real_uid: 0,
                    sudo_uid: None
                },
                names
            )
            .is_ok(),
            "root directly"
        );
        assert!(
            check_caller(
                &p,
                Caller {
                    real_uid: 0,
                    sudo_uid: Some(999)
                },
                names
            )
            .is_ok(),
            "the server via sudo"
        );
        assert!(
            check_caller(
                &p,
                Caller {
                    real_uid: 999,
                    sudo_uid: None
                },
                names
            )
            .is_ok(),
            "the server, setuid"
        );
        let lab = check_caller(
            &p,
            Caller {
                real_uid: 0,
                sudo_uid: Some(2102),
            },
            names,
        )
        .unwrap_err();
        assert_eq!(lab.code, "caller-refused");
        let forged = check_caller(
            &p,
            Caller {
                real_uid: 2102,
                sudo_uid: Some(999),
            },
            names,
        )
        .unwrap_err();
        assert_eq!(
            forged.code, "caller-refused",
            "SUDO_UID is not believed from a non-root caller"
        );
        assert!(
            check_caller(
                &policy(&[]),
                Caller {
                    real_uid: 999,
                    sudo_uid: None
                },
                names
            )
            .is_err()
        );
    }
}
