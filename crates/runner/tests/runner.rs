//! The real `cryowarden-runner` binary, run as root (as the test suite is), acting as the Unix
//! accounts cwlab1 (uid 2101) and cwlab2 (uid 2102) on a two-lab tree: what the path check
//! refuses, what only the kernel refuses (the path check passes), tree operations that must
//! never follow a symlink, and every account and policy refusal.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use tempfile::TempDir;

const RUNNER: &str = env!("CARGO_BIN_EXE_cryowarden-runner");

/// Creates cwlab1 and cwlab2 (the names and uids of the root package's tests/labs.rs) once per
/// test process, under a file lock shared by all test processes, and returns their gids.
fn accounts() -> (u32, u32) {
    static GIDS: OnceLock<(u32, u32)> = OnceLock::new();
    *GIDS.get_or_init(|| {
        // The lock file of the root package's tests/common/unix.rs: one useradd at a time.
        let lock = fs::File::create("/tmp/cryowarden-test-accounts.lock").unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        for (name, uid) in [("cwlab1", "2101"), ("cwlab2", "2102")] {
            if nix::unistd::User::from_name(name).unwrap().is_none() {
                let out = Command::new("useradd")
                    .args(["-M", "-u", uid, "-U", name])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success() || out.status.code() == Some(9),
                    "useradd {name}: {out:?}"
                );
            }
        }
        let gid = |name| {
            nix::unistd::User::from_name(name)
                .unwrap()
                .unwrap()
                .gid
                .as_raw()
        };
        (gid("cwlab1"), gid("cwlab2"))
    })
}

fn account(user: &str, uid: u32, gid: u32) -> Value {
    json!({ "user": user, "uid": uid, "gid": gid })
}

