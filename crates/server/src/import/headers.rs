//! The headers of cryo-EM movies and micrographs, read from bytes (no I/O here):
//!
//! - **MRC / MRCS** (MRC2014): the 1024-byte header; dimensions `nx ny nz` (frames = `nz`), the
//!   mode, the pixel size `xlen / mx`; either byte order (the machine stamp at byte 212, or the
//!   other order when the stamped one gives an unknown mode and the other a known one); the file
//!   must hold `1024 + nsymbt + nx*ny*nz*bytes-per-voxel` bytes.
//! - **TIFF** (and BigTIFF): frames = the number of IFDs (image file directories) in the chain
//!   from the header, width, height, bits per sample, sample format and compression from the first.
//! - **EER**: a TIFF whose compression is 65000, 65001 or 65002 (EER v0, v1, v2).
//! - **bzip2-compressed MRC / MRCS** (`.mrc.bz2`, `.mrcs.bz2`, as CryoSPARC documents): the
//!   header from the first bytes of the decompressed content (the runner decompresses only what
//!   those bytes need); the voxels' length is not checked (it would mean decompressing all).
//!
//! The format is decided by the file's extension (case-insensitive) and confirmed by its content:
//! a `.mrc` file that is not an MRC, or a `.eer` file that is a TIFF without EER compression, is
//! an error with a stable [`HeaderError::code`].
//!
//! A TIFF's IFDs may be anywhere in the file, so its header is read in two steps: [`tiff_chain`]
//! reads the layout of the IFD chain from the first bytes, someone walks the chain through the
//! file (the runner's `walk_chains`, which counts the IFDs and returns the first one whole), and
//! [`parse_tiff`] reads the rest. [`parse`] does all of it when the whole file, or at least every
//! IFD, is in `head`.

use cryowarden_runner::ops_import::{ChainError, walk_chain};
use cryowarden_runner::protocol::{ChainSpec, Decompress, MAX_CHAIN_RECORDS, Refusal, Walked};
use serde::{Deserialize, Serialize};

/// Size of an MRC header.
pub const MRC_HEADER_BYTES: usize = 1024;
/// Bytes read from the start of every file: an MRC header; a TIFF's byte order, magic and first
/// IFD offset (and often its first IFD).
pub const HEAD_BYTES: usize = MRC_HEADER_BYTES;
/// Most frames (IFDs) of a TIFF or EER file.
pub const MAX_FRAMES: u64 = MAX_CHAIN_RECORDS;

/// What kind of file a movie or micrograph is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// `.mrc`: a micrograph (nz = 1) or a movie (nz frames).
    Mrc,
    /// `.mrcs`: a stack of images (nz frames).
    Mrcs,
    /// `.tif`, `.tiff`: one frame per IFD.
    Tiff,
    /// `.eer`: Electron Event Representation, a TIFF with EER compression, one frame per IFD.
    Eer,
}

/// The compression a file name's last extension names (`.bz2`, case-insensitive): the format is
/// then the one of the name without it (`movie.mrc.bz2` is a bzip2-compressed MRC).
pub fn compression_of(name: &str) -> Option<Decompress> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let (stem, ext) = file.rsplit_once('.')?;
    (!stem.is_empty() && ext.eq_ignore_ascii_case("bz2")).then_some(Decompress::Bzip2)
}

impl FileFormat {
    /// The format named by the extension of `name`'s last component (case-insensitive), under a
    /// compression's extension if there is one ([`compression_of`]).
    pub fn from_name(name: &str) -> Option<FileFormat> {
        let file = name.rsplit('/').next().unwrap_or(name);
        let file = match compression_of(file) {
            Some(_) => &file[..file.len() - ".bz2".len()],
            None => file,
        };
        let (stem, ext) = file.rsplit_once('.')?;
        if stem.is_empty() {
            return None;
        }
        match ext.to_ascii_lowercase().as_str() {
            "mrc" => Some(FileFormat::Mrc),
            "mrcs" => Some(FileFormat::Mrcs),
            "tif" | "tiff" => Some(FileFormat::Tiff),
            "eer" => Some(FileFormat::Eer),
            _ => None,
        }
    }

