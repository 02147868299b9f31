//! Import figures of issue 5 (run by bench/import.sh), each beside a baseline measured in the
//! same run:
//!   1. the headers of 10,000 MRC micrographs (64 x 64 x 1 float32) read by
//!      `import::read_headers` through the runner as the lab's account cwlab1 (spawns, privilege
//!      drop, openat2 beneath the root, pread, hex, JSON, parse), against the same headers read
//!      in process with std::fs (open, read 1024 bytes, parse);
//!   2. the same for 1,000 TIFF movies of 40 frames (IFD chain walked: 40 IFDs a file), the
//!      baseline walking the chain with `FileExt::read_at`;
//!   3. the glob that lists the 10,000 MRC files, against `std::fs::read_dir` and a suffix test.
//!
//! Needs root (it creates the account cwlab1 if missing) and the release runner binary, which
//! bench/import.sh builds. Files are sparse (the voxels are holes), in a temporary directory;
//! warm caches.

use std::hint::black_box;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cryowarden_runner::ops_import::walk_chain;
use cryowarden_server::config::RunnerConfig;
use cryowarden_server::import::fixtures::{MrcSpec, TiffSpec};
use cryowarden_server::import::headers::{self, HEAD_BYTES, Header, HeaderError, MAX_FRAMES};
use cryowarden_server::import::{self, FileFormat};
use cryowarden_server::runner::{Account, Runner};