/// Runs the runner with `env` (and nothing else) in its environment; the answer and exit status.
fn run_with(request: &[u8], env: &[(&str, &str)], uid: Option<u32>) -> (Value, i32) {
    let mut cmd = Command::new(RUNNER);
    cmd.env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(uid) = uid {
        cmd.uid(uid);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    let answer = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (answer, out.status.code().unwrap())
}

/// The two-lab tree:
///
/// ```text
/// T/                      root 0755
///   policy.toml           root 0644: allowed_users = ["cwlab1"], allowed_groups = ["cwlab2"],
///                         server_users = ["cwlab1", "cwlab2"] (callers through sudo, for the SUDO_UID cases)
///   lab1/                 cwlab1 0750
///     data/a.mrc          "MRC-HEADER-and-more"
///     data/sub/b.txt
///     to-secret -> T/lab2/secret.txt      (absolute symlink out of the root)
///     to-lab2 -> ../lab2                  (relative symlink out of the root)
///     stolen                              (hard link of lab2/secret.txt: passes the path check)
///   lab2/                 cwlab2 0750
///     secret.txt          cwlab2 0640
///   outside/              cwlab1 0770 (what a followed symlink would reach: writable by cwlab1)
///     keep.txt, dir/keep2.txt
/// ```
struct Tree {
    t: TempDir,
    gid1: u32,
    gid2: u32,
}

impl Tree {
    fn new() -> Tree {
        let (gid1, gid2) = accounts();
        let t = tempfile::Builder::new()
            .prefix("cw-runner")
            .tempdir()
            .unwrap();
        let p = t.path();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            p.join("policy.toml"),
            "allowed_users = [\"cwlab1\"]\nallowed_groups = [\"cwlab2\"]\nserver_users = [\"cwlab1\", \"cwlab2\"]\n",
        )
        .unwrap();
        fs::set_permissions(p.join("policy.toml"), fs::Permissions::from_mode(0o644)).unwrap();

        fs::create_dir_all(p.join("lab1/data/sub")).unwrap();
        fs::write(p.join("lab1/data/a.mrc"), "MRC-HEADER-and-more").unwrap();
        fs::write(p.join("lab1/data/sub/b.txt"), "b").unwrap();
        fs::create_dir(p.join("lab2")).unwrap();
        fs::write(p.join("lab2/secret.txt"), "lab2's secret").unwrap();
        symlink(p.join("lab2/secret.txt"), p.join("lab1/to-secret")).unwrap();
        symlink("../lab2", p.join("lab1/to-lab2")).unwrap();
        fs::create_dir_all(p.join("outside/dir")).unwrap();
        fs::write(p.join("outside/keep.txt"), "keep").unwrap();
        fs::write(p.join("outside/dir/keep2.txt"), "keep2").unwrap();

        chown_tree(&p.join("lab1"), 2101, gid1);
        chown_tree(&p.join("outside"), 2101, gid1);
        chown_tree(&p.join("lab2"), 2102, gid2);
        fs::set_permissions(p.join("lab1"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(p.join("lab2"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(p.join("lab2/secret.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(p.join("outside"), fs::Permissions::from_mode(0o770)).unwrap();
        fs::hard_link(p.join("lab2/secret.txt"), p.join("lab1/stolen")).unwrap();
        Tree { t, gid1, gid2 }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.t.path().join(rel)
    }

    fn root(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_owned()
    }

    fn lab1(&self) -> Value {
        account("cwlab1", 2101, self.gid1)
    }

    fn lab2(&self) -> Value {
        account("cwlab2", 2102, self.gid2)
    }

    /// Runs `op` (an object with "op" and its fields) as `account` under the tree's policy.
    fn call(&self, account: Value, op: Value) -> Value {
        self.call_env(account, op, &[])
    }

    fn call_env(&self, account: Value, op: Value, env: &[(&str, &str)]) -> Value {
        let mut request = op;
        request["account"] = account;
        let policy = self.root("policy.toml");
        let mut all = vec![("CRYOWARDEN_RUNNER_CONFIG", policy.as_str())];
        all.extend_from_slice(env);
        let (answer, status) = run_with(request.to_string().as_bytes(), &all, None);
        assert_eq!(status, 0, "{answer}");
        answer
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

#[track_caller]
fn ok(answer: Value) -> Value {
    match answer.get("ok") {
        Some(v) => v.clone(),
        None => panic!("expected ok, got {answer}"),
    }
}

#[track_caller]
fn code(answer: &Value) -> &str {
    let code = answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {answer}"));
    assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    code
}

#[test]
fn check_reports_the_dropped_identity() {
    let tree = Tree::new();
    let checked = ok(tree.call(tree.lab1(), json!({ "op": "check" })));
    assert_eq!(
        checked,
        json!({ "uid": 2101, "gid": tree.gid1, "groups": [tree.gid1] })
    );
    // cwlab2 is allowed through its group, not by name.
    assert_eq!(
        ok(tree.call(tree.lab2(), json!({ "op": "check" })))["uid"],
        2102
    );
}

#[test]
fn a_lab_reads_its_own_data() {
    let tree = Tree::new();
    let root = tree.root("lab1");
    let listing = ok(tree.call(
        tree.lab1(),
        json!({ "op": "list", "root": root, "path": "", "offset": 0, "limit": 10 }),
    ));
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data", "stolen", "to-lab2", "to-secret"]);
    assert_eq!(listing["entries"][3]["kind"], "symlink");
    let listing: cryowarden_paths::Listing = serde_json::from_value(listing).unwrap();
    assert_eq!(listing.total, 4);

    let entry = ok(tree.call(
        tree.lab1(),
        json!({ "op": "stat", "root": root, "path": "data/a.mrc" }),
    ));
    assert_eq!(
        (
            entry["name"].as_str(),
            entry["kind"].as_str(),
            entry["size"].as_u64()
        ),
        (Some("a.mrc"), Some("file"), Some(19))
    );
    // A symlink is described, not followed (wherever it points).
    assert_eq!(
        ok(tree.call(
            tree.lab1(),
            json!({ "op": "stat", "root": root, "path": "to-secret" })
        ))["kind"],
        "symlink"
    );

    let head = ok(tree.call(
        tree.lab1(),
        json!({ "op": "read_head", "root": root, "path": "data/a.mrc", "max_bytes": 10 }),
    ));
    let head: cryowarden_runner::protocol::Head = serde_json::from_value(head).unwrap();
    assert_eq!(
        (head.size, head.bytes().unwrap()),
        (19, b"MRC-HEADER".to_vec())
    );
    let too_much = json!({ "op": "read_head", "root": root, "path": "data/a.mrc", "max_bytes": (1 << 20) + 1 });
    assert_eq!(
        code(&tree.call(tree.lab1(), too_much)),
        "max-bytes-out-of-range"
    );
}

#[test]
fn another_labs_root_is_refused_by_the_kernel() {
    let tree = Tree::new();
    let root2 = tree.root("lab2");
    let ops = [
        json!({ "op": "list", "root": root2, "path": "", "offset": 0, "limit": 10 }),
        json!({ "op": "stat", "root": root2, "path": "secret.txt" }),
        json!({ "op": "read_head", "root": root2, "path": "secret.txt", "max_bytes": 100 }),
    ];
    for op in ops {
        assert_eq!(
            code(&tree.call(tree.lab1(), op.clone())),
            "permission-denied",
            "{op}"
        );
        // The same request as the other lab's own account works: the refusal is the account's.
        ok(tree.call(tree.lab2(), op));
    }
}

#[test]
fn symlinks_out_of_the_root_are_refused_by_the_path_check() {
    let tree = Tree::new();
    let root = tree.root("lab1");
    let read = json!({ "op": "read_head", "root": root, "path": "to-secret", "max_bytes": 100 });
    assert_eq!(code(&tree.call(tree.lab1(), read)), "path-escapes-root");
    let list = json!({ "op": "list", "root": root, "path": "to-lab2", "offset": 0, "limit": 10 });
    assert_eq!(code(&tree.call(tree.lab1(), list)), "path-escapes-root");
    let up =
        json!({ "op": "read_head", "root": root, "path": "../lab2/secret.txt", "max_bytes": 100 });
    assert_eq!(code(&tree.call(tree.lab1(), up)), "path-escapes-root");
}

#[test]
fn the_kernel_refuses_where_the_path_check_passes() {
    let tree = Tree::new();
    // The path check passes: lab2/secret.txt is beneath the root T.
    let read = json!({ "op": "read_head", "root": tree.root(""), "path": "lab2/secret.txt", "max_bytes": 100 });
    assert_eq!(
        code(&tree.call(tree.lab1(), read.clone())),
        "permission-denied"
    );
    let head: cryowarden_runner::protocol::Head =
        serde_json::from_value(ok(tree.call(tree.lab2(), read))).unwrap();
    assert_eq!(head.bytes().unwrap(), b"lab2's secret");
    // A hard link of lab2's file inside lab1's own root: beneath the root, still lab2's file.
    let stolen =
        json!({ "op": "read_head", "root": tree.root("lab1"), "path": "stolen", "max_bytes": 100 });
    assert_eq!(code(&tree.call(tree.lab1(), stolen)), "permission-denied");
    // Deleting the other lab's tree, or its file, fails too, and changes nothing.
    let delete = json!({ "op": "delete_tree", "root": tree.root(""), "path": "lab2" });
    assert_eq!(code(&tree.call(tree.lab1(), delete)), "permission-denied");
    assert_eq!(
        fs::read_to_string(tree.path("lab2/secret.txt")).unwrap(),
        "lab2's secret"
    );
}

#[test]
fn project_directories_belong_to_the_lab() {
    let tree = Tree::new();
    let projects = tree.path("projects");
    fs::create_dir(&projects).unwrap();
    std::os::unix::fs::chown(&projects, Some(0), Some(tree.gid1)).unwrap();
    fs::set_permissions(&projects, fs::Permissions::from_mode(0o770)).unwrap();
    let create = |name: &str| {
        tree.call(
            tree.lab1(),
            json!({ "op": "create_project_dir", "root": tree.root("projects"), "name": name }),
        )
    };
    let created = ok(create("p1"));
    let meta = fs::metadata(projects.join("p1")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (2101, tree.gid1, 0o2770)
    );
    assert_eq!(
        created,
        json!({ "path": projects.join("p1").to_str().unwrap(), "uid": 2101, "gid": tree.gid1, "mode": 0o2770 })
    );
    assert_eq!(code(&create("p1")), "exists");
    for bad in ["../x", "a/b", ".", "..", "", "p2/"] {
        assert_eq!(code(&create(bad)), "name-not-a-component", "{bad:?}");
    }
    assert!(!tree.path("x").exists());
    // cwlab2 may not write there.
    let other = json!({ "op": "create_project_dir", "root": tree.root("projects"), "name": "p3" });
    assert_eq!(code(&tree.call(tree.lab2(), other)), "permission-denied");

    // In a setgid directory of another group, the new directory still gets the lab's group.
    let shared = tree.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o3777)).unwrap();
    let created = ok(tree.call(
        tree.lab1(),
        json!({ "op": "create_project_dir", "root": tree.root("shared"), "name": "p" }),
    ));
    let meta = fs::metadata(shared.join("p")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (2101, tree.gid1, 0o2770)
    );
    assert_eq!(created["mode"], 0o2770);
}

/// lab1/proj: x/y/file ("hello"), x/out -> T/outside/keep.txt, x/dirlink -> T/outside/dir,
/// x/inside -> ../../data (a symlink that stays inside the root), all cwlab1's.
fn project_with_links(tree: &Tree) {
    let proj = tree.path("lab1/proj");
    fs::create_dir_all(proj.join("x/y")).unwrap();
    fs::write(proj.join("x/y/file"), "hello").unwrap();
    symlink(tree.path("outside/keep.txt"), proj.join("x/out")).unwrap();
    symlink(tree.path("outside/dir"), proj.join("x/dirlink")).unwrap();
    symlink("../../data", proj.join("x/inside")).unwrap();
    chown_tree(&proj, 2101, tree.gid1);
}

#[test]
fn delete_tree_never_follows_a_symlink() {
    let tree = Tree::new();
    project_with_links(&tree);
    let root = tree.root("lab1");
    let delete = |path: &str| {
        tree.call(
            tree.lab1(),
            json!({ "op": "delete_tree", "root": root, "path": path }),
        )
    };
    assert_eq!(code(&delete("")), "path-is-root");
    assert_eq!(code(&delete(".")), "path-is-root");
    assert_eq!(code(&delete("proj/x/..")), "path-ends-in-dot-dot");
    assert_eq!(code(&delete("proj/x/dirlink")), "path-symlink-refused");
    assert_eq!(code(&delete("proj/x/inside/sub")), "path-symlink-refused");
    assert_eq!(code(&delete("proj/x/y/file")), "path-not-a-directory");
    assert_eq!(code(&delete("to-lab2")), "path-symlink-refused");
    assert_eq!(code(&delete("nothing")), "path-not-found");
    assert_eq!(code(&delete("../outside")), "path-escapes-root");

    let counts = ok(delete("proj"));
    assert_eq!(counts, json!({ "files": 4, "dirs": 3, "bytes": 5 }));
    assert!(!tree.path("lab1/proj").exists());
    assert_eq!(
        fs::read_to_string(tree.path("outside/keep.txt")).unwrap(),
        "keep"
    );
    assert_eq!(
        fs::read_to_string(tree.path("outside/dir/keep2.txt")).unwrap(),
        "keep2"
    );
    assert!(tree.path("lab1/data/sub/b.txt").exists());
}

#[test]
fn archive_removes_write_bits_without_following_symlinks() {
    let tree = Tree::new();
    project_with_links(&tree);
    let root = tree.root("lab1");
    let outside_mode = fs::metadata(tree.path("outside/keep.txt")).unwrap().mode();
    assert_ne!(outside_mode & 0o200, 0);
    let counts = ok(tree.call(
        tree.lab1(),
        json!({ "op": "archive", "root": root, "path": "proj" }),
    ));
    assert_eq!(counts, json!({ "files": 4, "dirs": 3, "bytes": 5 }));
    for rel in [
        "lab1/proj",
        "lab1/proj/x",
        "lab1/proj/x/y",
        "lab1/proj/x/y/file",
    ] {
        let mode = fs::symlink_metadata(tree.path(rel)).unwrap().mode();
        assert_eq!(mode & 0o222, 0, "{rel}: {mode:o}");
    }
    assert_eq!(
        fs::metadata(tree.path("outside/keep.txt")).unwrap().mode(),
        outside_mode
    );
    assert_ne!(
        fs::metadata(tree.path("outside/dir")).unwrap().mode() & 0o200,
        0
    );
    assert_ne!(
        fs::metadata(tree.path("lab1/data")).unwrap().mode() & 0o200,
        0
    );
    assert_eq!(
        code(&tree.call(
            tree.lab1(),
            json!({ "op": "archive", "root": root, "path": "proj/x/dirlink" })
        )),
        "path-symlink-refused"
    );
    // cwlab2 cannot archive lab1's data.
    let other = json!({ "op": "archive", "root": tree.root(""), "path": "lab1/data" });
    assert_eq!(code(&tree.call(tree.lab2(), other)), "permission-denied");

    // An archived tree can still be deleted by its lab.
    ok(tree.call(
        tree.lab1(),
        json!({ "op": "delete_tree", "root": root, "path": "proj" }),
    ));
    assert!(!tree.path("lab1/proj").exists());
}

#[test]
fn accounts_are_refused() {
    let tree = Tree::new();
    let check = json!({ "op": "check" });
    let refused = [
        account("root", 0, 0),
        account("daemon", 1, 1),
        account("cwlab1", 2101, 0),
        account("cw-no-such-user", 2199, 2199),
        account("cwlab1", 2102, tree.gid1),
        account("cwlab1", 2101, tree.gid2),
        account("cwlab1", 2101, 1),
        account("", 2101, tree.gid1),
        account("cw\nlab1", 2101, tree.gid1),
    ];
    for a in refused {
        assert_eq!(
            code(&tree.call(a.clone(), check.clone())),
            "account-refused",
            "{a}"
        );
    }
    // The caller's own account (through sudo) is refused.
    assert_eq!(
        code(&tree.call_env(tree.lab1(), check.clone(), &[("SUDO_UID", "2101")])),
        "account-refused"
    );
    ok(tree.call_env(tree.lab1(), check.clone(), &[("SUDO_UID", "2102")]));
    // A caller through sudo that the policy does not name as a server account is refused.
    assert_eq!(
        code(&tree.call_env(tree.lab1(), check.clone(), &[("SUDO_UID", "1")])),
        "caller-refused"
    );

    // Not in the policy: cwlab1 under a policy listing only cwlab2.
    let only2 = tree.path("only2.toml");
    fs::write(&only2, "allowed_users = [\"cwlab2\"]\n").unwrap();
    let request = json!({ "account": tree.lab1(), "op": "check" }).to_string();
    let (answer, _) = run_with(
        request.as_bytes(),
        &[("CRYOWARDEN_RUNNER_CONFIG", only2.to_str().unwrap())],
        None,
    );
    assert_eq!(code(&answer), "account-refused");
    // A policy may only raise the uid floor.
    fs::write(
        &only2,
        "min_uid = 2102\nallowed_users = [\"cwlab1\", \"cwlab2\"]\n",
    )
    .unwrap();
    let (answer, _) = run_with(
        request.as_bytes(),
        &[("CRYOWARDEN_RUNNER_CONFIG", only2.to_str().unwrap())],
        None,
    );
    assert_eq!(code(&answer), "account-refused");
}

#[test]
fn the_policy_file_must_be_there_and_root_only() {
    let tree = Tree::new();
    let request = json!({ "account": tree.lab1(), "op": "check" }).to_string();
    let with = |policy: &Path| {
        let (answer, status) = run_with(
            request.as_bytes(),
            &[("CRYOWARDEN_RUNNER_CONFIG", policy.to_str().unwrap())],
            None,
        );
        assert_eq!(status, 0);
        answer
    };
    let missing = with(&tree.path("no-such.toml"));
    assert_eq!(code(&missing), "runner-not-configured");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_users"),
        "{missing}"
    );

    let policy = tree.path("policy.toml");
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o664)).unwrap();
    assert_eq!(code(&with(&policy)), "runner-not-configured");
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&policy, Some(2101), None).unwrap();
    assert_eq!(code(&with(&policy)), "runner-not-configured");
    std::os::unix::fs::chown(&policy, Some(0), None).unwrap();
    ok(with(&policy));
    fs::write(&policy, "allowed_users = \"cwlab1\"\n").unwrap();
    assert_eq!(code(&with(&policy)), "runner-not-configured");

    // Called by someone other than root, the runner ignores CRYOWARDEN_RUNNER_CONFIG: it reads
    // /etc/cryowarden/runner.toml (and, not being root, could not drop to the account anyway).
    fs::write(&policy, "allowed_users = [\"cwlab1\"]\n").unwrap();
    let env = [("CRYOWARDEN_RUNNER_CONFIG", policy.to_str().unwrap())];
    let (answer, _) = run_with(request.as_bytes(), &env, Some(2102));
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(!message.contains(policy.to_str().unwrap()), "{answer}");
    assert!(
        [
            "runner-not-configured",
            "account-refused",
            "privilege-drop-failed"
        ]
        .contains(&code(&answer)),
        "{answer}"
    );
}

#[test]
fn unreadable_requests_exit_2_with_an_error_answer() {
    let tree = Tree::new();
    let policy = tree.root("policy.toml");
    let env = [("CRYOWARDEN_RUNNER_CONFIG", policy.as_str())];
    for request in [
        &b"not json"[..],
        b"{}",
        b"{\"account\": {\"user\": \"cwlab1\", \"uid\": 2101, \"gid\": 2101}, \"op\": \"rm\"}",
    ] {
        let (answer, status) = run_with(request, &env, None);
        assert_eq!((code(&answer), status), ("bad-request", 2));
    }
    let extra =
        json!({ "account": tree.lab1(), "op": "stat", "root": "/", "path": "", "follow": true })
            .to_string();
    let (answer, status) = run_with(extra.as_bytes(), &env, None);
    assert_eq!((code(&answer), status), ("bad-request", 2));
}
