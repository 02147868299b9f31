//! CryoSPARC's `cluster_info.json`, accepted unchanged: the fields of the spec with their
//! defaults, every other field kept as it came (so `cluster dump` gives it back).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::template;
use crate::error::StoreError;

/// `send_cmd_tpl` when the file has none: the command itself, run where the server runs.
pub const DEFAULT_SEND_CMD_TPL: &str = "{{ command }}";
/// `qsub_cmd_tpl` when the file has none (SLURM).
pub const DEFAULT_QSUB_CMD_TPL: &str = "sbatch {{ script_path_abs }}";
/// `qstat_cmd_tpl` when the file has none (SLURM).
pub const DEFAULT_QSTAT_CMD_TPL: &str = "squeue -j {{ cluster_job_id }}";
/// `qdel_cmd_tpl` when the file has none (SLURM).
pub const DEFAULT_QDEL_CMD_TPL: &str = "scancel {{ cluster_job_id }}";
/// `qinfo_cmd_tpl` when the file has none (SLURM).
pub const DEFAULT_QINFO_CMD_TPL: &str = "sinfo";
/// `cache_reserve_mb` when the file has none (CryoSPARC's default).
pub const DEFAULT_CACHE_RESERVE_MB: u64 = 10_000;
/// Longest `name` and `title`.
pub const MAX_NAME_CHARS: usize = 128;
/// Largest command template, in bytes.
pub const MAX_CMD_TPL_BYTES: usize = 16 << 10;
/// Largest `cluster_info.json`, in bytes.
pub const MAX_INFO_BYTES: usize = 1 << 20;

/// A cluster target as CryoSPARC describes it, defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The target's (and lane's) name: required.
    pub name: String,
    /// Shown to people; the name when the file has none.
    pub title: String,
    /// CryoSPARC's worker program on the cluster's nodes, when given (any path: cryowarden never
    /// runs it, it is only a template variable).
    pub worker_bin_path: Option<String>,
    /// A node-local cache directory, when given (absolute).
    pub cache_path: Option<String>,
    pub cache_reserve_mb: u64,
    pub cache_quota_mb: Option<u64>,
    pub send_cmd_tpl: String,
    pub qsub_cmd_tpl: String,
    pub qstat_cmd_tpl: String,
    pub qdel_cmd_tpl: String,
    pub qinfo_cmd_tpl: String,
    /// Every other field of the file (`transfer_cmd_tpl`, `custom_vars`, `desc`, ...), as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The command template fields, with their defaults.
pub const CMD_TEMPLATES: [(&str, &str); 5] = [
    ("send_cmd_tpl", DEFAULT_SEND_CMD_TPL),
    ("qsub_cmd_tpl", DEFAULT_QSUB_CMD_TPL),
    ("qstat_cmd_tpl", DEFAULT_QSTAT_CMD_TPL),
    ("qdel_cmd_tpl", DEFAULT_QDEL_CMD_TPL),
    ("qinfo_cmd_tpl", DEFAULT_QINFO_CMD_TPL),
];

fn invalid(field: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::invalid(field, message)
}

/// A string field: absent or null is `None`; anything but a string is refused.
fn string(map: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, StoreError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(field, format!("must be a string, not {other}"))),
    }
}

/// A size in MB: absent or null is `None`; a non-negative whole number (written as an integer
/// or as a float such as `10000.0`), else refused.
fn megabytes(map: &mut Map<String, Value>, field: &'static str) -> Result<Option<u64>, StoreError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Ok(Some(f as u64)),
            _ => Err(invalid(
                field,
                format!("must be a whole number of megabytes, at least 0, not {n}"),
            )),
        },
        Some(other) => Err(invalid(
            field,
            format!("must be a number of megabytes, not {other}"),
        )),
    }
}

fn check_path(
    field: &'static str,
    value: &Option<String>,
    absolute: bool,
) -> Result<(), StoreError> {
    match value {
        Some(path) if absolute && !path.is_empty() && !path.starts_with('/') => Err(invalid(
            field,
            format!("{path:?} is not an absolute path: give the path from /"),
        )),
        Some(path) if path.chars().any(char::is_control) => Err(invalid(
            field,
            "contains a control character (a newline?): give a plain path",
        )),
        _ => Ok(()),
    }
}

