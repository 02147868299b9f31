//! Writers of small MRC and TIFF/EER files, for the tests and benchmarks of imports: the files
//! [`super::headers`] reads, built byte by byte (no imaging library). The server itself never
//! writes movies; these are for temporary directories.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// An MRC2014 file: header fields and, after the header and extended header, zeroed voxels.
#[derive(Clone, Debug, PartialEq)]
pub struct MrcSpec {
    pub nx: i32,
    pub ny: i32,
    pub nz: i32,
    pub mode: i32,
    /// Ångström per pixel (`xlen = pixel_a * mx`, with `mx = nx`); 0 writes a cell of 0.
    pub pixel_a: f32,
    /// Bytes of extended header.
    pub nsymbt: i32,
    pub big_endian: bool,
}

impl Default for MrcSpec {
    /// A 64 x 64 float32 micrograph at 1.06 Å per pixel.
    fn default() -> MrcSpec {
        MrcSpec {
            nx: 64,
            ny: 64,
            nz: 1,
            mode: 2,
            pixel_a: 1.06,
            nsymbt: 0,
            big_endian: false,
        }
    }
}

impl MrcSpec {
    /// The 1024-byte header.
    pub fn header(&self) -> Vec<u8> {
        let mut h = vec![0u8; 1024];
        let be = self.big_endian;
        let mut int = |w: usize, v: i32| {
            h[4 * w..4 * w + 4].copy_from_slice(&if be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        };
        let (mx, my, mz) = (self.nx, self.ny, self.nz);
        for (w, v) in [
            (0, self.nx),
            (1, self.ny),
            (2, self.nz),
            (3, self.mode),
            (7, mx),
            (8, my),
            (9, mz),
        ] {
            int(w, v);
        }
        for (w, v) in [
            (16, 1),
            (17, 2),
            (18, 3),
            (22, 0),
            (23, self.nsymbt),
            (27, 20140),
            (55, 1),
        ] {
            int(w, v);
        }
        let float = |v: f32| {
            if be {
                v.to_bits().to_be_bytes()
            } else {
                v.to_bits().to_le_bytes()
            }
        };
        for (w, v) in [
            (10, self.pixel_a * mx as f32),
            (11, self.pixel_a * my as f32),
            (12, self.pixel_a * mz as f32),
            (13, 90.0),
            (14, 90.0),
            (15, 90.0),
        ] {
            h[4 * w..4 * w + 4].copy_from_slice(&float(v));
        }
        h[208..212].copy_from_slice(b"MAP ");
        h[212..216].copy_from_slice(if be {
            &[0x11, 0x11, 0, 0]
        } else {
            &[0x44, 0x44, 0, 0]
        });
        h[224..224 + 20].copy_from_slice(b"cryowarden fixture  ");
        h
    }

    /// Bytes of voxel data.
    pub fn data_bytes(&self) -> u64 {
        let (x, y, z) = (
            self.nx.max(0) as u64,
            self.ny.max(0) as u64,
            self.nz.max(0) as u64,
        );
        match self.mode {
            0 => x * y * z,
            1 | 6 | 12 => 2 * x * y * z,
            101 => x.div_ceil(2) * y * z,
            3 => 4 * x * y * z,
            4 => 8 * x * y * z,
            _ => 4 * x * y * z,
        }
    }

    /// The whole file's size.
    pub fn file_size(&self) -> u64 {
        1024 + self.nsymbt.max(0) as u64 + self.data_bytes()
    }

    /// The whole file.
    pub fn file(&self) -> Vec<u8> {
        let mut f = self.header();
        f.resize(self.file_size() as usize, 0);
        f
    }

    /// Writes the file at `path`, the voxels as a hole (a sparse file).
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        write_sparse(path, &[(0, self.header())], self.file_size())
    }
}

/// A TIFF (or BigTIFF, or EER) file: one strip per frame, each followed by its IFD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TiffSpec {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub bits: u16,
    /// 1 unsigned, 2 signed, 3 floating point.
    pub sample_format: u16,
    /// 1 none; 65000..=65002 EER.
    pub compression: u16,
    pub big_endian: bool,
    pub bigtiff: bool,
    /// Entries added to every IFD after the usual ten (tags 340 and up, one SHORT each), to make
    /// large IFDs.
    pub extra_entries: u16,
}

impl Default for TiffSpec {
    /// A 64 x 64 uint8 movie of 40 frames.
    fn default() -> TiffSpec {
        TiffSpec {
            width: 64,
            height: 64,
            frames: 40,
            bits: 8,
            sample_format: 1,
            compression: 1,
            big_endian: false,
            bigtiff: false,
            extra_entries: 0,
        }
    }
}

