//! The runner's protocol: one JSON [`Request`] on stdin, one JSON [`Answer`] on stdout.
//!
//! A request is `{"account": {...}, "op": "<name>", ...the op's fields}`; an answer is
//! `{"ok": <value>}` or `{"error": {"code": "<stable-kebab-code>", "message": "..."}}`. Nothing
//! travels in arguments (they are visible to everyone in `ps`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest request read from stdin, in bytes.
pub const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Largest `max_bytes` of [`Op::ReadHead`].
pub const MAX_HEAD_BYTES: usize = 1 << 20;

/// The Unix account to act as. The runner checks every field against the system's user
/// database and its policy before using it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    pub account: Account,
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    /// Parses a request; unknown fields are refused, in the account and in the op.
    pub fn parse(bytes: &[u8]) -> Result<Request, String> {
        let mut map: serde_json::Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| format!("the request is not a JSON object: {e}"))?;
        let account = map
            .remove("account")
            .ok_or("the request has no `account` field")?;
        let account: Account =
            serde_json::from_value(account).map_err(|e| format!("field `account`: {e}"))?;
        let op: Op = serde_json::from_value(Value::Object(map))
            .map_err(|e| format!("the operation: {e}"))?;
        Ok(Request { account, op })
    }
}

/// What to do, tagged by `op`. Every `root` is an absolute directory path (a lab's data or
/// project root), every `path` is relative to it and resolved beneath it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Answers [`Checked`]: the identity after the privilege drop.
    Check {},
    /// Answers a `cryowarden_paths::Listing`.
    List {
        root: String,
        path: String,
        offset: usize,
        limit: usize,
    },
    /// Answers a `cryowarden_paths::Entry`.
    Stat { root: String, path: String },
    /// Answers [`Head`]: the first `max_bytes` (at most [`MAX_HEAD_BYTES`]) of a regular file.
    ReadHead {
        root: String,
        path: String,
        max_bytes: usize,
    },
    /// Answers [`CreatedDir`]: a new directory `name` (one component) directly in `root`,
    /// owned by the account, mode 2770.
    CreateProjectDir { root: String, name: String },
    /// Answers [`TreeCounts`]: removes the directory tree at `path`, following no symlink.
    DeleteTree { root: String, path: String },
    /// Answers [`TreeCounts`]: removes every write bit in the tree at `path` (the root itself
    /// when `path` is empty), following no symlink.
    Archive { root: String, path: String },
    /// Answers [`Globbed`]: the entries (directories excepted) beneath `root` matching `pattern`,
    /// a relative path whose last component may hold `*`, `?` and `[...]` (`ops_import::glob`).
    Glob {
        root: String,
        pattern: String,
        limit: usize,
    },
    /// Answers a `Vec<FileHead>`, one per path and in order: each regular file's size and first
    /// `max_bytes`, or why it could not be read (an entry, not a failure of the op). At most
    /// [`MAX_BATCH_FILES`] paths and [`MAX_HEADS_TOTAL_BYTES`] in all. With `decompress`, the
    /// first `max_bytes` of each file's decompressed content (its `size` stays the file's own).
    ReadHeads {
        root: String,
        paths: Vec<String>,
        max_bytes: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decompress: Option<Decompress>,
    },
    /// Answers a `Vec<ChainWalk>`, one per chain and in order: follows each file's chain of
    /// linked records (a TIFF file's IFDs) as its [`ChainSpec`] describes, counting them.
    WalkChains {
        root: String,
        chains: Vec<Chain>,
        max_records: u64,
    },
    /// Answers [`CommandOutput`]: runs `argv` (no shell unless `argv[0]` is one) in `cwd` with a
    /// clean environment plus `env`, `stdin` as its input, until it exits or `timeout_ms` passes
    /// (at most [`MAX_COMMAND_TIMEOUT_MS`]); its process group is killed then (`ops_exec`).
    RunCommand {
        argv: Vec<String>,
        cwd: String,
        #[serde(default)]
        env: Vec<(String, String)>,
        #[serde(default)]
        stdin: Option<String>,
        timeout_ms: u64,
    },
    /// Answers [`JobStarted`] at once, as one line, then the runner stays the job's waiter: it
    /// starts `argv` in `job_dir`, in its own process group, output appended to `log_path`
    /// (created 0660), with a clean environment plus `env`; when the job ends it writes
    /// [`JobStatus`] to `status_path` (a temporary file renamed) and exits. Both paths are
    /// beneath `job_dir` (relative to it, or absolute inside it).
    StartJob {
        job_dir: String,
        log_path: String,
        argv: Vec<String>,
        #[serde(default)]
        env: Vec<(String, String)>,
        status_path: String,
    },
    /// Answers [`JobKilled`]: SIGTERM to the process group `pgid`, SIGKILL after `grace_ms`
    /// (default [`DEFAULT_KILL_GRACE_MS`]) if it is still there. The kernel refuses another
    /// account's processes.
    KillJob {
        pgid: i32,
        #[serde(default)]
        grace_ms: Option<u64>,
    },
}

