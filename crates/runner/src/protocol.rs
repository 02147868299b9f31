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
        let mut map: serde_json::Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("the request is not a JSON object: {e}"))?;
        let account = map.remove("account").ok_or("the request has no `account` field")?;
        let account: Account = serde_json::from_value(account).map_err(|e| format!("field `account`: {e}"))?;
        let op: Op = serde_json::from_value(Value::Object(map)).map_err(|e| format!("the operation: {e}"))?;
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
    List { root: String, path: String, offset: usize, limit: usize },
    /// Answers a `cryowarden_paths::Entry`.
    Stat { root: String, path: String },
    /// Answers [`Head`]: the first `max_bytes` (at most [`MAX_HEAD_BYTES`]) of a regular file.
    ReadHead { root: String, path: String, max_bytes: usize },
    /// Answers [`CreatedDir`]: a new directory `name` (one component) directly in `root`,
    /// owned by the account, mode 2770.
    CreateProjectDir { root: String, name: String },
    /// Answers [`TreeCounts`]: removes the directory tree at `path`, following no symlink.
    DeleteTree { root: String, path: String },
    /// Answers [`TreeCounts`]: removes every write bit in the tree at `path` (the root itself
    /// when `path` is empty), following no symlink.
    Archive { root: String, path: String },
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
        }
    }

    /// True for the ops that walk a whole tree (and may take minutes).
    pub fn is_long(&self) -> bool {
        matches!(self, Op::DeleteTree { .. } | Op::Archive { .. })
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
        Refusal { code: code.into(), message: message.into() }
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
        hex.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account() -> Account {
        Account { user: "cwlab1".into(), uid: 2101, gid: 2101 }
    }

    #[test]
    fn requests_round_trip() {
        let ops = [
            Op::Check {},
            Op::List { root: "/r".into(), path: "a".into(), offset: 0, limit: 10 },
            Op::ReadHead { root: "/r".into(), path: "a".into(), max_bytes: 4 },
            Op::CreateProjectDir { root: "/r".into(), name: "p".into() },
        ];
        for op in ops {
            let request = Request { account: account(), op };
            let text = serde_json::to_vec(&request).unwrap();
            assert_eq!(Request::parse(&text).unwrap(), request);
        }
        let text = serde_json::to_value(Request { account: account(), op: Op::Check {} }).unwrap();
        assert_eq!(text, json!({"account": {"user": "cwlab1", "uid": 2101, "gid": 2101}, "op": "check"}));
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
            assert!(Request::parse(request.to_string().as_bytes()).is_err(), "{request}");
        }
    }

    #[test]
    fn answers_have_their_shape() {
        let refused = Answer::Error(Refusal::new("exists", "it exists"));
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            json!({"error": {"code": "exists", "message": "it exists"}})
        );
        assert_eq!(serde_json::to_value(Answer::Ok(json!(1))).unwrap(), json!({"ok": 1}));
        assert_eq!(Head { size: 3, head_hex: "00ff7f".into() }.bytes(), Some(vec![0, 255, 127]));
        assert_eq!(Head { size: 3, head_hex: "0g".into() }.bytes(), None);
    }
}
