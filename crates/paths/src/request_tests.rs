use super::*;

fn code(request: &str) -> &'static str {
    RelPath::parse(request)
        .map(|_| "ok")
        .unwrap_or_else(|e| e.code())
}

#[test]
fn empty_and_dot_name_the_root() {
    for request in ["", ".", "./", "./.", ".//", "././/."] {
        let rel = RelPath::parse(request).unwrap();
        assert!(rel.is_root(), "{request:?}");
        assert_eq!(rel.to_string(), ".");
        assert_eq!(rel.for_syscall(), ".");
    }
}

#[test]
fn normalises_but_keeps_dot_dot() {
    assert_eq!(RelPath::parse("a//b/./c/").unwrap().as_str(), "a/b/c");
    assert_eq!(RelPath::parse("./a/../../b").unwrap().as_str(), "a/../../b");
    assert_eq!(
        RelPath::parse("..")
            .unwrap()
            .components()
            .collect::<Vec<_>>(),
        [".."]
    );
    assert_eq!(RelPath::parse("....//").unwrap().as_str(), "....");
}

#[test]
fn odd_but_harmless_names_are_accepted() {
    for request in [
        "%2e%2e/%2e%2e/etc",
        "..\\..\\etc",
        "\u{2025}/x",
        "~/x",
        "C:\\x",
        "é/ü",
        " a ",
        "a b",
    ] {
        assert_eq!(code(request), "ok", "{request:?}");
    }
}

#[test]
fn refusals_have_their_codes() {
    assert_eq!(code("/etc/passwd"), "path-absolute");
    assert_eq!(code("/"), "path-absolute");
    assert_eq!(code("a\0b"), "path-nul-byte");
    assert_eq!(code("a\nb"), "path-control-character");
    assert_eq!(code("a\u{7f}"), "path-control-character");
    assert_eq!(code("a\u{85}"), "path-control-character");
    assert_eq!(code("\x1b[31m"), "path-control-character");
    assert_eq!(code(&"a".repeat(256)), "path-component-too-long");
    assert_eq!(code(&"a".repeat(255)), "ok");
    assert_eq!(code(&"a/".repeat(2048)), "ok");
    assert_eq!(code(&"a/".repeat(2049)), "path-too-long");
}

#[test]
fn control_character_reports_its_offset() {
    match RelPath::parse("ab\tc") {
        Err(PathError::ControlCharacter { ch, offset }) => assert_eq!((ch, offset), ('\t', 2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn from_bytes_refuses_invalid_utf8_and_nul() {
    assert_eq!(
        RelPath::from_bytes(b"a/\xff").unwrap_err().code(),
        "path-invalid-utf8"
    );
    assert_eq!(
        RelPath::from_bytes(b"\xc0\xae\xc0\xae/x")
            .unwrap_err()
            .code(),
        "path-invalid-utf8"
    );
    assert_eq!(
        RelPath::from_bytes(b"a\0\xff").unwrap_err().code(),
        "path-nul-byte"
    );
    assert_eq!(
        RelPath::from_bytes("a/\u{e9}".as_bytes()).unwrap().as_str(),
        "a/\u{e9}"
    );
}

#[test]
fn split_last_gives_parent_and_name() {
    let split = |r: &str| {
        RelPath::parse(r)
            .unwrap()
            .split_last()
            .map(|(p, n)| (p.as_str().to_owned(), n.to_owned()))
    };
    assert_eq!(split(""), None);
    assert_eq!(split("a"), Some((String::new(), "a".into())));
    assert_eq!(split("a//b/./c/"), Some(("a/b".into(), "c".into())));
    assert_eq!(split("a/.."), Some(("a".into(), "..".into())));
}