impl Op {
    /// The op's name, as in the request.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Check {} => "check",
            Op::List { .. } => "list",
            Op::Stat { .. } => "stat",
            Op::ReadHead { .. } => "read_head",
            Op::CreateProjectDir { .. } => "create_project_dir",
            Op::DeleteTree { .. } => "delete_tree",
            Op::Archive { .. } => "archive",
            Op::Glob { .. } => "glob",
            Op::ReadHeads { .. } => "read_heads",
            Op::WalkChains { .. } => "walk_chains",
            Op::RunCommand { .. } => "run_command",
            Op::StartJob { .. } => "start_job",
            Op::KillJob { .. } => "kill_job",
        }
    }

    /// True for the ops that walk a whole tree or read thousands of files (and may take minutes).
    pub fn is_long(&self) -> bool {
        matches!(
            self,
            Op::DeleteTree { .. }
                | Op::Archive { .. }
                | Op::Glob { .. }
                | Op::ReadHeads { .. }
                | Op::WalkChains { .. }
        )
    }
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    Ok(Value),
    Error(Refusal),
}

/// Why a request was not carried out: a stable kebab-case `code` and a sentence for people
/// that says what to do next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl Refusal {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Refusal {
        Refusal {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The answer of [`Op::Check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: exactly `[gid]`.
    pub groups: Vec<u32>,
}

/// The answer of [`Op::ReadHead`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The file's whole size in bytes.
    pub size: u64,
    /// The first bytes read (at most `max_bytes`), lowercase hexadecimal.
    pub head_hex: String,
}

impl Head {
    /// The bytes of `head_hex`; `None` if it is not valid hexadecimal.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        let hex = self.head_hex.as_bytes();
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        hex.chunks(2)
            .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
            .collect()
    }
}

/// The answer of [`Op::CreateProjectDir`], read back from the new directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedDir {
    /// `root/name`.
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o2770`).
    pub mode: u32,
}

/// The answer of [`Op::DeleteTree`] and [`Op::Archive`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeCounts {
    /// Entries that are not directories (regular files, symlinks, special files).
    pub files: u64,
    /// Directories, the tree's top included.
    pub dirs: u64,
    /// Bytes of the regular files.
    pub bytes: u64,
}

// --- Import (`ops_import`): glob, read_heads, walk_chains ---

/// Largest `limit` of [`Op::Glob`].
pub const MAX_GLOB_LIMIT: usize = 100_000;
/// Most paths of one [`Op::ReadHeads`], and most chains of one [`Op::WalkChains`].
pub const MAX_BATCH_FILES: usize = 5_000;
/// Largest `paths.len() * max_bytes` of one [`Op::ReadHeads`] (its answer carries twice as many
/// hexadecimal digits, within what the server reads of an answer).
pub const MAX_HEADS_TOTAL_BYTES: usize = 5 << 20;
/// Largest `max_records` of [`Op::WalkChains`].
pub const MAX_CHAIN_RECORDS: u64 = 1_000_000;
/// Largest record of a chain, in bytes.
pub const MAX_CHAIN_RECORD_BYTES: u64 = 1 << 20;
/// Most records returned ([`ChainSpec::keep`]) per chain.
pub const MAX_CHAIN_KEEP: u32 = 4;
/// Bytes of returned records one [`Op::WalkChains`] answer carries at most (besides its first
/// chain's, which always come back): from the first chain that would go over, the remaining
/// chains are answered `answer-full` (ask for them in another request).
pub const MAX_CHAIN_KEPT_BYTES: usize = 4 << 20;

