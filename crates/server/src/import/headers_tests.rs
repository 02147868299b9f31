//! Tests of the header parsers: round trips through the fixture writers, each damage with its
//! code, and random bytes (which must never panic).

use proptest::prelude::*;

use super::*;
use crate::import::fixtures::{MrcSpec, TiffSpec};

fn mrc(spec: &MrcSpec) -> Result<Header, HeaderError> {
    parse("a/movie.mrc", &spec.header(), spec.file_size())
}

#[test]
fn formats_come_from_the_extension() {
    for (name, format) in [
        ("a.mrc", Some(FileFormat::Mrc)),
        ("dir.tif/a.MRCS", Some(FileFormat::Mrcs)),
        (
            "x/y/FoilHole_1_Data_2_fractions.TIFF",
            Some(FileFormat::Tiff),
        ),
        ("a.tif", Some(FileFormat::Tiff)),
        ("movie.Eer", Some(FileFormat::Eer)),
        ("a.mrc.bz2", Some(FileFormat::Mrc)),
        ("a.MRCS.Bz2", Some(FileFormat::Mrcs)),
        ("a.bz2", None),
        (".bz2", None),
        (".mrc.bz2", None),
        ("mrc", None),
        (".mrc", None),
        ("dir.mrc/readme", None),
        ("a.", None),
    ] {
        assert_eq!(FileFormat::from_name(name), format, "{name}");
    }
    assert_eq!(
        format_of("a.mrc.bz2"),
        Ok((FileFormat::Mrc, Some(Decompress::Bzip2)))
    );
    assert_eq!(format_of("a.mrc"), Ok((FileFormat::Mrc, None)));
    assert_eq!(
        format_of("a.eer.bz2").unwrap_err().code(),
        "unsupported-compression"
    );
    let e = parse("notes.txt", b"", 0).unwrap_err();
    assert_eq!(e.code(), "unknown-format");
    assert!(e.to_string().contains("notes.txt"));
}

#[test]
fn mrc_headers_round_trip() {
    for (mode, name) in [
        (0, "int8"),
        (1, "int16"),
        (2, "float32"),
        (6, "uint16"),
        (12, "float16"),
        (101, "uint4"),
    ] {
        for big_endian in [false, true] {
            let spec = MrcSpec {
                nx: 37,
                ny: 20,
                nz: 3,
                mode,
                pixel_a: 0.83,
                nsymbt: 96,
                big_endian,
            };
            let header = mrc(&spec).unwrap();
            assert_eq!(
                header,
                Header {
                    format: FileFormat::Mrc,
                    width: 37,
                    height: 20,
                    frames: 3,
                    mode: Some(name.into()),
                    pixel_size_a: Some(0.83),
                    compression: None,
                },
                "mode {mode}, big-endian {big_endian}"
            );
        }
    }
    let stack = MrcSpec {
        nz: 48,
        ..MrcSpec::default()
    };
    let header = parse("stack.mrcs", &stack.file(), stack.file_size()).unwrap();
    assert_eq!(
        (header.format, header.frames, header.pixel_size_a),
        (FileFormat::Mrcs, 48, Some(1.06))
    );
    // The whole file as the head: the same.
    assert_eq!(
        parse(
            "m.mrc",
            &MrcSpec::default().file(),
            MrcSpec::default().file_size()
        )
        .unwrap()
        .width,
        64
    );
    // No cell: no pixel size. Mode 101 packs two voxels a byte, rows padded to a byte.
    let uncalibrated = MrcSpec {
        pixel_a: 0.0,
        ..MrcSpec::default()
    };
    assert_eq!(mrc(&uncalibrated).unwrap().pixel_size_a, None);
    let packed = MrcSpec {
        nx: 3,
        ny: 2,
        nz: 1,
        mode: 101,
        ..MrcSpec::default()
    };
    assert_eq!(packed.file_size(), 1024 + 4);
    assert!(mrc(&packed).is_ok());
    assert_eq!(
        mrc(&MrcSpec {
            nx: 3,
            ny: 2,
            nz: 1,
            mode: 101,
            ..MrcSpec::default()
        })
        .unwrap()
        .mode
        .unwrap(),
        "uint4"
    );
}

