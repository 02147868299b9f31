//! The batch operations of imports, performed after the privilege drop like every op: `glob`
//! (the files of one directory matching a pattern), `read_heads` (the first bytes of thousands of
//! files in one request) and `walk_chains` (counting the records of each file's chain of linked
//! records, which is how a TIFF file's frames are found, without the runner knowing TIFF).
//!
//! Every path is resolved beneath its root by `cryowarden_paths` (`Root::open_beneath`), and the
//! kernel checks the lab account's permissions on top. A file that cannot be read is an entry of
//! the answer (with a stable code), not a failure of the op: one damaged or foreign file does not
//! stop the rest of an import.

use std::collections::HashSet;
use std::ffi::CStr;
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use cryowarden_paths::{OpenHow, PathError, RelPath, Root};
use rustix::fs::{AtFlags, FileType, RawDir};
use rustix::io::Errno;
use serde::Serialize;
use serde_json::Value;

use crate::ops::refusal_of;
use crate::protocol::{
    Account, Chain, ChainSpec, ChainWalk, Decompress, FileHead, Globbed, MAX_BATCH_FILES,
    MAX_CHAIN_KEEP, MAX_CHAIN_KEPT_BYTES, MAX_CHAIN_RECORD_BYTES, MAX_CHAIN_RECORDS,
    MAX_GLOB_LIMIT, MAX_HEAD_BYTES, MAX_HEADS_TOTAL_BYTES, Op, Refusal, Walked, encode_hex,
};

/// Bytes read at each record of a chain before its count says how long it is (a TIFF IFD of
/// up to 40 entries fits).
const CHAIN_READ: usize = 512;

/// Performs one of the import ops ([`Op::Glob`], [`Op::ReadHeads`], [`Op::WalkChains`]) as
/// `account` (whose identity the process already has).
pub fn perform(op: &Op, account: &Account) -> Result<Value, Refusal> {
    match op {
        Op::Glob {
            root,
            pattern,
            limit,
        } => answer(glob(root, pattern, *limit, account)?),
        Op::ReadHeads {
            root,
            paths,
            max_bytes,
            decompress,
        } => answer(read_heads(root, paths, *max_bytes, *decompress, account)?),
        Op::WalkChains {
            root,
            chains,
            max_records,
        } => answer(walk_chains(root, chains, *max_records, account)?),
        other => Err(Refusal::new(
            "bad-request",
            format!("{} is not an import op", other.name()),
        )),
    }
}

fn answer<T: Serialize>(value: T) -> Result<Value, Refusal> {
    serde_json::to_value(value)
        .map_err(|e| Refusal::new("io-error", format!("cannot encode the answer: {e}")))
}

fn open_root(root: &str, account: &Account) -> Result<Root, Refusal> {
    Root::open(Path::new(root)).map_err(|e| refusal_of(e, account))
}

// --- glob ---------------------------------------------------------------------------------------

/// One element of a compiled pattern component.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: any one character.
    One,
    /// `*`: any run of characters, the empty one included.
    Star,
    /// `[...]`: one character of the ranges (or, negated with `!` or `^`, none of them).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// One path component with `*`, `?` and `[...]` (`\` makes the next character literal). As in