impl TiffSpec {
    /// An EER file of `frames` 4096 x 4096 frames (compression 65001).
    pub fn eer(frames: u32) -> TiffSpec {
        TiffSpec {
            width: 4096,
            height: 4096,
            frames,
            bits: 1,
            compression: 65001,
            ..TiffSpec::default()
        }
    }

    fn strip_bytes(&self) -> u64 {
        if self.compression == 1 {
            (u64::from(self.width) * u64::from(self.bits)).div_ceil(8) * u64::from(self.height)
        } else {
            64 // compressed: any size will do for a header
        }
    }

    /// The pieces to write (offset, bytes) and the file's size; what lies between is zeros.
    pub fn pieces(&self) -> (Vec<(u64, Vec<u8>)>, u64) {
        let be = self.big_endian;
        let put = |out: &mut Vec<u8>, v: u64, len: usize| {
            let bytes = v.to_be_bytes();
            if be {
                out.extend_from_slice(&bytes[8 - len..]);
            } else {
                out.extend(bytes[8 - len..].iter().rev());
            }
        };
        let (header_len, align) = if self.bigtiff { (16u64, 8u64) } else { (8, 2) };
        let entries = 10 + u64::from(self.extra_entries);
        let ifd_len = if self.bigtiff {
            8 + 20 * entries + 8
        } else {
            2 + 12 * entries + 4
        };
        let strip = self.strip_bytes();
        let mut pieces = Vec::new();
        // Where each frame's strip and IFD go.
        let mut at = header_len;
        let mut layout = Vec::new();
        for _ in 0..self.frames {
            let strip_at = at;
            let ifd_at = (strip_at + strip).next_multiple_of(align);
            layout.push((strip_at, ifd_at));
            at = ifd_at + ifd_len;
        }
        let mut header = Vec::new();
        header.extend_from_slice(if be { b"MM" } else { b"II" });
        let first = layout.first().map_or(0, |l| l.1);
        if self.bigtiff {
            put(&mut header, 43, 2);
            put(&mut header, 8, 2);
            put(&mut header, 0, 2);
            put(&mut header, first, 8);
        } else {
            put(&mut header, 42, 2);
            put(&mut header, first, 4);
        }
        pieces.push((0, header));
        for (i, (strip_at, ifd_at)) in layout.iter().enumerate() {
            let (short, long) = (3u64, if self.bigtiff { 16u64 } else { 4 });
            let mut fields = vec![
                (256, long, u64::from(self.width)),
                (257, long, u64::from(self.height)),
                (258, short, u64::from(self.bits)),
                (259, short, u64::from(self.compression)),
                (262, short, 1),
                (273, long, *strip_at),
                (277, short, 1),
                (278, long, u64::from(self.height)),
                (279, long, strip),
                (339, short, u64::from(self.sample_format)),
            ];
            fields.extend((0..u64::from(self.extra_entries)).map(|k| (340 + k, short, k)));
            let mut ifd = Vec::new();
            put(&mut ifd, entries, if self.bigtiff { 8 } else { 2 });
            for (tag, ty, value) in fields {
                put(&mut ifd, tag, 2);
                put(&mut ifd, ty, 2);
                put(&mut ifd, 1, if self.bigtiff { 8 } else { 4 });
                let width = if self.bigtiff { 8 } else { 4 };
                let size = if ty == short { 2 } else { width };
                // A value is left-justified in its field.
                put(&mut ifd, value, size);
                ifd.extend(std::iter::repeat_n(0, width - size));
            }
            let next = layout.get(i + 1).map_or(0, |l| l.1);
            put(&mut ifd, next, if self.bigtiff { 8 } else { 4 });
            debug_assert_eq!(ifd.len() as u64, ifd_len);
            pieces.push((*ifd_at, ifd));
        }
        (pieces, at.max(header_len))
    }

    /// The whole file.
    pub fn file(&self) -> Vec<u8> {
        let (pieces, size) = self.pieces();
        let mut f = vec![0u8; size as usize];
        for (at, bytes) in pieces {
            f[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
        }
        f
    }

    /// Writes the file at `path`, the strips as holes (a sparse file).
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        let (pieces, size) = self.pieces();
        write_sparse(path, &pieces, size)
    }
}

/// Creates `path` of `size` bytes holding `pieces` at their offsets, zeros (holes) elsewhere.
pub fn write_sparse(path: &Path, pieces: &[(u64, Vec<u8>)], size: u64) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    for (at, bytes) in pieces {
        file.write_all_at(bytes, *at)?;
    }
    file.set_len(size)
}

/// `data` compressed by Debian's `bzip2` program (`bzip2 -c`), as facilities' `.mrc.bz2` movies
/// are made: the fixture of the bzip2 imports.
pub fn bzip2(data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("bzip2")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer.join().expect("the writer does not panic")?;
    if !out.status.success() {
        return Err(io::Error::other(format!("bzip2 failed: {}", out.status)));
    }
    Ok(out.stdout)
}
