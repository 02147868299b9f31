//! Test support (feature `corpus`): the escape corpus and the tree it runs against, shared by
//! this crate's tests and the server's end-to-end tests, and an inotify watch that reports opens.
//!
//! The data lives in `tests/data/escape-corpus.txt` and `tests/data/escape-tree.txt`, embedded
//! here; their headers describe the formats.

use std::ffi::OsStr;
use std::fs;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::fs::{CWD, FileType};

const CORPUS: &str = include_str!("../tests/data/escape-corpus.txt");
const TREE: &str = include_str!("../tests/data/escape-tree.txt");

/// The lines of a data file, less blank lines and comments, with their numbers.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| (n + 1, l))
}

/// Builds the corpus tree in the existing directory `t`: `t/outside` is the other lab's data,
/// `t/root` the root, with planted symlinks (see escape-tree.txt).
pub fn build_tree(t: &Path) {
    for (_, line) in data_lines(TREE) {
        let fields: Vec<Vec<u8>> = line.split('\t').map(decode).collect();
        let path = t.join(OsStr::from_bytes(&fields[1]));
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        match (line.split('\t').next().unwrap_or(""), fields.get(2)) {
            ("file", None) => fs::write(&path, &fields[1]).expect("write"),
            ("fifo", None) => {
                rustix::fs::mknodat(CWD, &path, FileType::Fifo, 0o644.into(), 0).expect("mkfifo");
            }
            ("symlink", Some(to)) => {
                let to = String::from_utf8_lossy(to).replace("$T", &t.to_string_lossy());
                symlink(to, &path).expect("symlink");
            }
            _ => panic!("bad tree line {line:?}"),
        }
    }
}

/// The corpus: (line number, expected outcome, request bytes with escapes decoded).
pub fn corpus() -> Vec<(usize, String, Vec<u8>)> {
    data_lines(CORPUS)
        .map(|(n, l)| {
            let (expected, request) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("line {n}: no tab"));
            (n, expected.to_owned(), decode(request))
        })
        .collect()
}

/// Decodes the corpus escapes: `\\ \t \n \r \0 \xNN \u{XXXX} \repeat{N}{TEXT}`.
pub fn decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let esc = &rest[i + 1..];
        let (bytes, used): (Vec<u8>, usize) = match esc.as_bytes()[0] {
            _ if esc.starts_with("repeat{") => {
                let (count, after) = esc["repeat{".len()..]
                    .split_once("}{")
                    .expect("repeat{N}{TEXT}");
                let text = &after[..after.find('}').expect("closing brace")];
                let used = "repeat{".len() + count.len() + 2 + text.len() + 1;
                (
                    text.repeat(count.parse().expect("count")).into_bytes(),
                    used,
                )
            }
            b'\\' => (b"\\".to_vec(), 1),
            b't' => (b"\t".to_vec(), 1),
            b'n' => (b"\n".to_vec(), 1),
            b'r' => (b"\r".to_vec(), 1),
            b'0' => (vec![0], 1),
            b'x' => (vec![u8::from_str_radix(&esc[1..3], 16).expect("hex")], 3),
            b'u' => {
                let end = esc.find('}').expect("closing brace");
                let c = char::from_u32(u32::from_str_radix(&esc[2..end], 16).expect("hex"))
                    .expect("a char");
                (c.to_string().into_bytes(), end + 1)
            }
            _ => panic!("unknown escape in {s:?}"),
        };
        out.extend(bytes);
        rest = &esc[used..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// An inotify watch reporting opens and reads of the watched paths.
pub struct Watch(OwnedFd);

impl Watch {
    pub fn new(paths: &[PathBuf]) -> Watch {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).expect("inotify");
        for p in paths {
            inotify::add_watch(&fd, p, WatchFlags::OPEN | WatchFlags::ACCESS).expect("watch");
        }
        Watch(fd)
    }

    /// Events so far, as (watch descriptor, name in the watched directory), minus `ignore`d names.
    pub fn events(&self, ignore: &[&str]) -> Vec<(i32, String)> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(&self.0, &mut buf);
        let mut out = Vec::new();
        loop {
            match reader.next() {
                Ok(e) => {
                    let name = e
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if !ignore.contains(&name.as_str()) {
                        out.push((e.wd(), name));
                    }
                }
                Err(rustix::io::Errno::AGAIN) => return out,
                Err(e) => panic!("inotify: {e}"),
            }
        }
    }
}