/// The answer of [`Op::Glob`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Globbed {
    /// The first `limit` matches, relative to the root, sorted by name (byte order).
    pub paths: Vec<String>,
    /// Every match (more than `paths.len()` when the limit cut the list).
    pub total: usize,
}

/// A compression [`Op::ReadHeads`] can see through: the file is read through a streaming
/// decoder, only as far as the bytes asked for need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decompress {
    /// bzip2 (`.bz2`), as CryoSPARC documents for MRC movies.
    Bzip2,
}

/// One file of the answer of [`Op::ReadHeads`]: `{path, size, head_hex}` or `{path, error}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHead {
    /// The path as requested.
    pub path: String,
    /// The file's whole size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The first bytes read (at most `max_bytes`), lowercase hexadecimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_hex: Option<String>,
    /// Why the file could not be read (a path code, `permission-denied`, `io-error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Refusal>,
}

impl FileHead {
    /// The size and the bytes read, or why the file could not be read.
    pub fn read(&self) -> Result<(u64, Vec<u8>), Refusal> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        match (self.size, self.head_hex.as_deref().and_then(decode_hex)) {
            (Some(size), Some(head)) => Ok((size, head)),
            _ => Err(Refusal::new(
                "bad-answer",
                "the runner answered without a size and head: install the server and the runner from the same release",
            )),
        }
    }
}

/// Where a chain of linked records starts in a file and how its records are laid out: a record
/// is a count (`count_bytes` wide), `count` items of `item_bytes` each, then the offset of the
/// next record (`next_bytes` wide; 0 ends the chain), every integer in the given byte order.
/// A TIFF file's IFD chain is (2, 12, 4), a BigTIFF's (8, 20, 8): the server describes the
/// layout, so the runner knows no file format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Offset of the first record (0: an empty chain).
    pub first: u64,
    pub big_endian: bool,
    /// 1, 2, 4 or 8.
    pub count_bytes: u8,
    /// 1..=256.
    pub item_bytes: u32,
    /// 1, 2, 4 or 8.
    pub next_bytes: u8,
    /// How many records, from the first, come back whole (at most [`MAX_CHAIN_KEEP`]).
    pub keep: u32,
}

/// One file's chain, for [`Op::WalkChains`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub path: String,
    pub spec: ChainSpec,
}

/// A walked chain: how many records it has and the first [`ChainSpec::keep`] of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    pub records: u64,
    /// Each kept record whole: count, items and next offset.
    pub kept: Vec<Vec<u8>>,
}

/// One file of the answer of [`Op::WalkChains`]: `{path, size, records, kept_hex}` or
/// `{path, error}` (`chain-out-of-bounds`, `chain-loop`, `chain-too-long`,
/// `chain-record-too-large`, `answer-full`, or why the file could not be opened).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainWalk {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// The kept records, lowercase hexadecimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_hex: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Refusal>,
}

impl ChainWalk {
    /// The walked chain, or why it could not be walked.
    pub fn walked(&self) -> Result<Walked, Refusal> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let kept = self
            .kept_hex
            .as_ref()
            .map(|k| k.iter().map(|h| decode_hex(h)).collect::<Option<Vec<_>>>());
        match (self.records, kept) {
            (Some(records), Some(Some(kept))) => Ok(Walked { records, kept }),
            _ => Err(Refusal::new(
                "bad-answer",
                "the runner answered without records: install the server and the runner from the same release",
            )),
        }
    }
}

/// Lowercase hexadecimal of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The bytes of hexadecimal text (either case); `None` if it is not hexadecimal.
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let hex = hex.as_bytes();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

// --- Exec (`ops_exec`): run_command, start_job, kill_job ---

/// Largest `timeout_ms` of [`Op::RunCommand`] (10 minutes).
pub const MAX_COMMAND_TIMEOUT_MS: u64 = 600_000;
/// Bytes of a command's stdout, and of its stderr, that [`Op::RunCommand`] keeps.
pub const MAX_COMMAND_OUTPUT_BYTES: usize = 1 << 20;
/// Most words of an `argv`.
pub const MAX_ARGV: usize = 4096;
/// Default `grace_ms` of [`Op::KillJob`].
pub const DEFAULT_KILL_GRACE_MS: u64 = 5_000;
/// Largest `grace_ms` of [`Op::KillJob`] (within the server's time limit of a quick op).
pub const MAX_KILL_GRACE_MS: u64 = 20_000;

