//! Import headers read through the real runner as the lab's Unix account cwlab1 (uid 2101):
//! MRC, MRCS, TIFF, BigTIFF and EER files written by the test, and damaged, foreign and missing
//! files, each reported by name with its code while the rest are read. Runs as root, as the
//! suite does (the runner drops to cwlab1, created if missing).

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use cryowarden_server::config::RunnerConfig;
use cryowarden_server::import::fixtures::{MrcSpec, TiffSpec, bzip2};
use cryowarden_server::import::{self, CHUNK_FILES, FileFormat, Header, HeaderError};
use cryowarden_server::runner::{Account, Runner};
use tempfile::TempDir;

/// Creates cwlab1 and cwlab2 if missing, under the lock file the other suites use.
fn accounts() {
    let lock = std::fs::File::create("/tmp/cryowarden-test-accounts.lock").expect("lock file");
    lock.lock().expect("lock");
    for (name, uid) in [("cwlab1", "2101"), ("cwlab2", "2102")] {
        let exists = std::process::Command::new("id")
            .arg("-u")
            .arg(name)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let out = std::process::Command::new("useradd")
                .args(["-M", "-u", uid, "-U", name])
                .output()
                .unwrap();
            assert!(
                out.status.success() || out.status.code() == Some(9),
                "useradd {name}: {out:?}"
            );
        }
    }
}