    /// True for the TIFF family (TIFF and EER).
    pub fn is_tiff(self) -> bool {
        matches!(self, FileFormat::Tiff | FileFormat::Eer)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Mrc => "mrc",
            FileFormat::Mrcs => "mrcs",
            FileFormat::Tiff => "tiff",
            FileFormat::Eer => "eer",
        }
    }
}

/// What an import records of a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: FileFormat,
    pub width: u32,
    pub height: u32,
    /// Frames of a movie (`nz` of an MRC, IFDs of a TIFF); 1 for a micrograph.
    pub frames: u32,
    /// The voxel type: `int8`, `int16`, `uint16`, `float16`, `float32`, `uint4` (MRC mode 101);
    /// for TIFF from bits per sample and sample format (`uint8`, `uint16`, `float32`, ...). `None`
    /// for EER (events, not pixel values) and unusual TIFF sample types.
    pub mode: Option<String>,
    /// Ångström per pixel along x (MRC: `xlen / mx`, rounded to 1e-5 Å); `None` when the file
    /// does not say.
    pub pixel_size_a: Option<f64>,
    /// TIFF and EER: `none`, `lzw`, `deflate`, `packbits`, `jpeg`, `zstd`, `eer-v0`, `eer-v1`,
    /// `eer-v2`, or `tiff-<code>`. MRC: `bzip2` for a `.mrc.bz2` file, else `None`.
    pub compression: Option<String>,
}

/// Why a file's header could not be read. [`HeaderError::code`] is stable; the message says what
/// is wrong for the people importing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(
        "{name} has no known extension (.mrc, .mrcs, .tif, .tiff, .eer, .mrc.bz2, .mrcs.bz2): rename it or leave it out of the import"
    )]
    UnknownFormat { name: String },
    /// A compression the format cannot come in (bzip2 is read for MRC and MRCS only).
    #[error("{0}")]
    UnsupportedCompression(String),
    #[error("not an MRC file: {0}")]
    NotMrc(String),
    #[error("truncated: expected {expected} bytes, file has {actual}")]
    Truncated { expected: u64, actual: u64 },
    /// A TIFF's IFD chain runs past the end of the file.
    #[error("truncated: the image directories (IFDs) run past the end of the file ({0})")]
    TruncatedIfds(String),
    #[error("MRC mode {0} is not supported (0, 1, 2, 6, 12 and 101 are): convert the file")]
    UnsupportedMode(i32),
    #[error("impossible dimensions: {0}")]
    BadDimensions(String),
    #[error("not a TIFF file: {0}")]
    NotTiff(String),
    #[error("not an EER file: a TIFF with compression {0}, where EER has 65000, 65001 or 65002")]
    NotEer(u16),
    #[error("damaged image directory (IFD): {0}")]
    BadIfd(String),
    #[error("more than {0} frames (image directories): the file is damaged or not a movie")]
    TooManyFrames(u64),
    /// [`parse`] was given part of a TIFF whose IFDs lie beyond it: walk them through the file.
    #[error("the TIFF's image directories lie beyond the bytes read (at byte {0} or later)")]
    IfdsBeyondHead(u64),
    /// The file could not be read (it is missing, a directory, outside the root, refused to the
    /// lab's account, ...): the runner's code (`path-not-found`, `permission-denied`, ...).
    #[error("{message}")]
    Unreadable { code: String, message: String },
    /// The runner failed the whole request this file was part of (`runner-unavailable` when it
    /// could not be run at all).
    #[error("{message}")]
    Runner { code: String, message: String },
}