#[test]
fn mrc_damage_has_its_code() {
    let spec = MrcSpec::default();
    let full = spec.file_size();
    let e = parse("m.mrc", &spec.header(), full - 1).unwrap_err();
    assert_eq!(
        e,
        HeaderError::Truncated {
            expected: full,
            actual: full - 1
        }
    );
    assert_eq!(e.code(), "truncated");
    assert_eq!(
        e.to_string(),
        format!("truncated: expected {full} bytes, file has {}", full - 1)
    );
    let e = parse("m.mrc", &spec.header()[..500], 500).unwrap_err();
    assert_eq!(
        e,
        HeaderError::Truncated {
            expected: 1024,
            actual: 500
        }
    );
    assert_eq!(
        parse("m.mrc", &spec.header()[..500], full)
            .unwrap_err()
            .code(),
        "not-mrc"
    );

    let mut no_map = spec.header();
    no_map[208..212].copy_from_slice(b"PAM ");
    assert_eq!(parse("m.mrc", &no_map, full).unwrap_err().code(), "not-mrc");
    // Short, but long enough to show it is no MRC.
    assert_eq!(
        parse("m.mrc", &no_map[..300], 300).unwrap_err().code(),
        "not-mrc"
    );

    let mode3 = MrcSpec {
        mode: 3,
        ..MrcSpec::default()
    };
    let e = parse("m.mrc", &mode3.header(), mode3.file_size()).unwrap_err();
    assert_eq!(
        (e.code(), e.clone()),
        ("unsupported-mode", HeaderError::UnsupportedMode(3))
    );

    for (nx, ny, nz) in [(0, 1, 1), (1, -4, 1), (1, 1, 0)] {
        let bad = MrcSpec {
            nx,
            ny,
            nz,
            ..MrcSpec::default()
        };
        assert_eq!(
            parse("m.mrc", &bad.header(), 1 << 20).unwrap_err().code(),
            "bad-dimensions"
        );
    }
    let negative = MrcSpec {
        nsymbt: -1,
        ..MrcSpec::default()
    };
    assert_eq!(
        parse("m.mrc", &negative.header(), 1 << 20)
            .unwrap_err()
            .code(),
        "not-mrc"
    );

    // No machine stamp: the byte order whose mode is known; neither: refused.
    let mut unstamped = MrcSpec {
        big_endian: true,
        ..MrcSpec::default()
    }
    .header();
    unstamped[212..216].fill(0);
    assert_eq!(parse("m.mrc", &unstamped, full).unwrap().width, 64);
    unstamped[12..16].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(
        parse("m.mrc", &unstamped, full).unwrap_err().code(),
        "not-mrc"
    );

    // A wrong machine stamp (big-endian data stamped little-endian, and the reverse), as some
    // writers leave it: the other byte order, when the stamped one yields an unknown mode and the
    // other a known one (mrcfile reads these too).
    for big_endian in [true, false] {
        let mut misstamped = MrcSpec {
            big_endian,
            nz: 7,
            mode: 1,
            ..MrcSpec::default()
        }
        .header();
        misstamped[212] = if big_endian { 0x44 } else { 0x11 };
        let h = parse("m.mrc", &misstamped, full * 7).unwrap();
        assert_eq!(
            (h.width, h.height, h.frames, h.mode.as_deref()),
            (64, 64, 7, Some("int16")),
            "big-endian {big_endian}"
        );
        assert_eq!(h.pixel_size_a, Some(1.06));
    }
    // Neither order gives a known mode: refused, naming the stamp.
    let mut hopeless = MrcSpec {
        big_endian: true,
        ..MrcSpec::default()
    }
    .header();
    hopeless[212] = 0x44;
    hopeless[12..16].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(
        parse("m.mrc", &hopeless, full).unwrap_err().code(),
        "unsupported-mode"
    );

    // A TIFF named .mrc, an MRC named .tif.
    assert_eq!(
        parse("x.mrc", &TiffSpec::default().file(), 1 << 20)
            .unwrap_err()
            .code(),
        "not-mrc"
    );
    assert_eq!(
        parse("x.tif", &spec.file(), full).unwrap_err().code(),
        "not-tiff"
    );
}

#[test]
fn tiff_headers_round_trip() {
    for big_endian in [false, true] {
        for bigtiff in [false, true] {
            for (bits, sample_format, mode) in [
                (8, 1, "uint8"),
                (16, 1, "uint16"),
                (32, 3, "float32"),
                (16, 2, "int16"),
            ] {
                let spec = TiffSpec {
                    width: 75,
                    height: 50,
                    frames: 7,
                    bits,
                    sample_format,
                    big_endian,
                    bigtiff,
                    ..TiffSpec::default()
                };
                let file = spec.file();
                let header = parse("m.tiff", &file, file.len() as u64).unwrap();
                assert_eq!(
                    header,
                    Header {
                        format: FileFormat::Tiff,
                        width: 75,
                        height: 50,
                        frames: 7,
                        mode: Some(mode.into()),
                        pixel_size_a: None,
                        compression: Some("none".into()),
                    },
                    "{spec:?}"
                );
            }
        }
    }
}

