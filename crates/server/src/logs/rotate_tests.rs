//! Tests of the rotating writer.

use super::*;

fn read(dir: &Path, n: usize) -> Option<String> {
    fs::read_to_string(file_path(dir, Service::App, n)).ok()
}

fn record(i: usize) -> String {
    format!("record {i:04} {}\n", "x".repeat(i % 7))
}

#[test]
fn rotates_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingFile::open(dir.path(), Service::App, 30, 2).unwrap();
    assert_eq!(read(dir.path(), 0).as_deref(), Some(""), "created empty");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&log.path().metadata().unwrap().permissions());
    assert_eq!(mode & 0o007, 0, "no access for others");
    (&log).write_all(b"0123456789\n").unwrap(); // 11
    (&log).write_all(b"0123456789\n").unwrap(); // 22
    (&log).write_all(b"0123456\n").unwrap(); // 30: exactly the limit, still no rotation
    assert_eq!(read(dir.path(), 0).unwrap().len(), 30);
    assert_eq!(read(dir.path(), 1), None);
    (&log).write_all(b"a\n").unwrap(); // would make 32: rotates first
    assert_eq!(read(dir.path(), 0).as_deref(), Some("a\n"));
    assert_eq!(
        read(dir.path(), 1).unwrap(),
        "0123456789\n0123456789\n0123456\n"
    );
}

#[test]
fn keeps_at_most_keep_old_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let max = 100;
    let keep = 3;
    let log = RotatingFile::open(dir.path(), Service::App, max, keep).unwrap();
    let all: Vec<String> = (0..200).map(record).collect();
    for r in &all {
        (&log).write_all(r.as_bytes()).unwrap();
        for n in 0..=keep {
            if let Some(text) = read(dir.path(), n) {
                assert!(
                    text.len() as u64 <= max,
                    "file {n} has {} bytes",
                    text.len()
                );
            }
        }
    }
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["app.log", "app.log.1", "app.log.2", "app.log.3"]);
    // Oldest first, the kept files are exactly the last records, none lost or repeated.
    let kept: String = (0..=keep)
        .rev()
        .map(|n| read(dir.path(), n).unwrap())
        .collect();
    assert!(all.concat().ends_with(&kept));
    assert!(kept.starts_with("record "));
    assert!(kept.len() as u64 > keep as u64 * max / 2);
}

#[test]
fn keep_zero_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingFile::open(dir.path(), Service::App, 10, 0).unwrap();
    (&log).write_all(b"12345678\n").unwrap();
    (&log).write_all(b"abc\n").unwrap();
    assert_eq!(read(dir.path(), 0).as_deref(), Some("abc\n"));
    assert_eq!(read(dir.path(), 1), None);
}

#[test]
fn cuts_a_record_longer_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingFile::open(dir.path(), Service::App, 16, 1).unwrap();
    (&log).write_all(b"short\n").unwrap();
    (&log).write_all("ééééééééééééé\n".as_bytes()).unwrap(); // 27 bytes
    let text = read(dir.path(), 0).unwrap();
    assert!(text.len() <= 16);
    assert_eq!(text, "éééééé…\n");
    assert_eq!(read(dir.path(), 1).as_deref(), Some("short\n"));
}

#[test]
fn reopening_appends_and_removes_files_beyond_keep() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(file_path(dir.path(), Service::App, 0), "old\n").unwrap();
    for n in 1..=6 {
        fs::write(file_path(dir.path(), Service::App, n), format!("gen {n}\n")).unwrap();
    }
    fs::write(dir.path().join("app.log.bak"), "not ours").unwrap();
    let log = RotatingFile::open(dir.path(), Service::App, 10, 2).unwrap();
    assert_eq!(read(dir.path(), 3), None);
    assert_eq!(read(dir.path(), 6), None);
    assert!(dir.path().join("app.log.bak").exists());
    (&log).write_all(b"new\n").unwrap(); // 4 + 4 <= 10: appended
    assert_eq!(read(dir.path(), 0).as_deref(), Some("old\nnew\n"));
    (&log).write_all(b"newer\n").unwrap(); // rotates: gen 2 deleted
    assert_eq!(read(dir.path(), 1).as_deref(), Some("old\nnew\n"));
    assert_eq!(read(dir.path(), 2).as_deref(), Some("gen 1\n"));
    assert_eq!(read(dir.path(), 3), None);
}

#[test]
fn records_from_threads_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(RotatingFile::open(dir.path(), Service::App, 4096, 100).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let line = format!("thread {t} line {i:03} {}\n", "y".repeat(i % 50));
                    (&*log).write_all(line.as_bytes()).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let mut lines = 0;
    for n in 0..=100 {
        let Some(text) = read(dir.path(), n) else {
            continue;
        };
        assert!(text.len() <= 4096 && text.ends_with('\n'));
        for line in text.lines() {
            let (head, tail) = line.split_at(18);
            assert!(
                head.starts_with("thread ") && tail.bytes().all(|b| b == b'y'),
                "{line}"
            );
            lines += 1;
        }
    }
    assert_eq!(lines, 2000);
}