impl HeaderError {
    /// A stable kebab-case code.
    pub fn code(&self) -> &str {
        match self {
            HeaderError::UnknownFormat { .. } => "unknown-format",
            HeaderError::UnsupportedCompression(_) => "unsupported-compression",
            HeaderError::NotMrc(_) => "not-mrc",
            HeaderError::Truncated { .. } | HeaderError::TruncatedIfds(_) => "truncated",
            HeaderError::UnsupportedMode(_) => "unsupported-mode",
            HeaderError::BadDimensions(_) => "bad-dimensions",
            HeaderError::NotTiff(_) => "not-tiff",
            HeaderError::NotEer(_) => "not-eer",
            HeaderError::BadIfd(_) => "bad-ifd",
            HeaderError::TooManyFrames(_) => "too-many-frames",
            HeaderError::IfdsBeyondHead(_) => "ifds-beyond-head",
            HeaderError::Unreadable { code, .. } | HeaderError::Runner { code, .. } => code,
        }
    }

    /// The error of a chain the runner could not walk (`walk_chains`).
    pub fn from_chain_refusal(refusal: Refusal) -> HeaderError {
        match refusal.code.as_str() {
            "chain-out-of-bounds" => HeaderError::TruncatedIfds(refusal.message),
            "chain-loop" | "chain-record-too-large" => HeaderError::BadIfd(refusal.message),
            "chain-too-long" => HeaderError::TooManyFrames(MAX_FRAMES),
            _ => HeaderError::Unreadable {
                code: refusal.code,
                message: refusal.message,
            },
        }
    }

    fn from_chain(e: &ChainError) -> HeaderError {
        HeaderError::from_chain_refusal(e.refusal())
    }
}

/// The format of `name` and the compression it comes in, or why it cannot be read.
pub fn format_of(name: &str) -> Result<(FileFormat, Option<Decompress>), HeaderError> {
    let format = FileFormat::from_name(name).ok_or_else(|| HeaderError::UnknownFormat {
        name: name.to_owned(),
    })?;
    let compression = compression_of(name);
    if compression.is_some() && format.is_tiff() {
        return Err(HeaderError::UnsupportedCompression(format!(
            "{name}: a bzip2-compressed {} file is not read (bzip2 is read for .mrc and .mrcs): decompress it, \
             or import the uncompressed file",
            format.as_str().to_uppercase()
        )));
    }
    Ok((format, compression))
}

/// Reads the header of the file `name` (only its extension is used) of `file_size` bytes from
/// its first bytes `head` (of its content, decompressed for a `.bz2` name):
/// [`MRC_HEADER_BYTES`] are enough for an MRC; a TIFF needs every IFD within `head` (else
/// [`HeaderError::IfdsBeyondHead`]: use [`tiff_chain`] and [`parse_tiff`]).
pub fn parse(name: &str, head: &[u8], file_size: u64) -> Result<Header, HeaderError> {
    let (format, compression) = format_of(name)?;
    if compression.is_some() {
        return parse_compressed_mrc(format, head);
    }
    if !format.is_tiff() {
        return parse_mrc(format, head, file_size);
    }
    let spec = tiff_chain(head, file_size)?;
    let readable = (head.len() as u64).min(file_size);
    let walked = walk_chain(&spec, readable, MAX_FRAMES, |offset, buf| {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(head.len());
        let n = buf.len().min(head.len() - start);
        buf[..n].copy_from_slice(&head[start..start + n]);
        Ok(n)
    })
    .map_err(|e| match e {
        ChainError::OutOfBounds { offset, .. } if readable < file_size => {
            HeaderError::IfdsBeyondHead(offset)
        }
        e => HeaderError::from_chain(&e),
    })?;
    parse_tiff(format, head, &spec, &walked)
}

// --- MRC ----------------------------------------------------------------------------------------

/// The voxel type of an MRC mode and its bits per voxel.
fn mrc_mode(mode: i32) -> Option<(&'static str, u32)> {
    Some(match mode {
        0 => ("int8", 8),
        1 => ("int16", 16),
        2 => ("float32", 32),
        6 => ("uint16", 16),
        12 => ("float16", 16),
        101 => ("uint4", 4),
        _ => return None,
    })
}