/// `text` without its `{{ ... }}`, `{% ... %}` and `{# ... #}` parts (the words of the command
/// itself).
fn without_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        let close = match rest[at + 1..].chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            Some('#') => "#}",
            _ => {
                out.push_str(&rest[..=at]);
                rest = &rest[at + 1..];
                continue;
            }
        };
        out.push_str(&rest[..at]);
        out.push(' ');
        match rest[at + 2..].find(close) {
            Some(end) => rest = &rest[at + 2 + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Longest lane name (as every name in cryowarden).
pub const MAX_LANE_NAME: usize = 64;

/// Programs of other schedulers (PBS/Torque, Grid Engine, LSF) that a command template may run;
/// cryowarden drives SLURM only.
const FOREIGN_PROGRAMS: [(&str, &str); 13] = [
    ("qsub", "PBS or Grid Engine"),
    ("qstat", "PBS or Grid Engine"),
    ("qdel", "PBS or Grid Engine"),
    ("qhost", "Grid Engine"),
    ("qconf", "Grid Engine"),
    ("qalter", "PBS or Grid Engine"),
    ("qrsh", "Grid Engine"),
    ("pbsnodes", "PBS"),
    ("bsub", "LSF"),
    ("bjobs", "LSF"),
    ("bkill", "LSF"),
    ("bqueues", "LSF"),
    ("bhosts", "LSF"),
];

impl ClusterInfo {
    /// Parses and validates the text of a `cluster_info.json`.
    pub fn parse(text: &str) -> Result<ClusterInfo, StoreError> {
        if text.len() > MAX_INFO_BYTES {
            return Err(invalid(
                "cluster_info",
                format!("the file is over {MAX_INFO_BYTES} bytes"),
            ));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            invalid(
                "cluster_info",
                format!("not valid JSON ({e}): give CryoSPARC's cluster_info.json"),
            )
        })?;
        ClusterInfo::from_value(value)
    }

    /// Validates a `cluster_info.json` already parsed as JSON.
    pub fn from_value(value: Value) -> Result<ClusterInfo, StoreError> {
        let Value::Object(mut map) = value else {
            return Err(invalid(
                "cluster_info",
                "must be a JSON object with at least \"name\"",
            ));
        };
        let name = string(&mut map, "name")?.unwrap_or_default();
        let title = string(&mut map, "title")?;
        let worker_bin_path = string(&mut map, "worker_bin_path")?;
        let cache_path = string(&mut map, "cache_path")?;
        let cache_reserve_mb =
            megabytes(&mut map, "cache_reserve_mb")?.unwrap_or(DEFAULT_CACHE_RESERVE_MB);
        let cache_quota_mb = megabytes(&mut map, "cache_quota_mb")?;
        let mut tpl = |field: &'static str, default: &str| -> Result<String, StoreError> {
            Ok(string(&mut map, field)?
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| default.to_owned()))
        };
        let send_cmd_tpl = tpl("send_cmd_tpl", DEFAULT_SEND_CMD_TPL)?;
        let qsub_cmd_tpl = tpl("qsub_cmd_tpl", DEFAULT_QSUB_CMD_TPL)?;
        let qstat_cmd_tpl = tpl("qstat_cmd_tpl", DEFAULT_QSTAT_CMD_TPL)?;
        let qdel_cmd_tpl = tpl("qdel_cmd_tpl", DEFAULT_QDEL_CMD_TPL)?;
        let qinfo_cmd_tpl = tpl("qinfo_cmd_tpl", DEFAULT_QINFO_CMD_TPL)?;
        let title = title
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| name.clone());
        let info = ClusterInfo {
            name,
            title,
            worker_bin_path,
            cache_path,
            cache_reserve_mb,
            cache_quota_mb,
            send_cmd_tpl,
            qsub_cmd_tpl,
            qstat_cmd_tpl,
            qdel_cmd_tpl,
            qinfo_cmd_tpl,
            extra: map,
        };
        info.validate()?;
        Ok(info)
    }

    /// Checks the fields: a name (and title) of printable characters, absolute paths, command
    /// templates that compile.
    pub fn validate(&self) -> Result<(), StoreError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(invalid(
                "name",
                "is required: the target's name, e.g. \"slurmcluster\"",
            ));
        }
        if name != self.name {
            return Err(invalid(
                "name",
                "has spaces at its start or end: remove them",
            ));
        }
        for (field, value) in [("name", &self.name), ("title", &self.title)] {
            if value.chars().count() > MAX_NAME_CHARS {
                return Err(invalid(
                    field,
                    format!("is over {MAX_NAME_CHARS} characters"),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(invalid(
                    field,
                    "contains a control character (a newline?): use printable characters",
                ));
            }
        }
        if self.lane_name().is_empty() {
            return Err(invalid(
                "name",
                "has no letter or digit: give the cluster a name such as \"slurmcluster\"",
            ));
        }
        check_path("worker_bin_path", &self.worker_bin_path, false)?;
        check_path("cache_path", &self.cache_path, true)?;
        for (field, text) in self.cmd_templates() {
            if text.len() > MAX_CMD_TPL_BYTES {
                return Err(invalid(field, format!("is over {MAX_CMD_TPL_BYTES} bytes")));
            }
            template::check(text, field)?;
        }
        Ok(())
    }

    /// The name of the cluster's lane (and target): the file's `name` when it is a valid
    /// cryowarden name, else derived from it (every run of characters other than ASCII letters,
    /// digits, `.`, `_` and `-` becomes one `_`; leading and trailing ones dropped; at most 64),
    /// so that `"GPU cluster (A100)"` runs as lane `GPU_cluster_A100` with the name as its title.
    pub fn lane_name(&self) -> String {
        let mut out = String::new();
        for c in self.name.chars() {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                out.push(c);
            } else if !out.ends_with('_') {
                out.push('_');
            }
        }
        let trimmed = out.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let mut name: String = trimmed.chars().take(MAX_LANE_NAME).collect();
        while name.ends_with('_') {
            name.pop();
        }
        name
    }

    /// Refuses a file whose commands run another scheduler's programs (`qsub`, `qstat`,
    /// `pbsnodes`, `bsub`...): cryowarden submits, polls and cancels with SLURM only, so such a
    /// file could connect but never run a job.
    pub fn check_scheduler(&self) -> Result<(), StoreError> {
        for (field, text) in self.cmd_templates() {
            let text = without_tags(text);
            let words = text.split(|c: char| c.is_whitespace() || ";|&()`$<>".contains(c));
            for word in words {
                let program = word.rsplit('/').next().unwrap_or(word);
                if let Some((_, family)) = FOREIGN_PROGRAMS.iter().find(|(p, _)| *p == program) {
                    return Err(StoreError::Unsupported {
                        field,
                        code: "unsupported-scheduler",
                        message: format!(
                            "runs `{program}`, a {family} command: cryowarden drives SLURM clusters only \
                             (sbatch, squeue, scancel, sinfo); connect this cluster's SLURM files, or run its \
                             jobs on a node lane"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The five command templates by field name.
    pub fn cmd_templates(&self) -> [(&'static str, &str); 5] {
        [
            ("send_cmd_tpl", &self.send_cmd_tpl),
            ("qsub_cmd_tpl", &self.qsub_cmd_tpl),
            ("qstat_cmd_tpl", &self.qstat_cmd_tpl),
            ("qdel_cmd_tpl", &self.qdel_cmd_tpl),
            ("qinfo_cmd_tpl", &self.qinfo_cmd_tpl),
        ]
    }

    /// The file's JSON again (known fields then the others), for `cluster dump`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a ClusterInfo always encodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: StoreError) -> &'static str {
        match e {
            StoreError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cryosparcs_file_is_accepted_unchanged() {
        // CryoSPARC's documented example, with fields cryowarden does not use.
        let text = r#"{
            "name" : "slurmcluster",
            "worker_bin_path" : "/path/to/cryosparc_worker/bin/cryosparcw",
            "cache_path" : "/path/to/local/SSD/on/cluster/nodes",
            "send_cmd_tpl" : "ssh loginnode {{ command }}",
            "qsub_cmd_tpl" : "sbatch {{ script_path_abs }}",
            "qstat_cmd_tpl" : "squeue -j {{ cluster_job_id }}",
            "qdel_cmd_tpl" : "scancel {{ cluster_job_id }}",
            "qinfo_cmd_tpl" : "sinfo",
            "transfer_cmd_tpl" : "scp {{ src_path }} loginnode:{{ dest_path }}",
            "cache_quota_mb": null,
            "custom_vars": {"account": "lab1"}
        }"#;
        let info = ClusterInfo::parse(text).unwrap();
        assert_eq!(info.title, "slurmcluster");
        assert_eq!(info.cache_reserve_mb, DEFAULT_CACHE_RESERVE_MB);
        assert_eq!(info.cache_quota_mb, None);
        assert_eq!(info.send_cmd_tpl, "ssh loginnode {{ command }}");
        assert_eq!(
            info.extra["transfer_cmd_tpl"],
            "scp {{ src_path }} loginnode:{{ dest_path }}"
        );
        assert_eq!(info.extra["custom_vars"], json!({"account": "lab1"}));
        // Dumped and read again, it is the same.
        assert_eq!(ClusterInfo::parse(&info.to_json()).unwrap(), info);
    }

    #[test]
    fn defaults_fill_what_is_missing() {
        let info =
            ClusterInfo::parse(r#"{"name": "c", "cache_reserve_mb": 5000.0, "qdel_cmd_tpl": ""}"#)
                .unwrap();
        assert_eq!(info.title, "c");
        assert_eq!(info.cache_reserve_mb, 5000);
        assert_eq!(
            info.cmd_templates().map(|(_, t)| t.to_owned()),
            CMD_TEMPLATES.map(|(_, default)| default.to_owned())
        );
    }

    #[test]
    fn lane_names_are_derived_from_any_name() {
        let name = |n: &str| ClusterInfo {
            name: n.into(),
            ..ClusterInfo::parse(r#"{"name": "x"}"#).unwrap()
        };
        for (given, lane) in [
            ("slurmcluster", "slurmcluster"),
            ("GPU cluster (A100)", "GPU_cluster_A100"),
            ("a/b", "a_b"),
            ("é-cluster", "cluster"),
            ("_x_", "x"),
            ("ok.name-1", "ok.name-1"),
        ] {
            assert_eq!(name(given).lane_name(), lane, "{given}");
        }
        assert_eq!(name(&"x".repeat(100)).lane_name().len(), MAX_LANE_NAME);
        let relative =
            ClusterInfo::parse(r#"{"name": "a b", "worker_bin_path": "bin/cryosparcw"}"#).unwrap();
        assert_eq!(relative.title, "a b");
    }

    #[test]
    fn mistakes_name_their_field() {
        let cases = [
            (r"[]", "cluster_info"),
            (r#"{"name": "#, "cluster_info"),
            (r"{}", "name"),
            (r#"{"name": " c"}"#, "name"),
            (r#"{"name": "a\nb"}"#, "name"),
            (r#"{"name": 5}"#, "name"),
            (r#"{"name": "c", "title": "a\u0007"}"#, "title"),
            (
                r#"{"name": "c", "cache_reserve_mb": -1}"#,
                "cache_reserve_mb",
            ),
            (r#"{"name": "c", "cache_quota_mb": "10"}"#, "cache_quota_mb"),
            (
                r#"{"name": "c", "cache_path": "relative/dir"}"#,
                "cache_path",
            ),
            (
                r#"{"name": "c", "worker_bin_path": "a\nb"}"#,
                "worker_bin_path",
            ),
            (r#"{"name": "(( ))"}"#, "name"),
            (
                r#"{"name": "c", "worker_bin_path": ["x"]}"#,
                "worker_bin_path",
            ),
            (
                r#"{"name": "c", "qsub_cmd_tpl": "sbatch {{ script_path_abs"}"#,
                "qsub_cmd_tpl",
            ),
            (
                r#"{"name": "c", "qdel_cmd_tpl": "scancel {% if %}"}"#,
                "qdel_cmd_tpl",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(
                field_of(ClusterInfo::parse(text).unwrap_err()),
                field,
                "{text}"
            );
        }
    }
}