impl Op {
    /// The time the server should allow this op, when it is not one of the fixed limits: the
    /// command's own `timeout_ms` plus some slack for [`Op::RunCommand`].
    pub fn time_limit_ms(&self) -> Option<u64> {
        match self {
            Op::RunCommand { timeout_ms, .. } => Some(timeout_ms.saturating_add(10_000)),
            _ => None,
        }
    }
}

/// The answer of [`Op::RunCommand`]. Output is decoded as UTF-8 (invalid bytes replaced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    /// The exit status; `None` when the command was ended by a signal.
    pub exit_code: Option<i32>,
    /// The signal that ended the command, if one did.
    pub signal: Option<i32>,
    /// The first [`MAX_COMMAND_OUTPUT_BYTES`] of its stdout.
    pub stdout: String,
    /// The first [`MAX_COMMAND_OUTPUT_BYTES`] of its stderr.
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// It ran out of time and was killed (SIGKILL to its process group).
    pub timed_out: bool,
    pub elapsed_ms: u64,
}

impl CommandOutput {
    /// True when it exited with status 0 in time.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// The answer of [`Op::StartJob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    pub pid: i32,
    /// The job's process group: its own (`pgid == pid`).
    pub pgid: i32,
    /// Unix time in milliseconds.
    pub started_at: u64,
}

/// The status file [`Op::StartJob`] writes when the job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub pid: i32,
    /// The exit status; `None` when a signal ended the job (or it could not be waited for).
    pub exit_code: Option<i32>,
    /// The signal that ended the job, if one did.
    pub signal: Option<i32>,
    /// Unix time in milliseconds.
    pub finished_at: u64,
}

/// The answer of [`Op::KillJob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobKilled {
    pub pgid: i32,
    /// SIGTERM was delivered (false: the group was already gone).
    pub signalled: bool,
    /// The group outlived the grace period and got SIGKILL.
    pub killed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account() -> Account {
        Account {
            user: "cwlab1".into(),
            uid: 2101,
            gid: 2101,
        }
    }

    #[test]
    fn requests_round_trip() {
        let ops = [
            Op::Check {},
            Op::List {
                root: "/r".into(),
                path: "a".into(),
                offset: 0,
                limit: 10,
            },
            Op::ReadHead {
                root: "/r".into(),
                path: "a".into(),
                max_bytes: 4,
            },
            Op::CreateProjectDir {
                root: "/r".into(),
                name: "p".into(),
            },
        ];
        for op in ops {
            let request = Request {
                account: account(),
                op,
            };
            let text = serde_json::to_vec(&request).unwrap();
            assert_eq!(Request::parse(&text).unwrap(), request);
        }
        let text = serde_json::to_value(Request {
            account: account(),
            op: Op::Check {},
        })
        .unwrap();
        assert_eq!(
            text,
            json!({"account": {"user": "cwlab1", "uid": 2101, "gid": 2101}, "op": "check"})
        );
    }

    #[test]
    fn unknown_fields_and_ops_are_refused() {
        let a = json!({"user": "cwlab1", "uid": 2101, "gid": 2101});
        let bad = [
            json!({"account": a, "op": "check", "extra": 1}),
            json!({"account": a, "op": "stat", "root": "/r", "path": "a", "follow": true}),
            json!({"account": a, "op": "chmod"}),
            json!({"account": {"user": "cwlab1", "uid": 2101, "gid": 2101, "home": "/"}, "op": "check"}),
            json!({"op": "check"}),
            json!([1]),
        ];
        for request in bad {
            assert!(
                Request::parse(request.to_string().as_bytes()).is_err(),
                "{request}"
            );
        }
    }

    #[test]
    fn answers_have_their_shape() {
        let refused = Answer::Error(Refusal::new("exists", "it exists"));
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            json!({"error": {"code": "exists", "message": "it exists"}})
        );
        assert_eq!(
            serde_json::to_value(Answer::Ok(json!(1))).unwrap(),
            json!({"ok": 1})
        );
        assert_eq!(
            Head {
                size: 3,
                head_hex: "00ff7f".into()
            }
            .bytes(),
            Some(vec![0, 255, 127])
        );
        assert_eq!(
            Head {
                size: 3,
                head_hex: "0g".into()
            }
            .bytes(),
            None
        );
    }
}