/// The built runner, next to the test binaries' directory.
fn runner_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("cryowarden-runner");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p cryowarden-runner`",
        bin.display()
    );
    bin
}

/// `base/` (0755) with the runner's policy, `lab1/` (cwlab1, 0750) and `lab2/` (cwlab2, 0750,
/// holding `secret.mrc`, which `lab1/stolen.mrc` is a hard link of).
struct Labs {
    base: TempDir,
    runner: Runner,
}

impl Labs {
    fn new() -> Labs {
        accounts();
        let base = tempfile::Builder::new()
            .prefix("cw-import")
            .tempdir()
            .unwrap();
        let p = base.path();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let policy = p.join("runner.toml");
        std::fs::write(
            &policy,
            "min_uid = 1000\nallowed_users = [\"cwlab1\", \"cwlab2\"]\n",
        )
        .unwrap();
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
        for (lab, uid) in [("lab1", 2101), ("lab2", 2102)] {
            std::fs::create_dir_all(p.join(lab).join("raw")).unwrap();
            chown(p.join(lab), Some(uid), Some(uid)).unwrap();
            chown(p.join(lab).join("raw"), Some(uid), Some(uid)).unwrap();
            std::fs::set_permissions(p.join(lab), std::fs::Permissions::from_mode(0o750)).unwrap();
        }
        MrcSpec::default()
            .write_to(&p.join("lab2/secret.mrc"))
            .unwrap();
        std::fs::set_permissions(
            p.join("lab2/secret.mrc"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        chown(p.join("lab2/secret.mrc"), Some(2102), Some(2102)).unwrap();
        std::fs::hard_link(p.join("lab2/secret.mrc"), p.join("lab1/stolen.mrc")).unwrap();
        let runner = Runner::new(&RunnerConfig {
            command: vec![runner_binary().to_str().unwrap().into()],
            policy: Some(policy),
        });
        Labs { base, runner }
    }

    fn root(&self) -> PathBuf {
        self.base.path().join("lab1")
    }

    fn raw(&self, name: &str) -> PathBuf {
        self.root().join("raw").join(name)
    }

    async fn read(&self, paths: &[&str]) -> Vec<(String, Result<Header, HeaderError>)> {
        let account = Account {
            user: "cwlab1".into(),
            uid: 2101,
            gid: 2101,
        };
        let paths: Vec<String> = paths.iter().map(std::string::ToString::to_string).collect();
        import::read_headers(&self.runner, &account, &self.root(), &paths).await
    }
}

#[tokio::test]
async fn headers_of_every_format_and_damaged_files_by_name() {
    let labs = Labs::new();
    MrcSpec::default()
        .write_to(&labs.raw("micrograph.mrc"))
        .unwrap();
    MrcSpec {
        nz: 24,
        mode: 1,
        pixel_a: 0.83,
        ..MrcSpec::default()
    }
    .write_to(&labs.raw("particles.mrcs"))
    .unwrap();
    MrcSpec {
        nz: 50,
        mode: 12,
        nsymbt: 131_072,
        ..MrcSpec::default()
    }
    .write_to(&labs.raw("movie.MRC"))
    .unwrap();
    TiffSpec::default()
        .write_to(&labs.raw("movie.tif"))
        .unwrap();
    let big = TiffSpec {
        bigtiff: true,
        big_endian: true,
        bits: 16,
        frames: 12,
        ..TiffSpec::default()
    };
    big.write_to(&labs.raw("movie_big.tiff")).unwrap();
    TiffSpec::eer(1200)
        .write_to(&labs.raw("FoilHole_1_fractions.eer"))
        .unwrap();
    // Damaged: one byte short of its voxels; text named .mrc; a plain TIFF named .eer; a TIFF cut
    // inside its last IFD; an IFD chain that loops.
    let whole = MrcSpec::default().file_size();
    let truncated = labs.raw("truncated.mrc");
    MrcSpec::default().write_to(&truncated).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(whole - 1)
        .unwrap();
    std::fs::write(labs.raw("notes.mrc"), "not an MRC at all\n".repeat(100)).unwrap();
    TiffSpec {
        frames: 3,
        ..TiffSpec::default()
    }
    .write_to(&labs.raw("plain.eer"))
    .unwrap();
    let mut cut = TiffSpec {
        frames: 5,
        ..TiffSpec::default()
    }
    .file();
    cut.truncate(cut.len() - 10);
    std::fs::write(labs.raw("cut.tif"), cut).unwrap();
    let mut looped = TiffSpec {
        frames: 3,
        ..TiffSpec::default()
    }
    .file();
    let (first, end) = (looped[4..8].to_vec(), looped.len());
    looped[end - 4..].copy_from_slice(&first);
    std::fs::write(labs.raw("loop.tif"), looped).unwrap();
    std::fs::write(labs.raw("readme.txt"), "hello").unwrap();
    std::fs::create_dir(labs.raw("folder.mrc")).unwrap();
    std::os::unix::fs::symlink(
        labs.base.path().join("lab2/secret.mrc"),
        labs.raw("escape.mrc"),
    )
    .unwrap();
    for entry in std::fs::read_dir(labs.root().join("raw")).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::lchown(&path, Some(2101), Some(2101)).unwrap();
    }

    let results = labs
        .read(&[
            "raw/micrograph.mrc",
            "raw/particles.mrcs",
            "raw/movie.MRC",
            "raw/movie.tif",
            "raw/movie_big.tiff",
            "raw/FoilHole_1_fractions.eer",
            "raw/truncated.mrc",
            "raw/notes.mrc",
            "raw/plain.eer",
            "raw/cut.tif",
            "raw/loop.tif",
            "raw/readme.txt",
            "raw/missing.tif",
            "raw/folder.mrc",
            "raw/escape.mrc",
            "stolen.mrc",
            "../lab2/secret.mrc",
        ])
        .await;
    let header = |i: usize| {
        results[i]
            .1
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", results[i].0))
            .clone()
    };
    let code = |i: usize| match &results[i].1 {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e.code().to_owned()
        }
        Ok(h) => panic!("{}: expected an error, got {h:?}", results[i].0),
    };

    let h = header(0);
    assert_eq!(
        h,
        Header {
            format: FileFormat::Mrc,
            width: 64,
            height: 64,
            frames: 1,
            mode: Some("float32".into()),
            pixel_size_a: Some(1.06),
            compression: None,
        }
    );
    let h = header(1);
    assert_eq!(
        (h.format, h.frames, h.mode.as_deref(), h.pixel_size_a),
        (FileFormat::Mrcs, 24, Some("int16"), Some(0.83))
    );
    let h = header(2);
    assert_eq!(
        (h.format, h.frames, h.mode.as_deref()),
        (FileFormat::Mrc, 50, Some("float16"))
    );
    let h = header(3);
    assert_eq!(
        h,
        Header {
            format: FileFormat::Tiff,
            width: 64,
            height: 64,
            frames: 40,
            mode: Some("uint8".into()),
            pixel_size_a: None,
            compression: Some("none".into()),
        }
    );
    let h = header(4);
    assert_eq!(
        (h.format, h.frames, h.mode.as_deref()),
        (FileFormat::Tiff, 12, Some("uint16"))
    );
    let h = header(5);
    assert_eq!(
        (
            h.format,
            h.width,
            h.height,
            h.frames,
            h.compression.as_deref()
        ),
        (FileFormat::Eer, 4096, 4096, 1200, Some("eer-v1"))
    );

    assert_eq!(code(6), "truncated");
    assert_eq!(
        results[6].1.as_ref().unwrap_err().to_string(),
        format!("truncated: expected {whole} bytes, file has {}", whole - 1)
    );
    assert_eq!(code(7), "not-mrc");
    assert_eq!(code(8), "not-eer");
    assert_eq!(code(9), "truncated");
    assert_eq!(code(10), "bad-ifd");
    assert_eq!(code(11), "unknown-format");
    assert_eq!(code(12), "path-not-found");
    assert_eq!(code(13), "path-is-a-directory");
    assert_eq!(code(14), "path-escapes-root");
    assert_eq!(code(15), "permission-denied");
    assert_eq!(code(16), "path-escapes-root");
    // Every file is reported by its name, in the order asked.
    assert_eq!(results[9].0, "raw/cut.tif");
    assert_eq!(results.len(), 17);
}

#[tokio::test]
async fn a_glob_then_its_headers() {
    let labs = Labs::new();
    for i in 0..5 {
        MrcSpec::default()
            .write_to(&labs.raw(&format!("mic_{i:02}.mrc")))
            .unwrap();
    }
    MrcSpec::default()
        .write_to(&labs.raw(".hidden.mrc"))
        .unwrap();
    TiffSpec::default()
        .write_to(&labs.raw("mic_09.tif"))
        .unwrap();
    let account = Account {
        user: "cwlab1".into(),
        uid: 2101,
        gid: 2101,
    };
    let found = labs
        .runner
        .glob(&account, &labs.root(), "raw/mic_*.mrc", 1000)
        .await
        .unwrap();
    assert_eq!(found.total, 5);
    assert_eq!(found.paths[0], "raw/mic_00.mrc");
    let results = import::read_headers(&labs.runner, &account, &labs.root(), &found.paths).await;
    assert!(
        results
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|h| h.width == 64)),
        "{results:?}"
    );
    let escape = labs
        .runner
        .glob(&account, &labs.root(), "../*", 10)
        .await
        .unwrap_err();
    assert_eq!(escape.code(), Some("path-escapes-root"));
}

#[tokio::test]
async fn large_imports_are_read_in_several_requests() {
    let labs = Labs::new();
    // More MRCs than one request carries.
    let count = CHUNK_FILES + 150;
    let spec = MrcSpec {
        nx: 16,
        ny: 16,
        ..MrcSpec::default()
    };
    let mut paths = Vec::with_capacity(count + 8);
    for i in 0..count {
        let name = format!("m{i:05}.mrc");
        spec.write_to(&labs.raw(&name)).unwrap();
        paths.push(format!("raw/{name}"));
    }
    // TIFFs with 720 kB first IFDs: more than one walk_chains answer can carry, so some are
    // answered `answer-full` and asked again.
    let wide = TiffSpec {
        frames: 2,
        width: 8,
        height: 8,
        extra_entries: 60_000,
        ..TiffSpec::default()
    };
    for i in 0..8 {
        let name = format!("wide{i}.tif");
        wide.write_to(&labs.raw(&name)).unwrap();
        paths.push(format!("raw/{name}"));
    }
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let results = labs.read(&refs).await;
    assert_eq!(results.len(), count + 8);
    for (path, result) in &results {
        let h = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{path}: {e} ({})", e.code()));
        if path.ends_with(".tif") {
            assert_eq!((h.frames, h.width), (2, 8), "{path}");
        } else {
            assert_eq!((h.frames, h.width), (1, 16), "{path}");
        }
    }
}

#[tokio::test]
async fn an_unavailable_runner_fails_every_file_with_one_code() {
    let runner = Runner::new(&RunnerConfig {
        command: vec!["/nonexistent/cryowarden-runner".into()],
        policy: None,
    });
    let account = Account {
        user: "cwlab1".into(),
        uid: 2101,
        gid: 2101,
    };
    let paths = vec!["a.mrc".to_owned(), "b.tif".to_owned(), "c.txt".to_owned()];
    let results = import::read_headers(&runner, &account, Path::new("/tmp"), &paths).await;
    let codes: Vec<&str> = results
        .iter()
        .map(|(_, r)| r.as_ref().unwrap_err().code())
        .collect();
    assert_eq!(
        codes,
        ["runner-unavailable", "runner-unavailable", "unknown-format"]
    );
}

#[tokio::test]
async fn bzip2_movies_and_misstamped_mrcs() {
    let labs = Labs::new();
    // A bzip2-compressed MRC movie and stack, as CryoSPARC documents them; a damaged one; a
    // bzip2-compressed TIFF (not read: said so); an uncompressed MRC named .bz2.
    let movie = MrcSpec {
        nx: 300,
        ny: 200,
        nz: 40,
        mode: 1,
        pixel_a: 0.83,
        ..MrcSpec::default()
    };
    std::fs::write(labs.raw("movie_001.mrc.bz2"), bzip2(&movie.file()).unwrap()).unwrap();
    let stack = MrcSpec {
        nz: 12,
        mode: 2,
        big_endian: true,
        ..MrcSpec::default()
    };
    std::fs::write(labs.raw("stack.MRCS.BZ2"), bzip2(&stack.file()).unwrap()).unwrap();
    // Cut inside its first block.
    let mut damaged = bzip2(&movie.file()).unwrap();
    damaged.truncate(40);
    std::fs::write(labs.raw("damaged.mrc.bz2"), damaged).unwrap();
    std::fs::write(
        labs.raw("movie.tif.bz2"),
        bzip2(&TiffSpec::default().file()).unwrap(),
    )
    .unwrap();
    MrcSpec::default()
        .write_to(&labs.raw("plain.mrc.bz2"))
        .unwrap();
    // Big-endian data whose machine stamp says little-endian, and the reverse (item 24).
    for (name, big_endian) in [("be_stamped_le.mrc", true), ("le_stamped_be.mrc", false)] {
        let spec = MrcSpec {
            nz: 5,
            mode: 6,
            big_endian,
            ..MrcSpec::default()
        };
        let mut bytes = spec.file();
        bytes[212] = if big_endian { 0x44 } else { 0x11 };
        std::fs::write(labs.raw(name), bytes).unwrap();
    }
    for entry in std::fs::read_dir(labs.root().join("raw")).unwrap() {
        std::os::unix::fs::lchown(entry.unwrap().path(), Some(2101), Some(2101)).unwrap();
    }

    let results = labs
        .read(&[
            "raw/movie_001.mrc.bz2",
            "raw/stack.MRCS.BZ2",
            "raw/damaged.mrc.bz2",
            "raw/movie.tif.bz2",
            "raw/plain.mrc.bz2",
            "raw/be_stamped_le.mrc",
            "raw/le_stamped_be.mrc",
        ])
        .await;
    let header = |i: usize| {
        results[i]
            .1
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", results[i].0))
            .clone()
    };
    let code = |i: usize| {
        results[i]
            .1
            .as_ref()
            .map(|h| format!("{h:?}"))
            .unwrap_err()
            .code()
            .to_owned()
    };
    assert_eq!(
        header(0),
        Header {
            format: FileFormat::Mrc,
            width: 300,
            height: 200,
            frames: 40,
            mode: Some("int16".into()),
            pixel_size_a: Some(0.83),
            compression: Some("bzip2".into()),
        }
    );
    let h = header(1);
    assert_eq!(
        (
            h.format,
            h.frames,
            h.mode.as_deref(),
            h.compression.as_deref()
        ),
        (FileFormat::Mrcs, 12, Some("float32"), Some("bzip2"))
    );
    assert_eq!(code(2), "bzip2-damaged");
    assert_eq!(code(3), "unsupported-compression");
    assert!(
        results[3]
            .1
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("decompress it")
    );
    assert_eq!(code(4), "bzip2-damaged");
    for i in [5, 6] {
        let h = header(i);
        assert_eq!(
            (h.width, h.height, h.frames, h.mode.as_deref()),
            (64, 64, 5, Some("uint16")),
            "{}",
            results[i].0
        );
    }
}