/// Reads an MRC or MRCS header (MRC2014) from the first [`MRC_HEADER_BYTES`] of a file.
pub fn parse_mrc(format: FileFormat, head: &[u8], file_size: u64) -> Result<Header, HeaderError> {
    mrc_header(format, head, Some(file_size))
}

/// Reads the header of a bzip2-compressed MRC or MRCS from the first bytes of its decompressed
/// content. The content's length is unknown without decompressing all of it, so voxels missing
/// at the end are not detected here (a content shorter than the header is).
pub fn parse_compressed_mrc(
    format: FileFormat,
    content_head: &[u8],
) -> Result<Header, HeaderError> {
    let mut header = mrc_header(format, content_head, None)?;
    header.compression = Some("bzip2".to_owned());
    Ok(header)
}

/// An MRC header from `head`; with `file_size`, the file must hold every voxel.
fn mrc_header(
    format: FileFormat,
    head: &[u8],
    file_size: Option<u64>,
) -> Result<Header, HeaderError> {
    if head.len() >= 211 && &head[208..211] != b"MAP" {
        return Err(HeaderError::NotMrc(
            "there is no \"MAP \" at byte 208".into(),
        ));
    }
    if head.len() < MRC_HEADER_BYTES {
        let file_size = file_size.unwrap_or(head.len() as u64);
        return Err(if file_size < MRC_HEADER_BYTES as u64 {
            HeaderError::Truncated {
                expected: MRC_HEADER_BYTES as u64,
                actual: file_size,
            }
        } else {
            HeaderError::NotMrc(format!(
                "only {} bytes of its 1024-byte header were read",
                head.len()
            ))
        });
    }
    if &head[208..211] != b"MAP" {
        return Err(HeaderError::NotMrc(
            "there is no \"MAP \" at byte 208".into(),
        ));
    }
    let word = |big: bool, w: usize| {
        let b: [u8; 4] = head[4 * w..4 * w + 4].try_into().expect("four bytes");
        if big {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        }
    };
    let known = |big: bool| mrc_mode(word(big, 3)).is_some();
    let big_endian = match head[212] {
        // A stamp is believed unless its order gives an unknown mode and the other a known one
        // (writers that stamp the host's order but write the other one exist; mrcfile reads them).
        0x44 => !known(false) && known(true),
        0x11 => known(true) || !known(false),
        // No usable machine stamp (some writers leave it empty): the byte order whose mode is known.
        _ if known(false) => false,
        _ if known(true) => true,
        stamp => {
            return Err(HeaderError::NotMrc(format!(
                "its machine stamp ({stamp:#04x} at byte 212) gives no byte order in which its mode is known"
            )));
        }
    };
    let int = |w| word(big_endian, w);
    let float = |w| f32::from_bits(int(w) as u32);
    let (nx, ny, nz, mode, mx, xlen, nsymbt) =
        (int(0), int(1), int(2), int(3), int(7), float(10), int(23));
    if nx < 1 || ny < 1 || nz < 1 {
        return Err(HeaderError::BadDimensions(format!(
            "nx {nx}, ny {ny}, nz {nz}: each must be at least 1"
        )));
    }
    let (mode_name, bits) = mrc_mode(mode).ok_or(HeaderError::UnsupportedMode(mode))?;
    if nsymbt < 0 {
        return Err(HeaderError::NotMrc(format!(
            "its extended header size (nsymbt) is negative ({nsymbt})"
        )));
    }
    let (x, y, z) = (nx as u128, ny as u128, nz as u128);
    let data = if bits == 4 {
        x.div_ceil(2) * y * z
    } else {
        x * y * z * u128::from(bits / 8)
    };
    let expected = MRC_HEADER_BYTES as u128 + nsymbt as u128 + data;
    if let Some(file_size) = file_size
        && expected > u128::from(file_size)
    {
        let expected = u64::try_from(expected).unwrap_or(u64::MAX);
        return Err(HeaderError::Truncated {
            expected,
            actual: file_size,
        });
    }
    let pixel_size_a =
        (mx > 0 && xlen.is_finite() && xlen > 0.0).then(|| round5(f64::from(xlen) / f64::from(mx)));
    Ok(Header {
        format,
        width: nx as u32,
        height: ny as u32,
        frames: nz as u32,
        mode: Some(mode_name.to_owned()),
        pixel_size_a,
        compression: None,
    })
}