#[test]
fn eer_is_a_tiff_with_eer_compression() {
    let spec = TiffSpec::eer(300);
    let file = spec.file();
    let header = parse("FoilHole_1.eer", &file, file.len() as u64).unwrap();
    assert_eq!(
        (
            header.format,
            header.width,
            header.height,
            header.frames,
            header.mode.as_deref()
        ),
        (FileFormat::Eer, 4096, 4096, 300, None)
    );
    assert_eq!(header.compression.as_deref(), Some("eer-v1"));
    for (code, name) in [(65000, "eer-v0"), (65002, "eer-v2")] {
        let file = TiffSpec {
            compression: code,
            ..TiffSpec::eer(2)
        }
        .file();
        assert_eq!(
            parse("a.eer", &file, file.len() as u64)
                .unwrap()
                .compression
                .as_deref(),
            Some(name)
        );
    }
    // A .eer that is a plain TIFF is refused; a .tif with EER compression is a TIFF that says so.
    let plain = TiffSpec::default().file();
    let e = parse("a.eer", &plain, plain.len() as u64).unwrap_err();
    assert_eq!((e.code(), &e), ("not-eer", &HeaderError::NotEer(1)));
    let header = parse("a.tif", &file, file.len() as u64).unwrap();
    assert_eq!(
        (header.format, header.compression.as_deref()),
        (FileFormat::Tiff, Some("eer-v1"))
    );
}

#[test]
fn tiff_ifds_beyond_the_head_are_walked_through_the_file() {
    let spec = TiffSpec::default(); // 40 frames of 4 KiB, each followed by its IFD
    let file = spec.file();
    let size = file.len() as u64;
    let head = &file[..HEAD_BYTES];
    assert_eq!(
        parse("m.tif", head, size).unwrap_err().code(),
        "ifds-beyond-head"
    );
    let chain = tiff_chain(head, size).unwrap();
    let walked = walk_chain(&chain, size, MAX_FRAMES, |offset, buf| {
        let start = offset as usize;
        let n = buf.len().min(file.len() - start);
        buf[..n].copy_from_slice(&file[start..start + n]);
        Ok(n)
    })
    .unwrap();
    assert_eq!(walked.records, 40);
    let header = parse_tiff(FileFormat::Tiff, head, &chain, &walked).unwrap();
    assert_eq!(
        (
            header.width,
            header.height,
            header.frames,
            header.mode.as_deref()
        ),
        (64, 64, 40, Some("uint8"))
    );
}

#[test]
fn tiff_damage_has_its_code() {
    let file = TiffSpec {
        frames: 5,
        ..TiffSpec::default()
    }
    .file();
    let size = file.len() as u64;
    // Cut inside the last IFD.
    let cut = &file[..file.len() - 10];
    let e = parse("m.tif", cut, cut.len() as u64).unwrap_err();
    assert_eq!(e.code(), "truncated", "{e}");
    assert_eq!(
        parse("m.tif", &file[..5], 5).unwrap_err(),
        HeaderError::Truncated {
            expected: 8,
            actual: 5
        }
    );
    assert_eq!(
        parse("m.tif", b"PK\x03\x04zipzipzip", 12)
            .unwrap_err()
            .code(),
        "not-tiff"
    );
    assert_eq!(
        parse("m.tif", b"II\x2b\x00\x04\x00\x00\x00aaaaaaaaaa", 18)
            .unwrap_err()
            .code(),
        "not-tiff"
    );
    assert_eq!(
        parse("m.tif", b"II\x2a\x00\x00\x00\x00\x00", 8)
            .unwrap_err()
            .code(),
        "bad-ifd"
    );
    assert_eq!(
        parse("m.tif", b"II\x2a\x00\x04\x00\x00\x00", 8)
            .unwrap_err()
            .code(),
        "bad-ifd"
    );
    // A loop: the last IFD points back to the first.
    let mut looped = file.clone();
    let first = &looped[4..8].to_vec();
    let end = looped.len();
    looped[end - 4..].copy_from_slice(first);
    assert_eq!(parse("m.tif", &looped, size).unwrap_err().code(), "bad-ifd");
    // An IFD without width.
    let mut no_width = file.clone();
    let first = u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize;
    no_width[first + 2..first + 4].copy_from_slice(&999u16.to_le_bytes());
    let e = parse("m.tif", &no_width, size).unwrap_err();
    assert!(
        e.code() == "bad-ifd" && e.to_string().contains("width"),
        "{e}"
    );
    // An IFD with no entries (and no next one).
    let mut empty = file.clone();
    empty[first..first + 6].fill(0);
    assert_eq!(parse("m.tif", &empty, size).unwrap_err().code(), "bad-ifd");
    // A zero width.
    let mut zero = file;
    zero[first + 2 + 8..first + 2 + 12].fill(0);
    assert_eq!(
        parse("m.tif", &zero, size).unwrap_err().code(),
        "bad-dimensions"
    );
}

