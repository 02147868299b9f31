//! Instance logs figures (run by bench/logs.sh):
//!   1. `tail(…, 500)` on a 1 MiB and a 1 GiB log, beside GNU `tail -n 500 FILE > /dev/null` on the
//!      same files in the same run, interleaved. GNU tail runs as a subprocess, whose time includes
//!      spawning it (1-4 ms here), so its own time per file is measured too: `tail -q -n 500 F … F`
//!      (F given 101 times) minus the run with F once, divided by 100;
//!   2. the report of the 1 GiB log directory written to io::sink: time, and the peak RSS increase
//!      of the process that writes it (a child process, so that nothing else counts);
//!   3. time from polling `report_stream` to its first bytes and to its first 64 KiB.
//!
//! The page cache is warm (the files were just written): these are not cold-disk figures.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cryowarden_server::logs::{Service, report_stream, runtime_diagnostics, tail, write_report};
use futures_util::StreamExt;
use serde_json::json;

const CHILD_ENV: &str = "CRYOWARDEN_LOGS_BENCH_REPORT_DIR";
const LINES: usize = 500;
const GNU_REPEAT: usize = 101;

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return report_child(Path::new(&dir));
    }
    let base =
        std::env::var_os("CRYOWARDEN_BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("cw-logs-bench")
        .tempdir_in(base)
        .expect("temp dir");
    let small = make_log_dir(&work.path().join("small"), 1 << 20);
    let big = make_log_dir(&work.path().join("big"), 1 << 30);

    println!(
        "\n== tail, last {LINES} lines (warm page cache; ours and GNU tail interleaved, medians)"
    );
    let spawn = median(time_n(100, || gnu_tail(0, &[Path::new("/dev/null")])));
    println!(
        "spawning a process: `tail -n 0 /dev/null` as a subprocess takes {}",
        us(spawn)
    );
    let mut ours_by_size = Vec::new();
    for (label, dir) in [("1 MiB", &small), ("1 GiB", &big)] {
        let file = dir.join(Service::Api.file_name());
        check_same_as_gnu_tail(dir, &file);
        let many = vec![file.as_path(); GNU_REPEAT];
        let (mut ours, mut gnu, mut gnu_many) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..200 {
            ours.extend(time_n(10, || {
                let lines = tail(dir, Service::Api, LINES).expect("tail");
                assert_eq!(lines.len(), LINES);
            }));
            gnu.extend(time_n(1, || gnu_tail(LINES, &[&file])));
            if round % 5 == 0 {
                gnu_many.extend(time_n(1, || gnu_tail(LINES, &many)));
            }
        }
        let (ours, gnu) = (median(ours), median(gnu));
        // GNU tail's own time per file, without the spawn: `tail -q -n 500 F … F` (F given
        // GNU_REPEAT times) minus `tail -q -n 500 F`, divided by GNU_REPEAT - 1.
        let gnu_own = median(gnu_many).saturating_sub(gnu) / (GNU_REPEAT as u32 - 1);
        println!(
            "{label}: ours {}  gnu-tail {} (a subprocess: spawn included)  gnu-tail's own time per file {}",
            us(ours),
            us(gnu),
            us(gnu_own)
        );
        println!(
            "{label}: ratio ours/gnu-tail = {:.3} (against the subprocess)  {:.2} (against gnu-tail's own time)",
            ratio(ours, gnu),
            ratio(ours, gnu_own)
        );
        ours_by_size.push(ours);
    }
    println!(
        "ours 1 GiB / 1 MiB = {:.2} (1.0: the cost does not depend on the file's size)",
        ratio(ours_by_size[1], ours_by_size[0])
    );

    println!("\n== report to io::sink, in a child process (peak RSS = VmHWM after - before)");
    for (label, dir) in [("1 MiB", &small), ("1 GiB", &big)] {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .env(CHILD_ENV, dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run the report child");
        assert!(out.status.success(), "report child failed");
        println!(
            "{label} log dir: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }

    println!(
        "\n== report_stream on the 1 GiB log dir: time to the first bytes and to the first 64 KiB"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut first_bytes = Vec::new();
    let mut first_64k = Vec::new();
    for _ in 0..5 {
        let (a, b) = rt.block_on(first_chunks(&big));
        first_bytes.push(a);
        first_64k.push(b);
    }
    println!(
        "first bytes: median {}  first 64 KiB: median {} (5 runs)",
        us(median(first_bytes)),
        us(median(first_64k))
    );
    drop(rt);

    let start = Instant::now();
    drop(work);
    println!(
        "\ntemp files deleted in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

/// A log directory with every service's file, `api.log` of `size` bytes of ~120-byte lines.
fn make_log_dir(dir: &Path, size: usize) -> PathBuf {
    fs::create_dir_all(dir).expect("dir");
    for service in Service::ALL {
        File::create(dir.join(service.file_name())).expect("create");
    }
    let start = Instant::now();
    let block = lines_block(4 << 20);
    let mut file = File::create(dir.join(Service::Api.file_name())).expect("create");
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        file.write_all(&block[..n]).expect("write");
        left -= n;
    }
    // End on a whole line, as the writer does.
    file.write_all(b"2025-06-01T23:59:59.999999Z  INFO cryowarden_server::app: last line\n")
        .expect("write");
    println!(
        "made {} ({} MiB) in {:.2} s",
        dir.display(),
        size >> 20,
        start.elapsed().as_secs_f64()
    );
    dir.to_owned()
}

/// At most `size` bytes of whole, realistic log lines.
fn lines_block(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut i: u64 = 0;
    loop {
        let (s, us) = (i / 1000 % 60, i % 1_000_000);
        let line = match i % 4 {
            0 => format!(
                "2025-06-01T12:{:02}:{s:02}.{us:06}Z  INFO request{{method=GET uri=/api/v1/jobs/{}}}: cryowarden_server::api::jobs: listed count={}\n",
                i / 60_000 % 60,
                i * 7919 % 100_000,
                i % 97
            ),
            1 => format!(
                "2025-06-01T12:{:02}:{s:02}.{us:06}Z DEBUG sqlx::query: summary=\"SELECT id, name FROM users …\" rows_returned={} elapsed={}µs\n",
                i / 60_000 % 60,
                i % 50,
                i * 31 % 5000
            ),
            2 => format!(
                "2025-06-01T12:{:02}:{s:02}.{us:06}Z  INFO tower_http::trace::on_response: finished processing request latency={} ms status=200\n",
                i / 60_000 % 60,
                i % 13
            ),
            _ => format!(
                "2025-06-01T12:{:02}:{s:02}.{us:06}Z  WARN cryowarden_server::auth: login refused user=user{} from=10.{}.{}.{}\n",
                i / 60_000 % 60,
                i % 1000,
                i % 256,
                i * 3 % 256,
                i * 7 % 256
            ),
        };
        if out.len() + line.len() > size {
            return out;
        }
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
}

fn gnu_tail(lines: usize, files: &[&Path]) {
    let status = Command::new("tail")
        .arg("-q")
        .arg("-n")
        .arg(lines.to_string())
        .args(files)
        .stdin(Stdio::null())
        .stdout(File::create("/dev/null").expect("/dev/null"))
        .status()
        .expect("run GNU tail");
    assert!(status.success());
}

/// Our lines are GNU tail's (these files are valid UTF-8 with short lines, so they must match).
fn check_same_as_gnu_tail(dir: &Path, file: &Path) {
    let gnu = Command::new("tail")
        .arg("-n")
        .arg(LINES.to_string())
        .arg(file)
        .output()
        .expect("run GNU tail");
    let ours = tail(dir, Service::Api, LINES).expect("tail").join("\n") + "\n";
    assert!(
        gnu.stdout == ours.as_bytes(),
        "tail differs from GNU tail on {}",
        file.display()
    );
}

fn report_child(dir: &Path) {
    let (hwm_before, rss_before) = (status_kib("VmHWM"), status_kib("VmRSS"));
    let runtime = runtime_diagnostics(json!({}));
    let browser = json!({ "user_agent": "bench" });
    let start = Instant::now();
    let mut calls = 0u64;
    let out =
        write_report(Counting(0), dir, &runtime, &browser, &mut |_, _| calls += 1).expect("report");
    let elapsed = start.elapsed();
    let hwm_after = status_kib("VmHWM");
    let logs: u64 = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    println!(
        "{:.2} s ({:.0} MiB/s of logs), zip {:.1} MiB, peak RSS {} KiB before, {} KiB after: +{} KiB (RSS at start {} KiB), {calls} progress calls",
        elapsed.as_secs_f64(),
        logs as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        out.0 as f64 / (1 << 20) as f64,
        hwm_before,
        hwm_after,
        hwm_after - hwm_before,
        rss_before
    );
}

/// io::sink that counts.
struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn status_kib(key: &str) -> i64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .expect("field")
}

async fn first_chunks(dir: &Path) -> (Duration, Duration) {
    let start = Instant::now();
    let mut stream = Box::pin(report_stream(dir.to_owned(), json!({}), json!({})));
    let mut first = None;
    let mut got = 0;
    while let Some(chunk) = stream.next().await {
        got += chunk.expect("chunk").len();
        first.get_or_insert_with(|| start.elapsed());
        if got >= 64 * 1024 {
            break;
        }
    }
    (first.expect("a chunk"), start.elapsed())
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