/// Rounded to 1e-5 (a pixel size from single-precision cell dimensions: 1.0599999 becomes 1.06).
fn round5(v: f64) -> f64 {
    (v * 1e5).round() / 1e5
}

// --- TIFF and EER -------------------------------------------------------------------------------

/// The layout of a TIFF's IFD chain, from the file's first bytes (8 of a TIFF, 16 of a BigTIFF):
/// what to walk through the file (the first IFD is kept).
pub fn tiff_chain(head: &[u8], file_size: u64) -> Result<ChainSpec, HeaderError> {
    let need = |n: usize| {
        if head.len() >= n {
            Ok(())
        } else if file_size < n as u64 {
            Err(HeaderError::Truncated {
                expected: n as u64,
                actual: file_size,
            })
        } else {
            Err(HeaderError::NotTiff(format!(
                "only {} bytes of its header were read",
                head.len()
            )))
        }
    };
    need(8)?;
    let big_endian = match &head[..2] {
        b"II" => false,
        b"MM" => true,
        _ => {
            return Err(HeaderError::NotTiff(
                "it starts with neither II nor MM".into(),
            ));
        }
    };
    let int = |at: usize, len: usize| uint(&head[at..at + len], big_endian);
    let (first, header_len, spec) = match int(2, 2) {
        42 => (int(4, 4), 8, (2, 12, 4)),
        43 => {
            need(16)?;
            if int(4, 2) != 8 || int(6, 2) != 0 {
                return Err(HeaderError::NotTiff(
                    "a BigTIFF whose offsets are not 8 bytes wide".into(),
                ));
            }
            (int(8, 8), 16, (8, 20, 8))
        }
        magic => {
            return Err(HeaderError::NotTiff(format!(
                "its magic number is {magic}, not 42 (TIFF) or 43 (BigTIFF)"
            )));
        }
    };
    if first == 0 {
        return Err(HeaderError::BadIfd(
            "the header points to no image directory".into(),
        ));
    }
    if first < header_len {
        return Err(HeaderError::BadIfd(format!(
            "the first image directory's offset ({first}) lies inside the header"
        )));
    }
    let (count_bytes, item_bytes, next_bytes) = spec;
    Ok(ChainSpec {
        first,
        big_endian,
        count_bytes,
        item_bytes,
        next_bytes,
        keep: 1,
    })
}

fn uint(bytes: &[u8], big_endian: bool) -> u64 {
    let fold = |acc: u64, b: &u8| acc << 8 | u64::from(*b);
    if big_endian {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    }
}

/// Bytes of one value of a TIFF field type; `None` for types no header field here uses.
fn type_size(field_type: u64) -> Option<u64> {
    match field_type {
        1 | 6 | 7 => Some(1),  // BYTE, SBYTE, UNDEFINED
        3 | 8 => Some(2),      // SHORT, SSHORT
        4 | 9 | 13 => Some(4), // LONG, SLONG, IFD
        16..=18 => Some(8),    // LONG8, SLONG8, IFD8
        _ => None,
    }
}

