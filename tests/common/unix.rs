//! Real Unix accounts and a two-lab tree on disk with realistic permissions, for the separation
//! tests. The suite runs as root (the test command says so); accounts are created once per
//! machine, serialised across test processes by a lock file.

use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};

/// The lab accounts: (name, uid). Their primary groups have the same name and id.
pub const LAB_ACCOUNTS: [(&str, u32); 2] = [("cwlab1", 2101), ("cwlab2", 2102)];

/// Creates `cwlab1` and `cwlab2` if they are missing.
pub fn unix_accounts() {
    let lock = std::fs::File::create("/tmp/cryowarden-test-accounts.lock").expect("lock file");
    lock.lock().expect("lock");
    for (name, uid) in LAB_ACCOUNTS {
        let exists = std::process::Command::new("id")
            .arg("-u")
            .arg(name)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let out = std::process::Command::new("useradd")
                .args(["-M", "-u", &uid.to_string(), "-U", name])
                .output()
                .expect("useradd (the tests run as root)");
            assert!(
                out.status.success() || out.status.code() == Some(9),
                "useradd {name}: {out:?}"
            );
        }
    }
}

/// Writes a runner policy allowing the lab accounts, owned by root and mode 0644 as the runner
/// requires; returns its path.
pub fn runner_policy(dir: &Path) -> PathBuf {
    let path = dir.join("runner.toml");
    std::fs::write(
        &path,
        "min_uid = 1000\nallowed_users = [\"cwlab1\", \"cwlab2\"]\n",
    )
    .expect("policy");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod policy");
    path
}

/// The built runner binary, next to the test binaries' directory.
pub fn runner_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("cryowarden-runner");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p cryowarden-runner`",
        bin.display()
    );
    bin
}

/// Two labs' storage on disk:
///
/// ```text
/// base/                  0755 root
///   raw/lab1/            0750 cwlab1:cwlab1   movie_001.tif, sub/deep/frames.eer,
///                                             escape -> ../lab2/secret.mrc, escape-dir -> base/raw/lab2
///   raw/lab2/            0750 cwlab2:cwlab2   secret.mrc (0640)
///   projects/lab1/       2770 cwlab1:cwlab1
///   projects/lab2/       2770 cwlab2:cwlab2
/// ```
pub struct TwoLabs {
    pub base: PathBuf,
    pub raw1: PathBuf,
    pub raw2: PathBuf,
    pub projects1: PathBuf,
    pub projects2: PathBuf,
}

impl TwoLabs {
    pub fn create(base: &Path) -> TwoLabs {
        unix_accounts();
        let base = base.join("storage");
        let labs = TwoLabs {
            raw1: base.join("raw/lab1"),
            raw2: base.join("raw/lab2"),
            projects1: base.join("projects/lab1"),
            projects2: base.join("projects/lab2"),
            base: base.clone(),
        };
        for d in [&labs.raw1, &labs.raw2, &labs.projects1, &labs.projects2] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        for d in [
            &base,
            &base.join("raw"),
            &base.join("projects"),
            base.parent().unwrap(),
        ] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::create_dir_all(labs.raw1.join("sub/deep")).unwrap();
        std::fs::write(labs.raw1.join("movie_001.tif"), b"II*\0lab1 movie").unwrap();
        std::fs::write(labs.raw1.join("sub/deep/frames.eer"), b"lab1 frames").unwrap();
        symlink("../lab2/secret.mrc", labs.raw1.join("escape")).unwrap();
        symlink(&labs.raw2, labs.raw1.join("escape-dir")).unwrap();
        std::fs::write(labs.raw2.join("secret.mrc"), b"lab2's unpublished map").unwrap();
        let own = |p: &Path, uid: u32, mode: u32| {
            chown(p, Some(uid), Some(uid)).expect("chown");
            if !p.is_symlink() {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            }
        };
        for p in [
            &labs.raw1,
            &labs.raw1.join("sub"),
            &labs.raw1.join("sub/deep"),
        ] {
            own(p, 2101, 0o750);
        }
        own(&labs.raw1.join("movie_001.tif"), 2101, 0o640);
        own(&labs.raw1.join("sub/deep/frames.eer"), 2101, 0o640);
        std::os::unix::fs::lchown(labs.raw1.join("escape"), Some(2101), Some(2101)).unwrap();
        std::os::unix::fs::lchown(labs.raw1.join("escape-dir"), Some(2101), Some(2101)).unwrap();
        own(&labs.raw2, 2102, 0o750);
        own(&labs.raw2.join("secret.mrc"), 2102, 0o640);
        own(&labs.projects1, 2101, 0o2770);
        own(&labs.projects2, 2102, 0o2770);
        labs
    }
}