/// the shell, a name starting with `.` is matched only by a pattern starting with a literal `.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles one component; `glob-pattern-invalid` for an unclosed `[`, an empty or reversed
    /// range, or a trailing `\`.
    pub fn parse(component: &str) -> Result<Pattern, Refusal> {
        let invalid = |why: &str| {
            Refusal::new(
                "glob-pattern-invalid",
                format!("the pattern {component:?} is not valid ({why}): fix it"),
            )
        };
        let mut tokens = Vec::new();
        let mut chars = component.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '\\' => Token::Literal(
                    chars
                        .next()
                        .ok_or_else(|| invalid("it ends with a lone '\\'"))?,
                ),
                '?' => Token::One,
                '*' if tokens.last() == Some(&Token::Star) => continue,
                '*' => Token::Star,
                '[' => {
                    let negated = matches!(chars.peek(), Some('!' | '^'));
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = match chars.next() {
                            None => return Err(invalid("a '[' is not closed by ']'")),
                            Some(']') if !first => break,
                            Some('\\') => chars
                                .next()
                                .ok_or_else(|| invalid("it ends with a lone '\\'"))?,
                            Some(c) => c,
                        };
                        first = false;
                        let mut lookahead = chars.clone();
                        let hi = match (lookahead.next(), lookahead.next()) {
                            (Some('-'), Some(hi)) if hi != ']' => {
                                chars.next();
                                chars.next();
                                if hi == '\\' {
                                    chars
                                        .next()
                                        .ok_or_else(|| invalid("it ends with a lone '\\'"))?
                                } else {
                                    hi
                                }
                            }
                            _ => c,
                        };
                        if hi < c {
                            return Err(invalid("a range runs backwards"));
                        }
                        ranges.push((c, hi));
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(Pattern { tokens })
    }

    /// The component as a plain name when it has no wildcard (escapes removed).
    pub fn literal(&self) -> Option<String> {
        self.tokens
            .iter()
            .map(|t| {
                if let Token::Literal(c) = t {
                    Some(*c)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        if name.starts_with('.') && self.tokens.first() != Some(&Token::Literal('.')) {
            return false;
        }
        let name: Vec<char> = name.chars().collect();
        let (mut t, mut n) = (0, 0);
        // Where the last `*` was, and how much of the name it has taken so far.
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, n));
                    t += 1;
                    continue;
                }
                Some(token) if token.matches_one(name[n]) => {
                    t += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((st, sn)) => {
                    t = st + 1;
                    n = sn + 1;
                    star = Some((st, sn + 1));
                }
                None => return false,
            }
        }
        self.tokens[t..].iter().all(|t| *t == Token::Star)
    }
}