#[test]
fn chain_refusals_become_header_errors() {
    let refusal = |code: &str| Refusal::new(code, "m");
    assert_eq!(
        HeaderError::from_chain_refusal(refusal("chain-out-of-bounds")).code(),
        "truncated"
    );
    assert_eq!(
        HeaderError::from_chain_refusal(refusal("chain-loop")).code(),
        "bad-ifd"
    );
    assert_eq!(
        HeaderError::from_chain_refusal(refusal("chain-too-long")).code(),
        "too-many-frames"
    );
    assert_eq!(
        HeaderError::from_chain_refusal(refusal("permission-denied")).code(),
        "permission-denied"
    );
}

const NAMES: [&str; 5] = ["a.mrc", "a.mrcs", "a.tif", "a.eer", "a.tiff"];

fn damaged(valid: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, u64)> {
    let len = valid.len();
    (
        proptest::collection::vec((0..len, any::<u8>()), 1..8),
        0..=len as u64 * 2,
    )
        .prop_map(move |(flips, size)| {
            let mut bytes = valid.clone();
            for (at, b) in flips {
                bytes[at] = b;
            }
            (bytes, size)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), size in any::<u64>(), n in 0..5usize) {
        let _ = parse(NAMES[n], &bytes, size);
        let _ = tiff_chain(&bytes, size);
    }

    #[test]
    fn damaged_headers_never_panic((bytes, size) in damaged(MrcSpec::default().header()), n in 0..5usize) {
        let _ = parse(NAMES[n], &bytes, size);
    }

    #[test]
    fn damaged_tiffs_never_panic((bytes, size) in damaged(TiffSpec { frames: 3, width: 8, height: 8, ..TiffSpec::default() }.file()), n in 0..5usize) {
        let _ = parse(NAMES[n], &bytes, size);
        let _ = parse(NAMES[n], &bytes, bytes.len() as u64);
    }

    #[test]
    fn damaged_bigtiffs_never_panic((bytes, size) in damaged(TiffSpec { frames: 2, width: 8, height: 8, bigtiff: true, big_endian: true, ..TiffSpec::default() }.file())) {
        let _ = parse("a.tif", &bytes, size);
        let _ = parse("a.tif", &bytes, bytes.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_mrc_round_trips(nx in 1..5000i32, ny in 1..5000i32, nz in 1..400i32, m in 0..6usize, big_endian: bool, nsymbt in 0..100_000i32, pixel in 0.3f32..20.0) {
        let mode = [0, 1, 2, 6, 12, 101][m];
        let spec = MrcSpec { nx, ny, nz, mode, pixel_a: pixel, nsymbt, big_endian };
        let header = parse("m.mrcs", &spec.header(), spec.file_size()).unwrap();
        prop_assert_eq!((header.width, header.height, header.frames), (nx as u32, ny as u32, nz as u32));
        prop_assert!((header.pixel_size_a.unwrap() - f64::from(pixel)).abs() < 1e-4);
        let e = parse("m.mrcs", &spec.header(), spec.file_size() - 1).unwrap_err();
        prop_assert_eq!(e, HeaderError::Truncated { expected: spec.file_size(), actual: spec.file_size() - 1 });
    }

    #[test]
    fn any_tiff_round_trips(width in 1..300u32, height in 1..300u32, frames in 1..50u32, big_endian: bool, bigtiff: bool, eer: bool) {
        let spec = TiffSpec { width, height, frames, big_endian, bigtiff, compression: if eer { 65001 } else { 1 }, ..TiffSpec::default() };
        let file = spec.file();
        let header = parse(if eer { "m.eer" } else { "m.tif" }, &file, file.len() as u64).unwrap();
        prop_assert_eq!((header.width, header.height, header.frames), (width, height, frames));
        prop_assert_eq!(header.format, if eer { FileFormat::Eer } else { FileFormat::Tiff });
    }
}
