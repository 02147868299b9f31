//! Path resolution figures (run by bench/paths.sh), each beside a baseline measured in the same
//! run, interleaved:
//!   1. `RelPath::parse` + `Root::open_beneath(File)` of a file 8 directories deep beneath a root,
//!      against `std::fs::File::open` of the same absolute path: p50 and p99 over 100,000 each;
//!   2. `Root::list_dir` of a directory of 100,000 empty files, first page of 200 (and a page deep
//!      in the listing), against `std::fs::read_dir` collecting the names of the same directory.
//!
//! Warm dentry and page caches (the tree was just made): not cold-disk figures.

use std::fs::{self, File};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cryowarden_paths::{OpenHow, Page, RelPath, Root};

const OPENS: usize = 100_000;
const FILES: usize = 100_000;
const LISTS: usize = 30;

fn main() {
    let base =
        std::env::var_os("CRYOWARDEN_BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("cw-paths-bench")
        .tempdir_in(base)
        .expect("temp dir");
    let root_dir = work.path().join("root");
    let deep = "l1/l2/l3/l4/l5/l6/l7/l8/data.mrc";
    fs::create_dir_all(root_dir.join(deep).parent().unwrap()).unwrap();
    fs::write(root_dir.join(deep), b"inside").unwrap();
    let root = Root::open(&root_dir).expect("root");

    println!("\n== open a file 8 levels deep ({OPENS} each, interleaved in blocks of 1,000)");
    let absolute = root_dir.join(deep);
    let (mut ours, mut plain) = (Vec::with_capacity(OPENS), Vec::with_capacity(OPENS));
    for _ in 0..OPENS / 1000 {
        ours.extend(time_n(1000, || {
            let rel = RelPath::parse(black_box(deep)).unwrap();
            black_box(root.open_beneath(&rel, OpenHow::File).unwrap());
        }));
        plain.extend(time_n(1000, || {
            black_box(File::open(black_box(&absolute)).unwrap());
        }));
    }
    let (o50, o99, p50, p99) = (
        pct(&mut ours, 50),
        pct(&mut ours, 99),
        pct(&mut plain, 50),
        pct(&mut plain, 99),
    );
    println!(
        "open_beneath (parse + openat2 BENEATH + fstat + fcntl): p50 {}  p99 {}",
        us(o50),
        us(o99)
    );
    println!(
        "File::open of the absolute path:                     p50 {}  p99 {}",
        us(p50),
        us(p99)
    );
    println!(
        "ratio ours/plain p50: {:.2}  (target: ours p50 <= 20 us)",
        ratio(o50, p50)
    );

    println!(
        "\n== list a directory of {FILES} empty files ({LISTS} runs each, interleaved, medians)"
    );
    let big = root_dir.join("big");
    let made = Instant::now();
    make_files(&big, FILES);
    println!(
        "made {FILES} files in {:.2} s",
        made.elapsed().as_secs_f64()
    );
    let rel = RelPath::parse("big").unwrap();
    let (mut first, mut deep_page, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..LISTS {
        first.extend(time_n(1, || {
            let listing = root.list_dir(&rel, Page::new(0, 200).unwrap()).unwrap();
            assert_eq!((listing.total, listing.entries.len()), (FILES, 200));
        }));
        names.extend(time_n(1, || {
            let names: Vec<_> = fs::read_dir(&big)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), FILES);
        }));
        deep_page.extend(time_n(1, || {
            let listing = root
                .list_dir(&rel, Page::new(FILES / 2, 200).unwrap())
                .unwrap();
            assert_eq!(listing.entries.len(), 200);
        }));
    }
    let (f, d, n) = (
        pct(&mut first, 50),
        pct(&mut deep_page, 50),
        pct(&mut names, 50),
    );
    println!(
        "list_dir, first page of 200 (sorted, 200 statx):  {}",
        ms(f)
    );
    println!(
        "list_dir, page of 200 at offset {}:            {}",
        FILES / 2,
        ms(d)
    );
    println!(
        "read_dir collecting the {FILES} names (unsorted): {}",
        ms(n)
    );
    println!(
        "ratio ours/read_dir (first page): {:.2}  (target: ours <= 50 ms)",
        ratio(f, n)
    );
    let removed = Instant::now();
    drop(work);
    println!(
        "removed the tree in {:.2} s",
        removed.elapsed().as_secs_f64()
    );
}

/// Creates `count` empty files in a new directory `dir`.
fn make_files(dir: &Path, count: usize) {
    fs::create_dir(dir).unwrap();
    let dirfd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        0.into(),
    )
    .unwrap();
    let flags =
        rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC;
    for i in 0..count {
        drop(rustix::fs::openat(&dirfd, format!("file-{i:06}.mrc"), flags, 0o644.into()).unwrap());
    }
}

fn time_n(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

fn pct(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() - 1) * p / 100]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn us(d: Duration) -> String {
    format!("{:.2} us", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