impl Token {
    fn matches_one(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::One => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// A directory component of a pattern, literal: escapes removed, a wildcard refused.
fn literal_component(component: &str, pattern: &str) -> Result<String, Refusal> {
    let mut out = String::with_capacity(component.len());
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or_else(|| {
                Refusal::new(
                    "glob-pattern-invalid",
                    format!("the pattern {pattern:?} has a lone '\\': fix it"),
                )
            })?),
            '*' | '?' | '[' => {
                return Err(Refusal::new(
                    "glob-wildcard-in-directory",
                    format!(
                        "the pattern {pattern:?} has a wildcard before its last component: only file names may hold \
                         '*', '?' and '[...]' (escape a literal one with '\\')"
                    ),
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The entries of one directory beneath `root` matching `pattern` (see [`Op::Glob`]): the
/// components before the last are literal and resolved beneath the root by the kernel, the last
/// is a [`Pattern`]. Directories, FIFOs, sockets and devices never match; symbolic links do
/// (reading them resolves them beneath the root again, so one that leaves it is refused then).
/// Names that are not valid UTF-8 cannot be asked for, and never match. The first `limit`
/// matches, sorted by name, and the number of all matches.
pub fn glob(
    root: &str,
    pattern: &str,
    limit: usize,
    account: &Account,
) -> Result<Globbed, Refusal> {
    if !(1..=MAX_GLOB_LIMIT).contains(&limit) {
        return Err(Refusal::new(
            "limit-out-of-range",
            format!("limit {limit} is out of range: ask for 1 to {MAX_GLOB_LIMIT} matches"),
        ));
    }
    let path_error = |e: PathError| refusal_of(e, account);
    let rel = RelPath::parse(pattern).map_err(path_error)?;
    let Some((parent, last)) = rel.split_last() else {
        return Err(Refusal::new(
            "glob-pattern-empty",
            "the pattern names no file: give a path such as raw/*.tif, relative to the root",
        ));
    };
    let dir = parent
        .components()
        .map(|c| literal_component(c, pattern))
        .collect::<Result<Vec<_>, _>>()?
        .join("/");
    let dir = RelPath::parse(&dir).map_err(path_error)?;
    let matcher = Pattern::parse(last)?;
    let root = open_root(root, account)?;
    let dirfd = root
        .open_beneath(&dir, OpenHow::Directory)
        .map_err(path_error)?;
    let mut names = match matcher.literal() {
        Some(name) => literal_match(&dirfd, &name)
            .map_err(|e| refusal_of(PathError::from_errno(e), account))?,
        None => matching_names(&dirfd, &matcher)
            .map_err(|e| refusal_of(PathError::from_errno(e), account))?,
    };
    names.sort_unstable();
    let total = names.len();
    names.truncate(limit);
    let prefix = if dir.is_root() {
        String::new()
    } else {
        format!("{}/", dir.as_str())
    };
    Ok(Globbed {
        paths: names.into_iter().map(|n| format!("{prefix}{n}")).collect(),
        total,
    })
}

/// Whether an entry of this type is a match, `None` when the directory entry does not say.
fn matchable(t: FileType) -> Option<bool> {
    match t {
        FileType::RegularFile | FileType::Symlink => Some(true),
        FileType::Unknown => None,
        _ => Some(false),
    }
}

/// The type of `name` in `dir`, not following it; `None` if it is gone.
fn type_at(dir: &OwnedFd, name: &CStr) -> Result<Option<FileType>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A pattern without wildcards: the one entry, if it exists and is not a directory.
fn literal_match(dir: &OwnedFd, name: &str) -> Result<Vec<String>, Errno> {
    if name == ".." || name.contains('\0') {
        return Ok(Vec::new());
    }
    let c = std::ffi::CString::new(name).map_err(|_| Errno::INVAL)?;
    Ok(match type_at(dir, &c)? {
        Some(t) if matchable(t) != Some(false) => vec![name.to_owned()],
        _ => Vec::new(),
    })
}

/// Every name in `dir` matching `pattern` (one `getdents64` pass; an entry is `stat`ed only when
/// the directory entry does not give its type).
fn matching_names(dir: &OwnedFd, pattern: &Pattern) -> Result<Vec<String>, Errno> {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut raw = RawDir::new(dir.as_fd(), &mut buf);
    let mut out = Vec::new();
    while let Some(entry) = raw.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let Ok(text) = name.to_str() else { continue };
        if !pattern.matches(text) {
            continue;
        }
        let keep = match matchable(entry.file_type()) {
            Some(keep) => keep,
            None => type_at(dir, name)?.is_some_and(|t| matchable(t) != Some(false)),
        };
        if keep {
            out.push(text.to_owned());
        }
    }
    Ok(out)
}

// --- read_heads ---------------------------------------------------------------------------------

/// The size and first `max_bytes` of each file (see [`Op::ReadHeads`]), in order. The request is
/// refused as a whole only for its own shape or an unusable root.
pub fn read_heads(
    root: &str,
    paths: &[String],
    max_bytes: usize,
    decompress: Option<Decompress>,
    account: &Account,
) -> Result<Vec<FileHead>, Refusal> {
    check_batch(paths.len())?;
    if max_bytes > MAX_HEAD_BYTES || paths.len().saturating_mul(max_bytes) > MAX_HEADS_TOTAL_BYTES {
        return Err(Refusal::new(
            "max-bytes-out-of-range",
            format!(
                "{} files of {max_bytes} bytes are over the limits ({MAX_HEAD_BYTES} bytes a file, \
                 {MAX_HEADS_TOTAL_BYTES} in all): ask for fewer bytes or fewer files",
                paths.len()
            ),
        ));
    }
    let root = open_root(root, account)?;
    let mut buf = vec![0u8; max_bytes];
    let heads = paths
        .iter()
        .map(|path| {
            let read = match decompress {
                None => read_one(&root, path, &mut buf).map_err(|e| refusal_of(e, account)),
                Some(Decompress::Bzip2) => read_one_bzip2(&root, path, &mut buf, account),
            };
            match read {
                Ok((size, n)) => FileHead {
                    path: path.clone(),
                    size: Some(size),
                    head_hex: Some(encode_hex(&buf[..n])),
                    error: None,
                },
                Err(refusal) => FileHead {
                    path: path.clone(),
                    size: None,
                    head_hex: None,
                    error: Some(refusal),
                },
            }
        })
        .collect();
    Ok(heads)
}

fn check_batch(files: usize) -> Result<(), Refusal> {
    if files > MAX_BATCH_FILES {
        return Err(Refusal::new(
            "too-many-files",
            format!(
                "{files} files in one request is over the limit of {MAX_BATCH_FILES}: split the request"
            ),
        ));
    }
    Ok(())
}

/// Opens a regular file beneath the root; its descriptor and size.
fn open_file(root: &Root, path: &str) -> Result<(OwnedFd, u64), PathError> {
    let rel = RelPath::parse(path)?;
    let fd = root.open_beneath(&rel, OpenHow::File)?;
    let size = rustix::fs::fstat(&fd)
        .map_err(PathError::from_errno)?
        .st_size;
    Ok((fd, u64::try_from(size).unwrap_or(0)))
}

fn read_one(root: &Root, path: &str, buf: &mut [u8]) -> Result<(u64, usize), PathError> {
    let (fd, size) = open_file(root, path)?;
    let n = pread_full(&fd, buf, 0).map_err(PathError::from_errno)?;
    Ok((size, n))
}

/// The file's size and the first `buf.len()` bytes of its bzip2-decompressed content (fewer when
/// the content is shorter), read through a streaming decoder: only the compressed blocks those
/// bytes need are read (a block is at most 900 kB of content). Damaged compressed data is
/// `bzip2-damaged`.
fn read_one_bzip2(
    root: &Root,
    path: &str,
    buf: &mut [u8],
    account: &Account,
) -> Result<(u64, usize), Refusal> {
    let (fd, size) = open_file(root, path).map_err(|e| refusal_of(e, account))?;
    let mut decoder = bzip2::read::BzDecoder::new(std::io::BufReader::new(std::fs::File::from(fd)));
    let mut done = 0;
    while done < buf.len() {
        match decoder.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error().is_some() => {
                return Err(refusal_of(
                    PathError::from_errno(Errno::from_io_error(&e).unwrap_or(Errno::IO)),
                    account,
                ));
            }
            Err(e) => {
                return Err(Refusal::new(
                    "bzip2-damaged",
                    format!("the file is not bzip2 data, or its compressed data is damaged ({e})"),
                ));
            }
        }
    }
    Ok((size, done))
}

/// Reads at `offset` until `buf` is full or the file ends; the bytes read.
fn pread_full(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

// --- walk_chains --------------------------------------------------------------------------------

/// Why a chain could not be walked. Records are numbered from 0.
#[derive(Debug)]
pub enum ChainError {
    /// A record starts, or ends, past the end of the file.
    OutOfBounds { record: u64, offset: u64, size: u64 },
    /// A record's offset was met before.
    Loop { record: u64, offset: u64 },
    /// More than `max` records.
    TooLong { max: u64 },
    /// A record's count makes it longer than [`MAX_CHAIN_RECORD_BYTES`].
    RecordTooLarge { record: u64, offset: u64 },
    /// The read failed.
    Read(Errno),
}

impl ChainError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ChainError::OutOfBounds { .. } => "chain-out-of-bounds",
            ChainError::Loop { .. } => "chain-loop",
            ChainError::TooLong { .. } => "chain-too-long",
            ChainError::RecordTooLarge { .. } => "chain-record-too-large",
            ChainError::Read(_) => "io-error",
        }
    }

    /// The refusal that carries this error in an answer.
    pub fn refusal(&self) -> Refusal {
        let message = match self {
            ChainError::OutOfBounds {
                record,
                offset,
                size,
            } => format!(
                "record {record} of the chain, at byte {offset}, runs past the end of the file ({size} bytes): \
                 the file is truncated or damaged"
            ),
            ChainError::Loop { record, offset } => format!(
                "record {record} of the chain points back to byte {offset}, an earlier record: the file is damaged"
            ),
            ChainError::TooLong { max } => {
                format!("the chain has more than {max} records: ask for a higher maximum")
            }
            ChainError::RecordTooLarge { record, offset } => format!(
                "record {record} of the chain, at byte {offset}, is over {MAX_CHAIN_RECORD_BYTES} bytes long: \
                 the file is damaged"
            ),
            ChainError::Read(e) => format!("reading the file failed: {e}: check the file system"),
        };
        Refusal::new(self.code(), message)
    }
}

/// Checks a [`ChainSpec`]'s widths.
pub fn check_spec(spec: &ChainSpec) -> Result<(), Refusal> {
    let width = |w: u8| matches!(w, 1 | 2 | 4 | 8);
    if width(spec.count_bytes)
        && width(spec.next_bytes)
        && (1..=256).contains(&spec.item_bytes)
        && spec.keep <= MAX_CHAIN_KEEP
    {
        Ok(())
    } else {
        Err(Refusal::new(
            "chain-spec-invalid",
            format!(
                "the chain layout {spec:?} is not valid (widths 1, 2, 4 or 8; items of 1 to 256 bytes; at most \
                 {MAX_CHAIN_KEEP} records kept): install the server and the runner from the same release"
            ),
        ))
    }
}

fn uint(bytes: &[u8], big_endian: bool) -> u64 {
    let fold = |acc: u64, b: &u8| acc << 8 | u64::from(*b);
    if big_endian {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    }
}

/// Follows the chain `spec` describes through a file of `size` bytes read by `read_at(offset,
/// buf)` (which fills `buf` from `offset` and returns how many bytes it read, fewer only at the
/// end of the file): the number of records and the first `spec.keep` of them. One read per record
/// of up to 512 bytes (two for a longer one). `spec` must have passed [`check_spec`].
pub fn walk_chain(
    spec: &ChainSpec,
    size: u64,
    max_records: u64,
    mut read_at: impl FnMut(u64, &mut [u8]) -> Result<usize, Errno>,
) -> Result<Walked, ChainError> {
    let (cb, nb) = (usize::from(spec.count_bytes), u64::from(spec.next_bytes));
    let mut walked = Walked::default();
    let mut seen = HashSet::new();
    let mut buf = [0u8; CHAIN_READ];
    let mut offset = spec.first;
    while offset != 0 {
        let record = walked.records;
        if record >= max_records {
            return Err(ChainError::TooLong { max: max_records });
        }
        if !seen.insert(offset) {
            return Err(ChainError::Loop { record, offset });
        }
        let out_of_bounds = ChainError::OutOfBounds {
            record,
            offset,
            size,
        };
        let want = usize::try_from(size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(CHAIN_READ);
        if want < cb {
            return Err(out_of_bounds);
        }
        let got = read_at(offset, &mut buf[..want]).map_err(ChainError::Read)?;
        if got < cb {
            return Err(out_of_bounds);
        }
        let count = uint(&buf[..cb], spec.big_endian);
        let len = count
            .checked_mul(u64::from(spec.item_bytes))
            .and_then(|items| items.checked_add(cb as u64 + nb))
            .filter(|len| *len <= MAX_CHAIN_RECORD_BYTES)
            .ok_or(ChainError::RecordTooLarge { record, offset })?;
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(out_of_bounds);
        }
        let len = len as usize; // at most MAX_CHAIN_RECORD_BYTES
        let keep = record < u64::from(spec.keep);
        let next = if len <= got {
            if keep {
                walked.kept.push(buf[..len].to_vec());
            }
            uint(&buf[len - nb as usize..len], spec.big_endian)
        } else if keep {
            let mut whole = vec![0u8; len];
            if read_at(offset, &mut whole).map_err(ChainError::Read)? < len {
                return Err(out_of_bounds);
            }
            let next = uint(&whole[len - nb as usize..], spec.big_endian);
            walked.kept.push(whole);
            next
        } else {
            let mut tail = [0u8; 8];
            let tail = &mut tail[..nb as usize];
            if read_at(offset + len as u64 - nb, tail).map_err(ChainError::Read)? < tail.len() {
                return Err(out_of_bounds);
            }
            uint(tail, spec.big_endian)
        };
        walked.records += 1;
        offset = next;
    }
    Ok(walked)
}

/// Each file's chain, in order (see [`Op::WalkChains`]).
pub fn walk_chains(
    root: &str,
    chains: &[Chain],
    max_records: u64,
    account: &Account,
) -> Result<Vec<ChainWalk>, Refusal> {
    check_batch(chains.len())?;
    if !(1..=MAX_CHAIN_RECORDS).contains(&max_records) {
        return Err(Refusal::new(
            "max-records-out-of-range",
            format!("max_records {max_records} is out of range: ask for 1 to {MAX_CHAIN_RECORDS}"),
        ));
    }
    for chain in chains {
        check_spec(&chain.spec)?;
    }
    let root = open_root(root, account)?;
    let mut kept_bytes = 0;
    let mut full = false;
    let mut out = Vec::with_capacity(chains.len());
    for (i, chain) in chains.iter().enumerate() {
        let error = |error: Refusal| ChainWalk {
            path: chain.path.clone(),
            size: None,
            records: None,
            kept_hex: None,
            error: Some(error),
        };
        let answer_full = || {
            error(Refusal::new(
                "answer-full",
                "this answer holds as many bytes as it may: ask for this file again in another request",
            ))
        };
        if full {
            out.push(answer_full());
            continue;
        }
        let (fd, size) = match open_file(&root, &chain.path) {
            Ok(opened) => opened,
            Err(e) => {
                out.push(error(refusal_of(e, account)));
                continue;
            }
        };
        match walk_chain(&chain.spec, size, max_records, |offset, buf| {
            pread_full(&fd, buf, offset)
        }) {
            Ok(walked) => {
                let bytes = walked.kept.iter().map(Vec::len).sum::<usize>();
                // The first chain always comes back; the others while the answer has room.
                if i > 0 && kept_bytes + bytes > MAX_CHAIN_KEPT_BYTES {
                    full = true;
                    out.push(answer_full());
                    continue;
                }
                kept_bytes += bytes;
                out.push(ChainWalk {
                    path: chain.path.clone(),
                    size: Some(size),
                    records: Some(walked.records),
                    kept_hex: Some(walked.kept.iter().map(|k| encode_hex(k)).collect()),
                    error: None,
                });
            }
            Err(ChainError::Read(e)) => {
                out.push(error(refusal_of(PathError::from_errno(e), account)));
            }
            Err(e) => out.push(error(e.refusal())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_as_the_shell_does() {
        assert!(p("*.mrc").matches("a.mrc"));
        assert!(!p("*.mrc").matches(".mrc"));
        assert!(!p("*.mrc").matches("a.mrcs"));
        assert!(p("movie_??.tif").matches("movie_01.tif"));
        assert!(!p("movie_??.tif").matches("movie_1.tif"));
        assert!(p("m[0-9]*").matches("m7x"));
        assert!(!p("m[!0-9]*").matches("m7x"));
        assert!(p("m[^0-9]*").matches("mxx"));
        assert!(p("[]a]").matches("]"));
        assert!(p("a\\*b").matches("a*b"));
        assert!(!p("a\\*b").matches("axb"));
        assert!(p("*a*b*c*").matches("xxaxxbxxcxx"));
        assert!(!p("*a*b*c*").matches("xxaxxcxxbxx"));
        assert!(p("é?*").matches("éü"));
        // Hidden names need a literal leading dot.
        assert!(!p("*").matches(".hidden"));
        assert!(!p("?hidden").matches(".hidden"));
        assert!(!p("[.]hidden").matches(".hidden"));
        assert!(p(".*").matches(".hidden"));
        assert_eq!(p("a\\[1\\]").literal().as_deref(), Some("a[1]"));
        assert_eq!(p("a*").literal(), None);
        for bad in ["[abc", "a\\", "[z-a]", "[\\"] {
            assert_eq!(
                Pattern::parse(bad).unwrap_err().code,
                "glob-pattern-invalid",
                "{bad}"
            );
        }
    }

    fn spec(first: u64) -> ChainSpec {
        ChainSpec {
            first,
            big_endian: false,
            count_bytes: 2,
            item_bytes: 12,
            next_bytes: 4,
            keep: 1,
        }
    }

    fn walk(file: &[u8], spec: &ChainSpec) -> Result<Walked, ChainError> {
        walk_chain(spec, file.len() as u64, 1000, |offset, buf| {
            let start = (offset as usize).min(file.len());
            let n = buf.len().min(file.len() - start);
            buf[..n].copy_from_slice(&file[start..start + n]);
            Ok(n)
        })
    }

    /// Records of one item each at 8, 30, 52, the last pointing to `last_next`.
    fn three(last_next: u32) -> Vec<u8> {
        let mut file = vec![0u8; 8];
        for (i, next) in [30u32, 52, last_next].into_iter().enumerate() {
            assert_eq!(file.len(), 8 + 22 * i);
            file.extend_from_slice(&1u16.to_le_bytes());
            file.extend_from_slice(&[7; 12]);
            file.extend_from_slice(&next.to_le_bytes());
            file.extend_from_slice(&[0; 4]);
        }
        file
    }

    #[test]
    fn chains_are_counted_and_kept() {
        let walked = walk(&three(0), &spec(8)).unwrap();
        assert_eq!(walked.records, 3);
        assert_eq!(walked.kept.len(), 1);
        assert_eq!(walked.kept[0].len(), 18);
        assert_eq!(&walked.kept[0][14..], &30u32.to_le_bytes());
        assert_eq!(walk(&three(0), &spec(0)).unwrap(), Walked::default());
        assert!(matches!(
            walk(&three(30), &spec(8)),
            Err(ChainError::Loop {
                record: 3,
                offset: 30
            })
        ));
        assert!(matches!(
            walk(&three(1000), &spec(8)),
            Err(ChainError::OutOfBounds {
                record: 3,
                offset: 1000,
                ..
            })
        ));
        let mut cut = three(0);
        cut.truncate(60);
        assert!(matches!(
            walk(&cut, &spec(8)),
            Err(ChainError::OutOfBounds { record: 2, .. })
        ));
        let long = ChainSpec { keep: 0, ..spec(8) };
        assert!(matches!(
            walk_chain(&long, 100, 2, |_, _| Ok(0)),
            Err(ChainError::OutOfBounds { .. })
        ));
        let big = three(0);
        let r = walk_chain(&spec(8), big.len() as u64, 2, |offset, buf| {
            let n = buf.len().min(big.len() - offset as usize);
            buf[..n].copy_from_slice(&big[offset as usize..offset as usize + n]);
            Ok(n)
        });
        assert!(matches!(r, Err(ChainError::TooLong { max: 2 })));
    }

    #[test]
    fn long_records_are_read_whole_or_by_their_tail() {
        // One record of 100 items (1206 bytes), then one of 1.
        let mut file = vec![0u8; 8];
        file.extend_from_slice(&100u16.to_le_bytes());
        file.extend((0..1200).map(|i| (i % 251) as u8));
        let second = (file.len() + 4) as u32;
        file.extend_from_slice(&second.to_le_bytes());
        file.extend_from_slice(&1u16.to_le_bytes());
        file.extend_from_slice(&[1; 12]);
        file.extend_from_slice(&0u32.to_le_bytes());
        let kept = walk(&file, &spec(8)).unwrap();
        assert_eq!(kept.records, 2);
        assert_eq!(kept.kept[0], file[8..8 + 1206]);
        let counted = walk(&file, &ChainSpec { keep: 0, ..spec(8) }).unwrap();
        assert_eq!((counted.records, counted.kept.len()), (2, 0));
        // Big-endian, 8-byte count and next (BigTIFF's layout).
        let mut be = vec![0u8; 16];
        be.extend_from_slice(&1u64.to_be_bytes());
        be.extend_from_slice(&[0; 20]);
        be.extend_from_slice(&0u64.to_be_bytes());
        let big = ChainSpec {
            first: 16,
            big_endian: true,
            count_bytes: 8,
            item_bytes: 20,
            next_bytes: 8,
            keep: 1,
        };
        assert_eq!(walk(&be, &big).unwrap().kept[0].len(), 36);
        let huge = {
            let mut f = vec![0u8; 8];
            f.extend_from_slice(&u64::MAX.to_be_bytes());
            f
        };
        assert!(matches!(
            walk(&huge, &ChainSpec { first: 8, ..big }),
            Err(ChainError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn specs_are_checked() {
        assert!(check_spec(&spec(8)).is_ok());
        assert!(
            check_spec(&ChainSpec {
                count_bytes: 3,
                ..spec(8)
            })
            .is_err()
        );
        assert!(
            check_spec(&ChainSpec {
                item_bytes: 0,
                ..spec(8)
            })
            .is_err()
        );
        assert!(
            check_spec(&ChainSpec {
                keep: MAX_CHAIN_KEEP + 1,
                ..spec(8)
            })
            .is_err()
        );
    }
}