const MRCS: usize = 10_000;
const TIFFS: usize = 1_000;
const RUNS: usize = 7;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let exists = std::process::Command::new("id")
        .args(["-u", "cwlab1"])
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let out = std::process::Command::new("useradd")
            .args(["-M", "-u", "2101", "-U", "cwlab1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd cwlab1 (run as root): {out:?}"
        );
    }
    let runner_bin = std::env::var("CRYOWARDEN_BENCH_RUNNER")
        .expect("bench/import.sh sets CRYOWARDEN_BENCH_RUNNER");
    let base =
        std::env::var_os("CRYOWARDEN_BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("cw-import-bench")
        .tempdir_in(base)
        .expect("temp dir");
    let policy = work.path().join("runner.toml");
    std::fs::write(&policy, "allowed_users = [\"cwlab1\"]\n").unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let runner = Runner::new(&RunnerConfig {
        command: vec![runner_bin],
        policy: Some(policy),
    });
    let account = Account {
        user: "cwlab1".into(),
        uid: 2101,
        gid: 2101,
    };

    let root = work.path().join("lab1");
    for dir in ["", "mrc", "tif"] {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(2101), Some(2101)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    let made = Instant::now();
    let mrc = MrcSpec::default();
    let mrc_paths: Vec<String> = (0..MRCS)
        .map(|i| format!("mrc/micrograph_{i:05}.mrc"))
        .collect();
    for p in &mrc_paths {
        mrc.write_to(&root.join(p)).unwrap();
    }
    let tiff = TiffSpec::default();
    let tiff_paths: Vec<String> = (0..TIFFS)
        .map(|i| format!("tif/movie_{i:04}.tif"))
        .collect();
    for p in &tiff_paths {
        tiff.write_to(&root.join(p)).unwrap();
    }
    println!(
        "wrote {MRCS} MRC files ({} bytes each, sparse) and {TIFFS} TIFF files of {} frames in {:.1} s",
        mrc.file_size(),
        tiff.frames,
        made.elapsed().as_secs_f64()
    );

    // Both ways agree before anything is timed.
    let through = import::read_headers(&runner, &account, &root, &mrc_paths).await;
    assert!(
        through
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|h| h.width == 64)),
        "{:?}",
        through.first()
    );
    assert_eq!(
        through[17].1.as_ref().unwrap(),
        in_process(&root, &mrc_paths[17..18])[0].as_ref().unwrap()
    );
    let through = import::read_headers(&runner, &account, &root, &tiff_paths).await;
    assert!(
        through
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|h| h.frames == 40)),
        "{:?}",
        through.first()
    );
    assert_eq!(
        through[3].1.as_ref().unwrap(),
        in_process(&root, &tiff_paths[3..4])[0].as_ref().unwrap()
    );

    for (what, paths) in [
        ("MRC micrographs (64x64x1 float32)", &mrc_paths),
        ("TIFF movies (40 frames)", &tiff_paths),
    ] {
        println!(
            "\n== headers of {} {what} ({RUNS} runs each, interleaved)",
            paths.len()
        );
        let (mut runner_times, mut std_times) = (vec![], vec![]);
        for _ in 0..RUNS {
            let t = Instant::now();
            black_box(import::read_headers(&runner, &account, &root, paths).await);
            runner_times.push(t.elapsed());
            let t = Instant::now();
            black_box(in_process(&root, paths));
            std_times.push(t.elapsed());
        }
        let (r50, s50) = (pct(&mut runner_times, 50), pct(&mut std_times, 50));
        let rate = |d: Duration| paths.len() as f64 / d.as_secs_f64();
        println!(
            "read_headers through the runner as cwlab1: p50 {} ({:>9.0} files/s)  max {}",
            ms(r50),
            rate(r50),
            ms(pct(&mut runner_times, 100))
        );
        println!(
            "in process with std::fs (baseline):       p50 {} ({:>9.0} files/s)  max {}",
            ms(s50),
            rate(s50),
            ms(pct(&mut std_times, 100))
        );
        println!(
            "ratio runner/in-process p50: {:.2}  (target: >= 5,000 files/s through the runner)",
            ratio(r50, s50)
        );
    }

    println!("\n== glob mrc/*.mrc over {MRCS} files ({RUNS} runs each, interleaved)");
    let (mut globs, mut std_lists) = (vec![], vec![]);
    for _ in 0..RUNS {
        let t = Instant::now();
        let found = runner
            .glob(&account, &root, "mrc/*.mrc", 100_000)
            .await
            .unwrap();
        globs.push(t.elapsed());
        assert_eq!(found.total, MRCS);
        let t = Instant::now();
        let mut names: Vec<String> = std::fs::read_dir(root.join("mrc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".mrc") && !n.starts_with('.'))
            .collect();
        names.sort_unstable();
        std_lists.push(t.elapsed());
        black_box(names);
    }
    let (g50, l50) = (pct(&mut globs, 50), pct(&mut std_lists, 50));
    println!("glob through the runner as cwlab1:        p50 {}", ms(g50));
    println!("std::fs::read_dir + suffix + sort:        p50 {}", ms(l50));
    println!("ratio runner/in-process p50: {:.2}", ratio(g50, l50));
}

/// The baseline: each header read in process with std::fs (no runner, no account change).
fn in_process(root: &Path, paths: &[String]) -> Vec<Result<Header, HeaderError>> {
    let mut head = vec![0u8; HEAD_BYTES];
    paths
        .iter()
        .map(|p| {
            let file = std::fs::File::open(root.join(p)).unwrap();
            let size = file.metadata().unwrap().len();
            let n = read_at_full(&file, &mut head, 0);
            let head = &head[..n];
            let format = FileFormat::from_name(p).unwrap();
            if !format.is_tiff() {
                return headers::parse(p, head, size);
            }
            let chain = headers::tiff_chain(head, size)?;
            let walked = walk_chain(&chain, size, MAX_FRAMES, |offset, buf| {
                Ok(read_at_full(&file, buf, offset))
            })
            .map_err(|e| HeaderError::from_chain_refusal(e.refusal()))?;
            headers::parse_tiff(format, head, &chain, &walked)
        })
        .collect()
}

fn read_at_full(file: &std::fs::File, buf: &mut [u8], offset: u64) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match file
            .read_at(&mut buf[done..], offset + done as u64)
            .unwrap()
        {
            0 => break,
            n => done += n,
        }
    }
    done
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:>8.2} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
