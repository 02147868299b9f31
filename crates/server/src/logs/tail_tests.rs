//! Tests of `tail`: against a plain reference on files the tests build.

use std::fs;
use std::io::Write;

use proptest::prelude::*;

use super::*;
use crate::logs::rotate::RotatingFile;

/// What `tail` must return: every line of `content`, the last `n` of them, decoded and capped.
fn reference(content: &[u8], n: usize) -> Vec<String> {
    if content.is_empty() {
        return Vec::new();
    }
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let all: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    all[all.len().saturating_sub(n)..]
        .iter()
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = String::from_utf8_lossy(line).into_owned();
            if text.len() <= MAX_LINE_BYTES {
                text
            } else {
                let mut at = MAX_LINE_BYTES - ELLIPSIS.len();
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                format!("{}{ELLIPSIS}", &text[..at])
            }
        })
        .collect()
}

fn tail_of(content: &[u8], n: usize, block: usize) -> Vec<String> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(content).unwrap();
    tail_file(&file, content.len() as u64, n, block).unwrap()
}

fn write_log(dir: &Path, generation: usize, content: &[u8]) {
    fs::write(file_path(dir, Service::Api, generation), content).unwrap();
}

#[test]
fn line_counts() {
    assert_eq!(LINE_COUNTS, [50, 100, 200, 500]);
    for n in LINE_COUNTS {
        assert_eq!(parse_line_count(&n.to_string()), Some(n));
    }
    for bad in [
        "0",
        "49",
        "51",
        "1000",
        "",
        "-50",
        "50.0",
        "fifty",
        "18446744073709551666",
    ] {
        assert_eq!(parse_line_count(bad), None, "{bad}");
    }
}

#[test]
fn trailing_newline_crlf_and_no_final_newline() {
    assert_eq!(tail_of(b"a\nb\nc\n", 2, BLOCK), ["b", "c"]);
    assert_eq!(tail_of(b"a\nb\nc", 2, BLOCK), ["b", "c"]);
    assert_eq!(tail_of(b"a\r\nb\r\nc\r\n", 5, BLOCK), ["a", "b", "c"]);
    assert_eq!(tail_of(b"a\n\n\nb\n", 3, BLOCK), ["", "", "b"]);
    assert_eq!(tail_of(b"\n", 50, BLOCK), [""]);
    assert_eq!(tail_of(b"only", 50, BLOCK), ["only"]);
    assert_eq!(tail_of(b"a\nb\n", 0, BLOCK), Vec::<String>::new());
}

#[test]
fn invalid_utf8_is_replaced() {
    assert_eq!(
        tail_of(b"ok\n\xff\xfebad \xc3\n\xc3\xa9t\xc3\xa9\n", 3, BLOCK),
        ["ok", "\u{fffd}\u{fffd}bad \u{fffd}", "été"]
    );
}

#[test]
fn empty_and_missing_files_give_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tail(dir.path(), Service::Api, 50).unwrap().is_empty());
    assert!(
        tail(&dir.path().join("absent"), Service::Api, 50)
            .unwrap()
            .is_empty()
    );
    write_log(dir.path(), 0, b"");
    assert!(tail(dir.path(), Service::Api, 500).unwrap().is_empty());
}

#[test]
fn a_very_long_line_is_cut_and_marked() {
    let mut content = b"first\n".to_vec();
    content.extend(std::iter::repeat_n(b'x', 3 * BLOCK + 17));
    content.extend_from_slice(b"\nlast\n");
    for block in [BLOCK, 4096, 7] {
        let got = tail_of(&content, 3, block);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], "first");
        assert_eq!(got[1].len(), MAX_LINE_BYTES);
        assert!(got[1].ends_with("x…"));
        assert_eq!(got[2], "last");
        assert_eq!(got, reference(&content, 3));
    }
    // Multi-byte characters at the cut, and a long line with no final newline.
    let long = "é".repeat(MAX_LINE_BYTES);
    let got = tail_of(long.as_bytes(), 1, BLOCK);
    assert!(got[0].len() <= MAX_LINE_BYTES && got[0].ends_with("é…"));
    assert_eq!(got, reference(long.as_bytes(), 1));
    // Invalid bytes widen when replaced: the cap still holds.
    let wide = vec![0xffu8; MAX_LINE_BYTES];
    let got = tail_of(&wide, 1, BLOCK);
    assert!(got[0].len() <= MAX_LINE_BYTES && got[0].ends_with('…'));
}

#[test]
fn continues_into_the_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 2, b"old 1\nold 2\n");
    write_log(dir.path(), 1, b"mid 1\nmid 2\nmid 3\n");
    write_log(dir.path(), 0, b"new 1\nnew 2\n");
    assert_eq!(tail(dir.path(), Service::Api, 1).unwrap(), ["new 2"]);
    assert_eq!(
        tail(dir.path(), Service::Api, 4).unwrap(),
        ["mid 2", "mid 3", "new 1", "new 2"]
    );
    assert_eq!(
        tail(dir.path(), Service::Api, 50).unwrap(),
        [
            "old 1", "old 2", "mid 1", "mid 2", "mid 3", "new 1", "new 2"
        ]
    );
    // Just rotated: the current file is empty.
    write_log(dir.path(), 0, b"");
    assert_eq!(
        tail(dir.path(), Service::Api, 2).unwrap(),
        ["mid 2", "mid 3"]
    );
    // `.1` the same file as the current one (it rotated while we read it): not read twice.
    fs::remove_file(file_path(dir.path(), Service::Api, 1)).unwrap();
    fs::hard_link(
        file_path(dir.path(), Service::Api, 0),
        file_path(dir.path(), Service::Api, 1),
    )
    .unwrap();
    write_log(dir.path(), 0, b"new 1\n");
    assert_eq!(
        tail(dir.path(), Service::Api, 3).unwrap(),
        ["old 1", "old 2", "new 1"]
    );
}

#[test]
fn tail_across_the_rotation_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingFile::open(dir.path(), Service::Api, 1000, 3).unwrap();
    let all: Vec<String> = (0..300)
        .map(|i| format!("event {i} {}", "z".repeat(i % 23)))
        .collect();
    for line in &all {
        (&log).write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    assert!(file_path(dir.path(), Service::Api, 3).exists());
    let current = fs::read_to_string(file_path(dir.path(), Service::Api, 0))
        .unwrap()
        .lines()
        .count();
    let n = current + 5;
    assert_eq!(
        tail(dir.path(), Service::Api, n).unwrap(),
        all[all.len() - n..]
    );
    let kept: usize = (0..=3)
        .map(|g| {
            fs::read_to_string(file_path(dir.path(), Service::Api, g))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(
        tail(dir.path(), Service::Api, 500).unwrap(),
        all[all.len() - kept..]
    );
}

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(b'a'..=b'z', 0..200),
        1 => proptest::collection::vec(b' '..=b'~', 1000..20_000),
        1 => Just(b"crlf\r".to_vec()),
        1 => Just(Vec::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn tail_matches_the_reference(
        lines in proptest::collection::vec(line_strategy(), 0..300),
        final_newline in any::<bool>(),
        n in prop_oneof![Just(50usize), Just(500), 1usize..400],
        block in prop_oneof![Just(BLOCK), 1usize..300, 4096usize..9000],
    ) {
        let mut content = lines.join(&b'\n');
        if final_newline && !lines.is_empty() {
            content.push(b'\n');
        }
        prop_assert_eq!(tail_of(&content, n, block), reference(&content, n));
    }
}
