//! Tests of the report: read back with the zip crate's reader.

use std::collections::BTreeMap;
use std::fs;
use std::io::Cursor;

use futures_util::StreamExt;
use serde_json::json;

use super::*;

/// Every entry of a zip, by name.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (entry.name().unwrap().into_owned(), data)
        })
        .collect()
}

/// A log directory: a few MiB over several files, an empty one, and what must be left out.
fn log_dir() -> (tempfile::TempDir, BTreeMap<String, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    let mut big = Vec::new();
    for i in 0..40_000u32 {
        big.extend_from_slice(
            format!(
                "2025-06-01T12:00:{:02}.{i:06}Z  INFO cryowarden_server::api: request {i} took {}µs\n",
                i % 60,
                i * 7
            )
            .as_bytes(),
        );
    }
    files.insert("api.log".to_owned(), big);
    files.insert(
        "api.log.1".to_owned(),
        b"older\r\n\xff not utf-8\n".to_vec(),
    );
    files.insert("app.log".to_owned(), Vec::new());
    for (name, data) in &files {
        fs::write(dir.path().join(name), data).unwrap();
    }
    fs::create_dir(dir.path().join("subdir")).unwrap();
    fs::write(dir.path().join("subdir/inner.log"), "no").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link.log")).unwrap();
    (dir, files)
}

fn diagnostics() -> (Value, Value) {
    let runtime = runtime_diagnostics(json!({ "database": { "backend": "sqlite", "users": 3 } }));
    let browser = json!({ "user_agent": "Firefox/140.0", "screen": "2560x1440", "time_zone": "Europe/Paris", "errors": [] });
    (runtime, browser)
}

#[test]
fn the_zip_holds_every_log_and_both_diagnostics() {
    let (dir, files) = log_dir();
    let (runtime, browser) = diagnostics();
    let mut calls = Vec::new();
    let out = write_report(Vec::new(), dir.path(), &runtime, &browser, &mut |d, t| {
        calls.push((d, t));
    })
    .unwrap();
    let entries = unzip(&out);
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "browser-diagnostics.json",
            "logs/api.log",
            "logs/api.log.1",
            "logs/app.log",
            "runtime-diagnostics.json"
        ]
    );
    for (name, data) in &files {
        assert!(entries[&format!("logs/{name}")] == *data, "{name} differs");
    }
    assert!(
        out.len() < files["api.log"].len() / 4,
        "compressed: {} bytes",
        out.len()
    );

    let r: Value = serde_json::from_slice(&entries["runtime-diagnostics.json"]).unwrap();
    assert!(
        std::str::from_utf8(&entries["runtime-diagnostics.json"])
            .unwrap()
            .contains("\n  \"build\""),
        "pretty"
    );
    for field in [
        "version",
        "build",
        "host",
        "process",
        "generated_at",
        "database",
    ] {
        assert!(r.get(field).is_some(), "runtime diagnostics lack {field}");
    }
    for field in [
        "kernel",
        "hostname",
        "cpu_model",
        "cores",
        "memory",
        "open_files",
        "gpus",
        "driver",
    ] {
        assert!(r["host"].get(field).is_some(), "host lacks {field}");
    }
    assert_eq!(r["database"]["users"], 3);
    let b: Value = serde_json::from_slice(&entries["browser-diagnostics.json"]).unwrap();
    assert_eq!(b, browser);

    let total: u64 = files.values().map(|d| d.len() as u64).sum();
    assert_eq!(calls.first(), Some(&(0, total)));
    assert_eq!(calls.last(), Some(&(total, total)));
    assert!(
        calls
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1)
    );
    assert!(
        calls.len() > files["api.log"].len() / CHUNK,
        "called as the copy goes"
    );
}

#[test]
fn a_missing_log_directory_gives_the_diagnostics_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, browser) = diagnostics();
    let out = write_report(
        Vec::new(),
        &dir.path().join("absent"),
        &runtime,
        &browser,
        &mut |_, _| {},
    )
    .unwrap();
    let entries = unzip(&out);
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        ["browser-diagnostics.json", "runtime-diagnostics.json"]
    );
}

#[test]
fn a_failing_output_stops_the_report() {
    struct Failing(usize);
    impl Write for Failing {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0 += data.len();
            if self.0 > 10_000 {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
            } else {
                Ok(data.len())
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let (dir, _) = log_dir();
    let (runtime, browser) = diagnostics();
    let err = write_report(Failing(0), dir.path(), &runtime, &browser, &mut |_, _| {})
        .err()
        .unwrap();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn the_stream_yields_the_same_zip_in_bounded_chunks() {
    let (dir, files) = log_dir();
    let (runtime, browser) = diagnostics();
    let mut stream = std::pin::pin!(report_stream(dir.path().to_owned(), runtime, browser));
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.unwrap());
    }
    assert!(chunks.len() > 2);
    assert!(chunks[0].len() < 1024, "the first bytes go out at once");
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK));
    let entries = unzip(&chunks.concat());
    for (name, data) in &files {
        assert!(entries[&format!("logs/{name}")] == *data, "{name} differs");
    }
    assert!(
        entries.contains_key("runtime-diagnostics.json")
            && entries.contains_key("browser-diagnostics.json")
    );
}

#[tokio::test]
async fn dropping_the_reader_stops_the_writer() {
    use rand::RngCore;
    let dir = tempfile::tempdir().unwrap();
    let mut noise = vec![0u8; 8 << 20]; // incompressible: ~128 chunks, far more than the channel holds
    rand::rng().fill_bytes(&mut noise);
    fs::write(dir.path().join("api.log"), &noise).unwrap();
    let (mut rx, task) = start(dir.path().to_owned(), json!({}), json!({}));
    assert!(matches!(rx.recv().await, Some(Message::Data(_))));
    drop(rx);
    tokio::time::timeout(std::time::Duration::from_secs(20), task)
        .await
        .expect("the writer stops")
        .unwrap();
}
