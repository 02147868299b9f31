//! The import ops of the real `cryowarden-runner` binary (`glob`, `read_heads`, `walk_chains`),
//! run as root (as the test suite is) acting as cwlab1 (uid 2101) on a two-lab tree: matches,
//! hidden names, escapes refused by the kernel, and per-file errors that do not fail a batch.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use cryowarden_runner::protocol::{ChainWalk, FileHead, Globbed, MAX_BATCH_FILES};
use serde_json::{Value, json};
use tempfile::TempDir;

const RUNNER: &str = env!("CARGO_BIN_EXE_cryowarden-runner");

/// Creates cwlab1 and cwlab2 once per test process, under the lock file shared with the other
/// test suites (tests/runner.rs, the root package's tests/common/unix.rs); their gids.
fn accounts() -> (u32, u32) {
    static GIDS: OnceLock<(u32, u32)> = OnceLock::new();
    *GIDS.get_or_init(|| {
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

/// ```text
/// T/                      root 0755, policy.toml (allowed_users = ["cwlab1"])
///   lab1/                 cwlab1 0750
///     raw/a.mrc b.mrc c.tif [x].mrc .hidden.mrc
///     raw/link.mrc -> a.mrc           (a symlink that stays inside)
///     raw/sub.mrc/                    (a directory: never a match)
///     raw/fifo.mrc                    (a FIFO: never a match, never opened)
///     out -> T/outside                (a symlinked directory out of the root)
///     to-secret.mrc -> T/lab2/secret.mrc
///     stolen.mrc                      (hard link of lab2's file: only the kernel refuses it)
///   lab2/secret.mrc       cwlab2 0750 / 0640
///   outside/x.mrc         root 0755 / 0644
/// ```
struct Tree {
    t: TempDir,
    gid1: u32,
}

impl Tree {
    fn new() -> Tree {
        let (gid1, gid2) = accounts();
        let t = tempfile::Builder::new()
            .prefix("cw-import-ops")
            .tempdir()
            .unwrap();
        let p = t.path();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(p.join("policy.toml"), "allowed_users = [\"cwlab1\"]\n").unwrap();
        fs::set_permissions(p.join("policy.toml"), fs::Permissions::from_mode(0o644)).unwrap();
        let raw = p.join("lab1/raw");
        fs::create_dir_all(raw.join("sub.mrc")).unwrap();
        for (name, text) in [
            ("a.mrc", "AAAA-header"),
            ("b.mrc", "BB"),
            ("c.tif", "II*\0"),
            ("[x].mrc", "x"),
            (".hidden.mrc", "hidden"),
        ] {
            fs::write(raw.join(name), text).unwrap();
        }
        symlink("a.mrc", raw.join("link.mrc")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            raw.join("fifo.mrc"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        fs::create_dir_all(p.join("lab2")).unwrap();
        fs::write(p.join("lab2/secret.mrc"), "lab2's secret").unwrap();
        fs::create_dir_all(p.join("outside")).unwrap();
        fs::write(p.join("outside/x.mrc"), "outside").unwrap();
        symlink(p.join("outside"), p.join("lab1/out")).unwrap();
        symlink(p.join("lab2/secret.mrc"), p.join("lab1/to-secret.mrc")).unwrap();

        chown_tree(&p.join("lab1"), 2101, gid1);
        chown_tree(&p.join("lab2"), 2102, gid2);
        fs::set_permissions(p.join("lab1"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(p.join("lab2"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(p.join("lab2/secret.mrc"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(p.join("lab2/secret.mrc"), p.join("lab1/stolen.mrc")).unwrap();
        Tree { t, gid1 }
    }

    fn root(&self, rel: &str) -> String {
        self.t.path().join(rel).to_str().unwrap().to_owned()
    }

    /// Runs `op` as cwlab1 under the tree's policy; the answer (exit status 0 checked).
    fn call(&self, op: Value) -> Value {
        let mut request = op;
        request["account"] = json!({ "user": "cwlab1", "uid": 2101, "gid": self.gid1 });
        let mut child = Command::new(RUNNER)
            .env_clear()
            .env("CRYOWARDEN_RUNNER_CONFIG", self.root("policy.toml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    fn glob(&self, pattern: &str, limit: usize) -> Result<Globbed, String> {
        let answer = self.call(
            json!({ "op": "glob", "root": self.root("lab1"), "pattern": pattern, "limit": limit }),
        );
        match answer.get("ok") {
            Some(ok) => Ok(serde_json::from_value(ok.clone()).unwrap()),
            None => Err(code(&answer)),
        }
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
fn code(answer: &Value) -> String {
    let code = answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {answer}"));
    assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    code.to_owned()
}

#[track_caller]
fn ok(answer: Value) -> Value {
    answer
        .get("ok")
        .unwrap_or_else(|| panic!("expected ok, got {answer}"))
        .clone()
}

#[test]
fn glob_matches_files_of_one_directory() {
    let tree = Tree::new();
    let paths = |pattern: &str| tree.glob(pattern, 100).unwrap().paths;
    // Sorted by bytes; the directory, the FIFO and the hidden file are not matches; the symlink is.
    assert_eq!(
        paths("raw/*.mrc"),
        ["raw/[x].mrc", "raw/a.mrc", "raw/b.mrc", "raw/link.mrc"]
    );
    assert_eq!(paths("raw/.*.mrc"), ["raw/.hidden.mrc"]);
    assert_eq!(paths("raw/?.mrc"), ["raw/a.mrc", "raw/b.mrc"]);
    assert_eq!(paths("raw/[!a].*"), ["raw/b.mrc", "raw/c.tif"]);
    assert_eq!(paths("./raw//[ab].mrc"), ["raw/a.mrc", "raw/b.mrc"]);
    assert_eq!(paths("raw/\\[x\\].mrc"), ["raw/[x].mrc"]);
    assert_eq!(paths("raw/a.mrc"), ["raw/a.mrc"]);
    assert_eq!(paths("raw/*.MRC"), Vec::<String>::new());
    assert_eq!(paths("raw/missing.mrc"), Vec::<String>::new());
    assert_eq!(
        paths("raw/sub.mrc"),
        Vec::<String>::new(),
        "a directory named literally is no match"
    );
    assert_eq!(paths("raw/.."), Vec::<String>::new());
    // The root's own files: symlinks match whatever they point to (reading them decides).
    assert_eq!(paths("*.mrc"), ["stolen.mrc", "to-secret.mrc"]);
    let cut = tree.glob("raw/*", 2).unwrap();
    assert_eq!(
        (cut.paths, cut.total),
        (vec!["raw/[x].mrc".to_owned(), "raw/a.mrc".to_owned()], 5)
    );
}

#[test]
fn glob_refuses_escapes_and_bad_patterns() {
    let tree = Tree::new();
    for (pattern, expected) in [
        ("../*", "path-escapes-root"),
        ("../lab2/*.mrc", "path-escapes-root"),
        ("raw/../../outside/*", "path-escapes-root"),
        ("out/*", "path-escapes-root"),
        ("out/x.mrc", "path-escapes-root"),
        ("/etc/*", "path-absolute"),
        ("raw/*/x.mrc", "glob-wildcard-in-directory"),
        ("r?w/a.mrc", "glob-wildcard-in-directory"),
        ("raw/[ab.mrc", "glob-pattern-invalid"),
        ("", "glob-pattern-empty"),
        (".", "glob-pattern-empty"),
        ("raw/a.mrc/*", "path-not-a-directory"),
        ("nothing/*", "path-not-found"),
        ("raw/\u{7}*", "path-control-character"),
    ] {
        assert_eq!(tree.glob(pattern, 10).unwrap_err(), expected, "{pattern}");
    }
    for limit in [0, 100_001] {
        assert_eq!(tree.glob("raw/*", limit).unwrap_err(), "limit-out-of-range");
    }
    // Another lab's root: the kernel refuses cwlab1.
    let answer =
        tree.call(json!({ "op": "glob", "root": tree.root("lab2"), "pattern": "*", "limit": 10 }));
    assert_eq!(code(&answer), "permission-denied");
}

/// Compresses `data` with Debian's `bzip2` program (the format CryoSPARC documents for movies).
fn bzip2_of(data: &[u8], level: &str) -> Vec<u8> {
    let mut child = Command::new("bzip2")
        .args(["-c", level])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bzip2 (Debian's bzip2 package) is needed");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

#[test]
fn read_heads_decompresses_bzip2_as_far_as_asked() {
    let tree = Tree::new();
    let raw = tree.t.path().join("lab1/raw");
    // 3 MB of content over several 100 kB blocks (-1): the head is in the first block; the
    // last block is cut off, which a decoder that read everything would notice.
    let content: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let packed = bzip2_of(&content, "-1");
    fs::write(raw.join("movie.mrc.bz2"), &packed).unwrap();
    fs::write(raw.join("cut.mrc.bz2"), &packed[..packed.len() * 2 / 3]).unwrap();
    fs::write(raw.join("short.mrc.bz2"), bzip2_of(b"tiny", "-9")).unwrap();
    fs::write(raw.join("plain.mrc.bz2"), "not bzip2 at all").unwrap();
    chown_tree(&tree.t.path().join("lab1"), 2101, tree.gid1);
    let paths = [
        "raw/movie.mrc.bz2",
        "raw/cut.mrc.bz2",
        "raw/short.mrc.bz2",
        "raw/plain.mrc.bz2",
        "../lab2/secret.mrc",
    ];
    let answer = ok(tree.call(json!({
        "op": "read_heads", "root": tree.root("lab1"), "paths": paths, "max_bytes": 1024, "decompress": "bzip2"
    })));
    let heads: Vec<FileHead> = serde_json::from_value(answer).unwrap();
    let got: Vec<Result<(u64, Vec<u8>), String>> =
        heads.iter().map(|h| h.read().map_err(|e| e.code)).collect();
    assert_eq!(
        got[0],
        Ok((packed.len() as u64, content[..1024].to_vec())),
        "the decompressed head, the file's size"
    );
    assert_eq!(
        got[1],
        Ok(((packed.len() * 2 / 3) as u64, content[..1024].to_vec())),
        "only the first block is read"
    );
    assert_eq!(got[2], Ok((heads[2].size.unwrap(), b"tiny".to_vec())));
    assert_eq!(got[3], Err("bzip2-damaged".into()));
    assert_eq!(got[4], Err("path-escapes-root".into()));
    // Without `decompress`, the same file's raw bytes.
    let answer =
        ok(tree.call(json!({ "op": "read_heads", "root": tree.root("lab1"), "paths": [paths[0]], "max_bytes": 3 })));
    let heads: Vec<FileHead> = serde_json::from_value(answer).unwrap();
    assert_eq!(heads[0].read().unwrap().1, b"BZh");
}

#[test]
fn read_heads_reports_each_file() {
    let tree = Tree::new();
    let paths = [
        "raw/a.mrc",
        "missing.mrc",
        "raw/sub.mrc",
        "to-secret.mrc",
        "stolen.mrc",
        "raw/link.mrc",
        "../lab2/secret.mrc",
        "/etc/passwd",
        "raw/fifo.mrc",
        "out/x.mrc",
        "raw/b.mrc",
    ];
    let answer = ok(tree.call(
        json!({ "op": "read_heads", "root": tree.root("lab1"), "paths": paths, "max_bytes": 4 }),
    ));
    let heads: Vec<FileHead> = serde_json::from_value(answer).unwrap();
    assert_eq!(
        heads.iter().map(|h| h.path.as_str()).collect::<Vec<_>>(),
        paths
    );
    let got: Vec<Result<(u64, Vec<u8>), String>> =
        heads.iter().map(|h| h.read().map_err(|e| e.code)).collect();
    let expected: Vec<Result<(u64, Vec<u8>), String>> = vec![
        Ok((11, b"AAAA".to_vec())),
        Err("path-not-found".into()),
        Err("path-is-a-directory".into()),
        Err("path-escapes-root".into()),
        Err("permission-denied".into()),
        Ok((11, b"AAAA".to_vec())),
        Err("path-escapes-root".into()),
        Err("path-absolute".into()),
        Err("path-not-a-file".into()),
        Err("path-escapes-root".into()),
        Ok((2, b"BB".to_vec())),
    ];
    assert_eq!(got, expected);
    assert!(heads[4].error.as_ref().unwrap().message.contains("cwlab1"));

    // lab2's root: every file is refused by the kernel, the batch still answers.
    let answer = ok(tree
        .call(json!({ "op": "read_heads", "root": tree.root("lab2"), "paths": ["secret.mrc", "x"], "max_bytes": 4 })));
    let heads: Vec<FileHead> = serde_json::from_value(answer).unwrap();
    assert_eq!(heads[0].read().unwrap_err().code, "permission-denied");
    assert_eq!(heads[1].read().unwrap_err().code, "permission-denied");

    // The request's own limits fail it as a whole.
    let root = tree.root("lab1");
    let over = tree.call(
        json!({ "op": "read_heads", "root": root, "paths": ["raw/a.mrc"], "max_bytes": 2 << 20 }),
    );
    assert_eq!(code(&over), "max-bytes-out-of-range");
    let many = vec!["raw/a.mrc"; MAX_BATCH_FILES + 1];
    let over =
        tree.call(json!({ "op": "read_heads", "root": root, "paths": many, "max_bytes": 1 }));
    assert_eq!(code(&over), "too-many-files");
    let over =
        tree.call(json!({ "op": "read_heads", "root": root, "paths": vec!["raw/a.mrc"; 5000], "max_bytes": 2048 }));
    assert_eq!(code(&over), "max-bytes-out-of-range");
    let missing_root = tree.call(
        json!({ "op": "read_heads", "root": tree.root("nope"), "paths": [], "max_bytes": 1 }),
    );
    assert_eq!(code(&missing_root), "root-not-found");
}

/// A file of `records` records of `items` 12-byte items each (a little-endian TIFF IFD chain),
/// each record after 100 bytes of filler: the first one at byte 108.
fn chain_file(records: usize, items: u16) -> Vec<u8> {
    let mut file = b"II*\0\0\0\0\0".to_vec();
    let mut pointer_at = 4;
    for _ in 0..records {
        file.extend_from_slice(&[0xaa; 100]);
        let at = file.len() as u32;
        file[pointer_at..pointer_at + 4].copy_from_slice(&at.to_le_bytes());
        file.extend_from_slice(&items.to_le_bytes());
        file.extend(std::iter::repeat_n(0x55, 12 * usize::from(items)));
        pointer_at = file.len();
        file.extend_from_slice(&[0; 4]);
    }
    file
}

#[test]
fn walk_chains_counts_records_per_file() {
    let tree = Tree::new();
    let raw = tree.t.path().join("lab1/raw");
    fs::write(raw.join("forty.tif"), chain_file(40, 3)).unwrap();
    let mut looped = chain_file(3, 1);
    let second = u32::from_le_bytes(looped[4..8].try_into().unwrap()) + 2 + 12 + 4 + 100;
    let end = looped.len();
    looped[end - 4..].copy_from_slice(&second.to_le_bytes()); // the last record points to the second
    fs::write(raw.join("loop.tif"), looped).unwrap();
    let mut cut = chain_file(5, 2);
    cut.truncate(cut.len() - 10);
    fs::write(raw.join("cut.tif"), cut).unwrap();
    fs::write(raw.join("big.tif"), chain_file(4, u16::MAX)).unwrap();

    let spec = |keep: u32| json!({ "first": 108, "big_endian": false, "count_bytes": 2, "item_bytes": 12, "next_bytes": 4, "keep": keep });
    let chains = json!([
        { "path": "raw/forty.tif", "spec": spec(1) },
        { "path": "raw/loop.tif", "spec": spec(1) },
        { "path": "raw/cut.tif", "spec": spec(0) },
        { "path": "stolen.mrc", "spec": spec(1) },
        { "path": "raw/forty.tif", "spec": spec(0) },
    ]);
    let answer =
        ok(tree.call(json!({ "op": "walk_chains", "root": tree.root("lab1"), "chains": chains, "max_records": 1000 })));
    let walks: Vec<ChainWalk> = serde_json::from_value(answer).unwrap();
    let forty = walks[0].walked().unwrap();
    assert_eq!(
        (forty.records, forty.kept.len(), forty.kept[0].len()),
        (40, 1, 2 + 36 + 4)
    );
    assert_eq!(walks[1].walked().unwrap_err().code, "chain-loop");
    assert_eq!(walks[2].walked().unwrap_err().code, "chain-out-of-bounds");
    assert_eq!(walks[3].walked().unwrap_err().code, "permission-denied");
    assert_eq!(
        walks[4].walked().unwrap(),
        cryowarden_runner::protocol::Walked {
            records: 40,
            kept: vec![]
        }
    );

    let too_long = ok(
        tree.call(json!({ "op": "walk_chains", "root": tree.root("lab1"),
        "chains": [{ "path": "raw/forty.tif", "spec": spec(0) }], "max_records": 39 })),
    );
    let walks: Vec<ChainWalk> = serde_json::from_value(too_long).unwrap();
    assert_eq!(walks[0].walked().unwrap_err().code, "chain-too-long");

    // Four records of 786 kB kept per chain: the first chain comes back whole, the next would
    // overfill the answer, so it and the rest are to be asked again.
    let big = json!({ "path": "raw/big.tif", "spec": spec(4) });
    let answer = ok(tree
        .call(json!({ "op": "walk_chains", "root": tree.root("lab1"), "chains": [big, big, big], "max_records": 10 })));
    let walks: Vec<ChainWalk> = serde_json::from_value(answer).unwrap();
    assert_eq!(walks[0].walked().unwrap().kept.len(), 4);
    assert_eq!(walks[1].walked().unwrap_err().code, "answer-full");
    assert_eq!(walks[2].walked().unwrap_err().code, "answer-full");

    let bad_spec = tree.call(json!({ "op": "walk_chains", "root": tree.root("lab1"),
        "chains": [{ "path": "raw/forty.tif", "spec": { "first": 8, "big_endian": false, "count_bytes": 3,
            "item_bytes": 12, "next_bytes": 4, "keep": 0 } }], "max_records": 10 }));
    assert_eq!(code(&bad_spec), "chain-spec-invalid");
}
