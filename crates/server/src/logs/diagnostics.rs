//! Runtime diagnostics for the report: what was built, on what host, with what limits. Reads
//! `/proc` (Linux); a value that cannot be read is `null` rather than an error. Blocking (it may
//! run `nvidia-smi`, for at most 5 s): call it from a blocking thread.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(5);

/// Version, build, host (kernel, hostname, CPU model, cores, memory, open-file limits, GPUs and
/// driver), process RSS and the time generated; then `extra`'s fields (lanes and targets with
/// secrets redacted, database statistics, ...) at top level, replacing any of the same name.
pub fn runtime_diagnostics(extra: Value) -> Value {
    let meminfo = read("/proc/meminfo");
    let status = read("/proc/self/status");
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let (gpus, driver, gpu_error) = gpus();
    let mut report = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "build": {
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
            "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        },
        "host": {
            "kernel": kernel(),
            "hostname": hostname(),
            "cpu_model": read("/proc/cpuinfo").as_deref().and_then(cpu_model),
            "cores": std::thread::available_parallelism().ok().map(std::num::NonZero::get),
            "memory": {
                "total_bytes": meminfo.as_deref().and_then(|m| proc_kib(m, "MemTotal")),
                "available_bytes": meminfo.as_deref().and_then(|m| proc_kib(m, "MemAvailable")),
            },
            "open_files": { "soft": limit(nofile.current), "hard": limit(nofile.maximum) },
            "gpus": gpus,
            "driver": driver,
        },
        "process": {
            "pid": std::process::id(),
            "rss_bytes": status.as_deref().and_then(|s| proc_kib(s, "VmRSS")),
            "peak_rss_bytes": status.as_deref().and_then(|s| proc_kib(s, "VmHWM")),
        },
        "generated_at": OffsetDateTime::now_utc().format(&Rfc3339).ok(),
    });
    if let Some(error) = gpu_error {
        report["host"]["gpu_error"] = Value::String(error);
    }
    let top = report.as_object_mut().expect("an object");
    match extra {
        Value::Object(fields) => top.extend(fields),
        Value::Null => {}
        other => {
            top.insert("extra".into(), other);
        }
    }
    report
}

fn limit(value: Option<u64>) -> Value {
    value.map_or_else(|| Value::from("unlimited"), Value::from)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `Linux 6.1.0-18-amd64`, from /proc, else from uname(2).
fn kernel() -> String {
    let ostype = read("/proc/sys/kernel/ostype");
    let release = read("/proc/sys/kernel/osrelease");
    match (ostype, release) {
        (Some(t), Some(r)) => format!("{} {}", t.trim(), r.trim()),
        _ => {
            let u = rustix::system::uname();
            format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            )
        }
    }
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The first "model name" of /proc/cpuinfo (x86), else "Model" or "Hardware" (ARM).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_owned())
        })
    })
}

/// A `Key:   1234 kB` line of /proc/meminfo or /proc/self/status, in bytes.
fn proc_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// GPUs and driver version from `nvidia-smi`, if it is installed; an empty list and no driver
/// otherwise. The third value says why `nvidia-smi` gave nothing, if it was there.
fn gpus() -> (Vec<Value>, Option<String>, Option<String>) {
    let Some(smi) = find_in_path("nvidia-smi") else {
        return (Vec::new(), None, None);
    };
    match run_with_timeout(
        &smi,
        &[
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
        ],
    ) {
        Ok(out) => {
            let (gpus, driver) = parse_nvidia_smi(&out);
            (gpus, driver, None)
        }
        Err(e) => (Vec::new(), None, Some(e)),
    }
}

fn parse_nvidia_smi(csv: &str) -> (Vec<Value>, Option<String>) {
    let mut driver = None;
    let gpus = csv
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let memory = fields.get(1).copied().unwrap_or_default();
            if driver.is_none() {
                driver = fields.get(2).map(std::string::ToString::to_string);
            }
            json!({
                "name": fields.first().copied().unwrap_or_default(),
                "memory_total": memory,
                "memory_total_mib": memory.trim_end_matches("MiB").trim().parse::<u64>().ok(),
                "driver_version": fields.get(2).copied(),
            })
        })
        .collect();
    (gpus, driver)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Its stdout, or why not; killed after [`NVIDIA_SMI_TIMEOUT`] (a wedged driver makes it hang).
fn run_with_timeout(program: &Path, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    // The output is a few lines: read it on a thread so that a full pipe cannot block the child.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let deadline = Instant::now() + NVIDIA_SMI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not answer within {NVIDIA_SMI_TIMEOUT:?}",
                    program.display()
                ));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", program.display())),
        }
    };
    let text = reader
        .join()
        .map_err(|_| "reader thread panicked".to_owned())?
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(text)
    } else {
        Err(format!("{} exited with {status}", program.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_the_listed_fields_and_merges_extra() {
        let d = runtime_diagnostics(
            json!({ "lanes": [{ "name": "gpu", "password": "[redacted]" }], "version": "x" }),
        );
        assert_eq!(d["version"], "x", "extra replaces a field of the same name");
        assert!(d["build"]["profile"] == "debug" || d["build"]["profile"] == "release");
        let host = &d["host"];
        assert!(
            host["kernel"].as_str().unwrap().starts_with("Linux "),
            "{host}"
        );
        assert!(!host["hostname"].as_str().unwrap().is_empty());
        assert!(host["cores"].as_u64().unwrap() >= 1);
        assert!(host["memory"]["total_bytes"].as_u64().unwrap() > 0);
        assert!(host["memory"]["available_bytes"].as_u64().is_some());
        assert!(host["open_files"]["soft"].as_u64().unwrap() > 0);
        assert!(host["gpus"].is_array());
        assert!(host.get("driver").is_some());
        assert!(d["process"]["rss_bytes"].as_u64().unwrap() > 0);
        let at = d["generated_at"].as_str().unwrap();
        assert!(OffsetDateTime::parse(at, &Rfc3339).is_ok(), "{at}");
        assert_eq!(d["lanes"][0]["name"], "gpu");
    }

    #[test]
    fn parses_proc_and_nvidia_smi_text() {
        assert_eq!(
            proc_kib("MemTotal:       16318664 kB\nMemFree: 1 kB\n", "MemTotal"),
            Some(16318664 * 1024)
        );
        assert_eq!(
            proc_kib("VmRSS:\t   10240 kB\n", "VmRSS"),
            Some(10240 * 1024)
        );
        assert_eq!(proc_kib("VmRSSx: 1 kB\n", "VmRSS"), None);
        let cpu = "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\n";
        assert_eq!(
            cpu_model(cpu).as_deref(),
            Some("AMD EPYC 7763 64-Core Processor")
        );
        let (gpus, driver) = parse_nvidia_smi(
            "NVIDIA A100-SXM4-40GB, 40960 MiB, 535.104.05\nNVIDIA A100-SXM4-40GB, 40960 MiB, 535.104.05\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0]["name"], "NVIDIA A100-SXM4-40GB");
        assert_eq!(gpus[0]["memory_total_mib"], 40960);
        assert_eq!(driver.as_deref(), Some("535.104.05"));
        assert_eq!(parse_nvidia_smi("").0.len(), 0);
    }
}