/// Reads the TIFF or EER header of a file whose IFD chain (laid out as `spec`, from
/// [`tiff_chain`]) was walked: `walked` counts the IFDs and holds the first one. `head` (the
/// file's first bytes) serves values stored outside the IFD, when they lie within it.
pub fn parse_tiff(
    format: FileFormat,
    head: &[u8],
    spec: &ChainSpec,
    walked: &Walked,
) -> Result<Header, HeaderError> {
    let ifd = match (walked.records, walked.kept.first()) {
        (0, _) | (_, None) => {
            return Err(HeaderError::BadIfd(
                "the file has no image directory".into(),
            ));
        }
        (_, Some(ifd)) => ifd,
    };
    if walked.records > MAX_FRAMES {
        return Err(HeaderError::TooManyFrames(MAX_FRAMES));
    }
    let be = spec.big_endian;
    let (cb, ib) = (usize::from(spec.count_bytes), spec.item_bytes as usize);
    let big = spec.count_bytes == 8;
    if ifd.len() < cb {
        return Err(HeaderError::BadIfd(
            "the first image directory is cut short".into(),
        ));
    }
    let count = uint(&ifd[..cb], be);
    if count == 0 {
        return Err(HeaderError::BadIfd(
            "the first image directory has no entries".into(),
        ));
    }
    let entries = ifd[cb..]
        .chunks_exact(ib)
        .take(usize::try_from(count).unwrap_or(usize::MAX));
    // The first value of each field this reads; `None` when it lies beyond `head`.
    let (mut width, mut height, mut bits, mut compression, mut sample_format) =
        (None, None, Some(1), 1, 1);
    for entry in entries {
        let tag = uint(&entry[..2], be);
        let field_type = uint(&entry[2..4], be);
        let (n, field) = if big {
            (uint(&entry[4..12], be), &entry[12..20])
        } else {
            (uint(&entry[4..8], be), &entry[8..12])
        };
        let Some(size) = type_size(field_type) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let value = if n.saturating_mul(size) <= field.len() as u64 {
            Some(uint(&field[..size as usize], be))
        } else {
            // Stored elsewhere in the file: read from the head when it is there.
            let at = usize::try_from(uint(field, be)).unwrap_or(usize::MAX);
            head.get(at..at.saturating_add(size as usize))
                .map(|b| uint(b, be))
        };
        match tag {
            256 => width = value,
            257 => height = value,
            258 => bits = value,
            259 => compression = value.unwrap_or(0),
            339 => sample_format = value.unwrap_or(0),
            _ => {}
        }
    }
    let width = width.ok_or_else(|| {
        HeaderError::BadIfd("the first image directory has no image width (tag 256)".into())
    })?;
    let height = height.ok_or_else(|| {
        HeaderError::BadIfd("the first image directory has no image length (tag 257)".into())
    })?;
    let dimension = |v: u64| u32::try_from(v).ok().filter(|v| *v > 0);
    let (Some(w), Some(h)) = (dimension(width), dimension(height)) else {
        return Err(HeaderError::BadDimensions(format!(
            "width {width}, height {height}: each must be 1 to 2^32-1"
        )));
    };
    let compression = u16::try_from(compression).unwrap_or(0);
    let eer = (65000..=65002).contains(&compression);
    if format == FileFormat::Eer && !eer {
        return Err(HeaderError::NotEer(compression));
    }
    let mode = match (eer, bits, sample_format) {
        (true, ..) => None,
        (false, Some(8), 1) => Some("uint8"),
        (false, Some(16), 1) => Some("uint16"),
        (false, Some(32), 1) => Some("uint32"),
        (false, Some(8), 2) => Some("int8"),
        (false, Some(16), 2) => Some("int16"),
        (false, Some(32), 2) => Some("int32"),
        (false, Some(16), 3) => Some("float16"),
        (false, Some(32), 3) => Some("float32"),
        (false, Some(4), 1) => Some("uint4"),
        _ => None,
    };
    Ok(Header {
        format,
        width: w,
        height: h,
        frames: walked.records as u32,
        mode: mode.map(str::to_owned),
        pixel_size_a: None,
        compression: Some(compression_name(compression)),
    })
}

/// The name of a TIFF compression code.
pub fn compression_name(code: u16) -> String {
    match code {
        1 => "none".into(),
        5 => "lzw".into(),
        7 => "jpeg".into(),
        8 | 32946 => "deflate".into(),
        32773 => "packbits".into(),
        50000 => "zstd".into(),
        65000 => "eer-v0".into(),
        65001 => "eer-v1".into(),
        65002 => "eer-v2".into(),
        other => format!("tiff-{other}"),
    }
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
