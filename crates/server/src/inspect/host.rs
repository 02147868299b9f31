//! system-properties (host, kernel, OS, CPUs, memory, GPUs, uptime), memory-usage (the process
//! from /proc/self, the tokio runtime) and running-tasks (the scheduler loop, the cluster poller,
//! the runtime's tasks).

use std::time::Duration;

use serde_json::{Value, json};

use crate::services::Services;

/// How long `nvidia-smi` may take (a wedged driver makes it hang).
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(5);

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A `Key:   1234 kB` line of /proc/meminfo or /proc/self/status, in bytes.
pub fn proc_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// A plain `Key:   value` line of /proc/self/status.
fn proc_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| Some(line.strip_prefix(key)?.strip_prefix(':')?.trim()))
}

/// PRETTY_NAME of /etc/os-release (else NAME VERSION).
pub fn os_release(text: &str) -> Option<String> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_owned())
        })
    };
    field("PRETTY_NAME").or_else(|| {
        Some(format!(
            "{} {}",
            field("NAME")?,
            field("VERSION").unwrap_or_default()
        ))
    })
}

/// The rows of `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader`.
pub fn parse_gpus(csv: &str) -> Vec<Value> {
    csv.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let memory = f.get(2).copied().unwrap_or_default();
            json!({
                "index": f.first().and_then(|i| i.parse::<u32>().ok()),
                "name": f.get(1).copied().unwrap_or_default(),
                "memory_total": memory,
                "memory_total_mib": memory.trim_end_matches("MiB").trim().parse::<u64>().ok(),
            })
        })
        .collect()
}

/// The GPUs `nvidia-smi` reports, or why there are none.
async fn gpus() -> Value {
    let mut cmd = tokio::process::Command::new("nvidia-smi");
    cmd.args([
        "--query-gpu=index,name,memory.total",
        "--format=csv,noheader",
    ])
    .stdin(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .kill_on_drop(true);
    match tokio::time::timeout(NVIDIA_SMI_TIMEOUT, cmd.output()).await {
        Err(_) => {
            json!({ "gpus": [], "note": format!("nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT:?}") })
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            json!({ "gpus": [], "note": "none detected" })
        }
        Ok(Err(e)) => {
            json!({ "gpus": [], "note": format!("none detected: cannot run nvidia-smi: {e}") })
        }
        Ok(Ok(out)) if !out.status.success() => {
            json!({ "gpus": [], "note": format!("none detected: nvidia-smi exited with {}", out.status) })
        }
        Ok(Ok(out)) => {
            let gpus = parse_gpus(&String::from_utf8_lossy(&out.stdout));
            let note = if gpus.is_empty() {
                Some("none detected")
            } else {
                None
            };
            json!({ "gpus": gpus, "note": note })
        }
    }
}

fn seconds(d: Duration) -> Value {
    json!({ "seconds": d.as_secs(), "text": human_duration(d) })
}

/// `3d 4h 5m 6s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if n > 0 || !out.is_empty() {
            out.push_str(&format!("{n}{unit} "));
        }
    }
    out.push_str(&format!("{secs}s"));
    out
}

/// Host name, kernel, OS release, CPUs, memory, GPUs, uptime of the host and of the server.
pub async fn system_properties(state: &Services) -> Value {
    let uname = rustix::system::uname();
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_owned())
        })
    });
    let host_uptime = read("/proc/uptime")
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| seconds(Duration::from_secs_f64(s)));
    json!({
        "hostname": uname.nodename().to_string_lossy(),
        "kernel": format!("{} {} {}", uname.sysname().to_string_lossy(), uname.release().to_string_lossy(), uname.version().to_string_lossy()),
        "machine": uname.machine().to_string_lossy(),
        "os_release": read("/etc/os-release").as_deref().and_then(os_release),
        "cpus": {
            "available": std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1),
            "online": cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
            "model": cpu_model,
        },
        "memory": {
            "total_bytes": proc_kib(&meminfo, "MemTotal"),
            "available_bytes": proc_kib(&meminfo, "MemAvailable"),
            "swap_total_bytes": proc_kib(&meminfo, "SwapTotal"),
            "swap_free_bytes": proc_kib(&meminfo, "SwapFree"),
        },
        "gpus": gpus().await,
        "host_uptime": host_uptime,
        "server_uptime": seconds(state.started.elapsed()),
        "server_version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    })
}

/// The tokio runtime the caller runs on: workers, alive tasks, the global queue.
fn runtime() -> Value {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            let m = handle.metrics();
            json!({
                "flavor": format!("{:?}", handle.runtime_flavor()),
                "workers": m.num_workers(),
                "alive_tasks": m.num_alive_tasks(),
                "global_queue_depth": m.global_queue_depth(),
            })
        }
        Err(_) => Value::Null,
    }
}

/// The process's memory from /proc/self/status and /proc/self/statm, and the runtime.
pub fn memory_usage() -> Value {
    let status = read("/proc/self/status").unwrap_or_default();
    let statm = read("/proc/self/statm").unwrap_or_default();
    let page = rustix::param::page_size() as u64;
    let pages: Vec<u64> = statm
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let statm_bytes = |i: usize| pages.get(i).map(|p| p * page);
    json!({
        "rss_bytes": proc_kib(&status, "VmRSS"),
        "peak_rss_bytes": proc_kib(&status, "VmHWM"),
        "virtual_bytes": proc_kib(&status, "VmSize"),
        "peak_virtual_bytes": proc_kib(&status, "VmPeak"),
        "data_bytes": proc_kib(&status, "VmData"),
        "swap_bytes": proc_kib(&status, "VmSwap"),
        "threads": proc_value(&status, "Threads").and_then(|t| t.parse::<u64>().ok()),
        "statm": {
            "page_size": page,
            "size_bytes": statm_bytes(0),
            "resident_bytes": statm_bytes(1),
            "shared_bytes": statm_bytes(2),
            "text_bytes": statm_bytes(3),
            "data_bytes": statm_bytes(5),
        },
        "runtime": runtime(),
    })
}

/// The server's live tasks: the scheduler loop and cluster poller, and the runtime's tasks.
pub fn running_tasks(state: &Services) -> Value {
    json!({
        "scheduler": state.scheduler.snapshot(),
        "runtime": runtime(),
        "server_uptime": seconds(state.started.elapsed()),
        "database_pool": { "size": state.db.pool.size(), "idle": state.db.pool.num_idle() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_and_nvidia_smi() {
        let status = "Name:\tcw\nVmPeak:\t  2048 kB\nVmRSS:\t   512 kB\nThreads:\t7\n";
        assert_eq!(proc_kib(status, "VmRSS"), Some(512 * 1024));
        assert_eq!(proc_kib(status, "VmHWM"), None);
        assert_eq!(proc_value(status, "Threads"), Some("7"));
        assert_eq!(
            os_release(
                "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
            )
            .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let gpus = parse_gpus(
            "0, NVIDIA A100-SXM4-40GB, 40960 MiB\n1, NVIDIA A100-SXM4-40GB, 40960 MiB\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[1]["index"], 1);
        assert_eq!(gpus[0]["memory_total_mib"], 40960);
        assert_eq!(human_duration(Duration::from_secs(90_061)), "1d 1h 1m 1s");
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
    }
}
