//! The sample-set file: a few labelled test images that the trainer exports and the firmware
//! embeds, read in place from a borrowed `&[u8]` (flash on a device). The pixels are stored
//! run-length encoded (most MNIST pixels are 0) and decoded on demand into a caller's
//! 784-byte buffer: no heap, no copy of the file.
//!
//! Little-endian, version 2 ([`VERSION`]):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `TVSM` |
//! | 4 | 2 | format version, u16 |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | number of records `n`, u32 |
//! | 12 | … | `n` records, back to back |
//! | end − 4 | 4 | CRC-32 (zlib's) of every byte before it |
//!
//! A record is: dataset, u8 (0 = MNIST test, 1 = Fashion-MNIST test); the image's index in its
//! dataset, u32; its label, u8 (< 10); then the 784 pixels, row by row, as runs. Each run
//! starts with a control byte `c`:
//!
//! - `c ≥ 0x80`: `(c & 0x7F) + 1` pixels of value 0 (1–128), nothing follows;
//! - `c < 0x80`: `c + 1` pixels (1–128) follow verbatim.
//!
//! The runs of a record cover exactly 784 pixels: a run that would go past pixel 784 is
//! [`SampleSetError::PixelsOverrun`], a record whose bytes end first is
//! [`SampleSetError::PixelsTruncated`]. [`encode`] writes a zero run for every stretch of
//! two or more zeros and literal runs for the rest, so a record never exceeds
//! [`MAX_RECORD_LEN`] bytes; the first 32 MNIST and 32 Fashion-MNIST test images take
//! 20,814 bytes instead of 50,576 in version 1.
//!
//! Version 1 (the same header, then records of a fixed 790 bytes: the same three fields and
//! the 784 pixels verbatim) is still read.

use core::fmt;

use crate::arch::{CLASSES, IMAGE_LEN};
/// Result with [`SampleSetError`].
pub type Result<T, E = SampleSetError> = core::result::Result<T, E>;
use crate::format::crc32;

/// The four bytes every sample-set file starts with.
pub const MAGIC: [u8; 4] = *b"TVSM";
/// The format version this build writes (it also reads [`VERSION_RAW`]).
pub const VERSION: u16 = 2;
/// The older version, with the pixels stored verbatim, that this build still reads.
pub const VERSION_RAW: u16 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 12;
/// Bytes of a record's fields before its pixels: dataset, index, label.
pub const FIELDS_LEN: usize = 1 + 4 + 1;
/// Bytes of one version-1 record: the fields and 784 verbatim pixels.
pub const RAW_RECORD_LEN: usize = FIELDS_LEN + IMAGE_LEN;
/// Most pixels one run covers.
pub const MAX_RUN: usize = 128;
/// An upper bound on the bytes of one record as [`encode`] writes it: the fields, the 784
/// pixels and one control byte per 128 of them. (Every literal run after the first follows
/// a zero run of two or more pixels, which costs one byte, or a full literal run.)
pub const MAX_RECORD_LEN: usize = FIELDS_LEN + IMAGE_LEN + IMAGE_LEN.div_ceil(MAX_RUN);
/// Bytes of the CRC-32 trailer.
pub const CHECKSUM_LEN: usize = 4;

/// Control bytes at or above this start a run of zeros.
const ZERO_RUN: u8 = 0x80;

/// What is wrong with a sample-set file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SampleSetError {
    /// The bytes end before the header, a record's fields or the checksum does.
    Truncated,
    /// The first four bytes are not `TVSM`.
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion {
        /// The version stored in the file.
        found: u16,
    },
    /// The reserved header field is not 0.
    Reserved,
    /// The stored CRC-32 does not match the bytes before it.
    ChecksumMismatch {
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the bytes as read.
        computed: u32,
    },
    /// Bytes follow the last record.
    TrailingBytes,
    /// A record's dataset byte is neither 0 (MNIST) nor 1 (Fashion-MNIST).
    BadDataset {
        /// Record number, from 0.
        record: u32,
    },
    /// A record's label is not below 10.
    BadLabel {
        /// Record number, from 0.
        record: u32,
    },
    /// A record to encode has an image that is not 784 bytes.
    ImageSize {
        /// Record number, from 0.
        record: u32,
    },
    /// A record's runs go past its 784th pixel.
    PixelsOverrun {
        /// Record number, from 0.
        record: u32,
    },
    /// A record's bytes end before its runs cover 784 pixels.
    PixelsTruncated {
        /// Record number, from 0.
        record: u32,
    },
    /// The output buffer is too small for the encoded set.
    BufferTooSmall {
        /// Bytes needed.
        needed: u32,
    },
    /// More records than the format counts (2³² − 1).
    TooLarge,
}

impl fmt::Display for SampleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SampleSetError::Truncated => f.write_str("file is truncated"),
            SampleSetError::BadMagic => f.write_str("not a tinyvi sample set (bad magic tag)"),
            SampleSetError::UnsupportedVersion { found } => write!(
                f,
                "format version {found} is not supported (this build reads versions {VERSION_RAW} and {VERSION})"
            ),
            SampleSetError::Reserved => f.write_str("reserved header field is not 0"),
            SampleSetError::ChecksumMismatch { stored, computed } => write!(
                f,
                "file is corrupt: CRC-32 {computed:#010x} does not match the stored {stored:#010x}"
            ),
            SampleSetError::TrailingBytes => f.write_str("unexpected bytes after the last record"),
            SampleSetError::BadDataset { record } => {
                write!(f, "record {record} has an unknown dataset")
            }
            SampleSetError::BadLabel { record } => {
                write!(f, "record {record} has a label ≥ {CLASSES}")
            }
            SampleSetError::ImageSize { record } => {
                write!(f, "record {record} is not a {IMAGE_LEN}-byte image")
            }
            SampleSetError::PixelsOverrun { record } => {
                write!(f, "record {record} has runs past pixel {IMAGE_LEN}")
            }
            SampleSetError::PixelsTruncated { record } => {
                write!(f, "record {record} ends before its {IMAGE_LEN} pixels do")
            }
            SampleSetError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            SampleSetError::TooLarge => f.write_str("too many records for the format"),
        }
    }
}

/// Which test set an image comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Dataset {
    /// MNIST test set (in distribution).
    Mnist = 0,
    /// Fashion-MNIST test set (out of distribution).
    Fashion = 1,
}

impl Dataset {
    /// The byte stored in a record.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The dataset stored as `code`, if any.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Dataset::Mnist),
            1 => Some(Dataset::Fashion),
            _ => None,
        }
    }

    /// `mnist` or `fashion`, as in `predictions.csv`.
    pub const fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::Fashion => "fashion",
        }
    }

    /// The dataset called `name` (`mnist` or `fashion`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "mnist" => Some(Dataset::Mnist),
            "fashion" => Some(Dataset::Fashion),
            _ => None,
        }
    }

    /// Whether images of this set are out of distribution for a model trained on MNIST.
    pub const fn is_ood(self) -> bool {
        matches!(self, Dataset::Fashion)
    }
}

/// One labelled image with its pixels: what [`encode`] takes and [`Record::decode`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The test set it comes from.
    pub dataset: Dataset,
    /// Its index in that test set.
    pub index: u32,
    /// Its label (0–9).
    pub label: u8,
    /// 28×28 grey pixels, row by row.
    pub pixels: &'a [u8],
}

/// One record of a validated sample set: its fields, and its pixels still encoded in the
/// file's bytes. [`Record::decode`] expands them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The test set it comes from.
    pub dataset: Dataset,
    /// Its index in that test set.
    pub index: u32,
    /// Its label (0–9).
    pub label: u8,
    /// The encoded pixels, validated to cover exactly 784 pixels.
    runs: &'a [u8],
    /// Whether `runs` are the 784 pixels verbatim (version 1).
    raw: bool,
}

impl Record<'_> {
    /// Decodes the pixels into `pixels` and returns the sample, borrowing them.
    pub fn decode<'p>(&self, pixels: &'p mut [u8; IMAGE_LEN]) -> Sample<'p> {
        // Validated in `SampleSet::from_bytes`: cannot fail.
        let _ = expand(self.runs, self.raw, Some(pixels));
        Sample {
            dataset: self.dataset,
            index: self.index,
            label: self.label,
            pixels,
        }
    }

    /// Bytes the pixels take in the file.
    pub fn encoded_len(&self) -> usize {
        self.runs.len()
    }
}

/// Walks the runs at the start of `bytes` until they cover 784 pixels, writing them to `out`
/// when given (version 1: `raw`, the 784 bytes themselves). Returns the bytes used.
fn expand(
    bytes: &[u8],
    raw: bool,
    mut out: Option<&mut [u8; IMAGE_LEN]>,
) -> core::result::Result<usize, Bad> {
    if raw {
        let pixels = bytes.get(..IMAGE_LEN).ok_or(Bad::Truncated)?;
        if let Some(out) = out {
            out.copy_from_slice(pixels);
        }
        return Ok(IMAGE_LEN);
    }
    let (mut at, mut filled) = (0usize, 0usize);
    while filled < IMAGE_LEN {
        let &c = bytes.get(at).ok_or(Bad::Truncated)?;
        at += 1;
        let n = usize::from(c & !ZERO_RUN) + 1;
        let end = filled + n;
        if end > IMAGE_LEN {
            return Err(Bad::Overrun);
        }
        let dst = out.as_deref_mut().and_then(|o| o.get_mut(filled..end));
        if c >= ZERO_RUN {
            if let Some(dst) = dst {
                dst.fill(0);
            }
        } else {
            let src = bytes.get(at..at + n).ok_or(Bad::Truncated)?;
            at += n;
            if let Some(dst) = dst {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s;
                }
            }
        }
        filled = end;
    }
    Ok(at)
}

/// Why a record's pixels do not decode.
enum Bad {
    Truncated,
    Overrun,
}

/// Reads the record at the start of `bytes` (validating its fields and runs) and returns it
/// with the bytes after it.
fn split_record(bytes: &[u8], raw: bool, record: u32) -> Result<(Record<'_>, &[u8])> {
    let (Some(&code), Some(index), Some(&label)) = (bytes.first(), le_u32(bytes, 1), bytes.get(5))
    else {
        return Err(SampleSetError::Truncated);
    };
    let dataset = Dataset::from_code(code).ok_or(SampleSetError::BadDataset { record })?;
    if label as usize >= CLASSES {
        return Err(SampleSetError::BadLabel { record });
    }
    let rest = bytes.get(FIELDS_LEN..).unwrap_or_default();
    let used = expand(rest, raw, None).map_err(|e| match e {
        Bad::Truncated => SampleSetError::PixelsTruncated { record },
        Bad::Overrun => SampleSetError::PixelsOverrun { record },
    })?;
    let (runs, rest) = rest.split_at_checked(used).unwrap_or((rest, &[]));
    let r = Record {
        dataset,
        index,
        label,
        runs,
        raw,
    };
    Ok((r, rest))
}

/// A validated sample-set file, borrowing its records from the bytes it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleSet<'a> {
    records: &'a [u8],
    count: usize,
    raw: bool,
    checksum: u32,
}

impl<'a> SampleSet<'a> {
    /// Validates a sample-set file without copying it: magic, version, reserved field,
    /// CRC-32, then every record's dataset, label and runs, and that nothing follows them.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        if bytes.get(..MAGIC.len()).is_some_and(|m| m != MAGIC) {
            return Err(SampleSetError::BadMagic);
        }
        let (Some(version), Some(reserved), Some(count)) =
            (le_u16(bytes, 4), le_u16(bytes, 6), le_u32(bytes, 8))
        else {
            return Err(SampleSetError::Truncated);
        };
        let raw = match version {
            VERSION => false,
            VERSION_RAW => true,
            found => return Err(SampleSetError::UnsupportedVersion { found }),
        };
        if reserved != 0 {
            return Err(SampleSetError::Reserved);
        }
        let Some(body_len) = bytes
            .len()
            .checked_sub(CHECKSUM_LEN)
            .filter(|&n| n >= HEADER_LEN)
        else {
            return Err(SampleSetError::Truncated);
        };
        let (body, trailer) = bytes.split_at(body_len);
        let stored = le_u32(trailer, 0).ok_or(SampleSetError::Truncated)?;
        let computed = crc32(body);
        if stored != computed {
            return Err(SampleSetError::ChecksumMismatch { stored, computed });
        }
        let records = body.get(HEADER_LEN..).unwrap_or_default();
        let mut rest = records;
        for record in 0..count {
            rest = split_record(rest, raw, record)?.1;
        }
        if !rest.is_empty() {
            return Err(SampleSetError::TrailingBytes);
        }
        Ok(SampleSet {
            records,
            count: count as usize,
            raw,
            checksum: stored,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The stored CRC-32 (of every byte before it): identifies the file in logs.
    pub fn checksum(&self) -> u32 {
        self.checksum
    }

    /// The file's format version: [`VERSION`], or [`VERSION_RAW`] for a version-1 file.
    pub fn version(&self) -> u16 {
        if self.raw {
            VERSION_RAW
        } else {
            VERSION
        }
    }

    /// Record `i`, if in range (records vary in length: this walks the ones before it).
    pub fn get(&self, i: usize) -> Option<Record<'a>> {
        self.iter().nth(i)
    }

    /// The records in order.
    pub fn iter(&self) -> Records<'a> {
        Records {
            rest: self.records,
            left: self.count,
            raw: self.raw,
        }
    }
}

impl<'a> IntoIterator for &SampleSet<'a> {
    type Item = Record<'a>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.iter()
    }
}

/// The records of a [`SampleSet`], in order ([`SampleSet::iter`]).
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: usize,
    raw: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        self.left = self.left.checked_sub(1)?;
        // Validated in `SampleSet::from_bytes`: cannot fail.
        let (record, rest) = split_record(self.rest, self.raw, 0).ok()?;
        self.rest = rest;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Records<'_> {}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Runs for `pixels`, passed byte by byte to `emit`: a zero run for every stretch of two
/// or more zeros (up to 128 at a time), literal runs of up to 128 pixels for the rest.
fn compress(pixels: &[u8], mut emit: impl FnMut(u8)) {
    let mut i = 0;
    while let Some(rest) = pixels.get(i..).filter(|r| !r.is_empty()) {
        let zeros = rest.iter().take_while(|&&p| p == 0).count().min(MAX_RUN);
        if zeros >= 2 {
            emit(ZERO_RUN | (zeros - 1) as u8);
            i += zeros;
            continue;
        }
        // Up to the next two zeros in a row, at most 128 pixels; at least one, as `rest`
        // does not start with two zeros.
        let n = rest
            .windows(2)
            .take(MAX_RUN)
            .position(|w| w == [0, 0])
            .unwrap_or(rest.len())
            .clamp(1, MAX_RUN);
        emit((n - 1) as u8);
        rest.iter().take(n).for_each(|&p| emit(p));
        i += n;
    }
}

/// Bytes that [`encode`] writes for `samples` (images that are not 784 bytes, which it
/// refuses, are counted as they are).
pub fn encoded_len(samples: &[Sample<'_>]) -> usize {
    let mut n = HEADER_LEN + CHECKSUM_LEN + samples.len() * FIELDS_LEN;
    for s in samples {
        compress(s.pixels, |_| n += 1);
    }
    n
}

/// A buffer of this many bytes holds the encoding of any `count` images.
pub const fn max_encoded_len(count: usize) -> usize {
    HEADER_LEN + count * MAX_RECORD_LEN + CHECKSUM_LEN
}

/// Encodes `samples` (version [`VERSION`]) into `out` and returns the number of bytes
/// written, [`encoded_len`]`(samples)`.
///
/// Refuses images that are not 784 bytes and labels ≥ 10, and an `out` that is too small
/// ([`SampleSetError::BufferTooSmall`] with the exact size).
pub fn encode(samples: &[Sample<'_>], out: &mut [u8]) -> Result<usize> {
    let count = u32::try_from(samples.len()).map_err(|_| SampleSetError::TooLarge)?;
    for (record, s) in samples.iter().enumerate() {
        let record = record as u32;
        if s.label as usize >= CLASSES {
            return Err(SampleSetError::BadLabel { record });
        }
        if s.pixels.len() != IMAGE_LEN {
            return Err(SampleSetError::ImageSize { record });
        }
    }
    let needed = encoded_len(samples);
    let Some(out) = out.get_mut(..needed) else {
        return Err(SampleSetError::BufferTooSmall {
            needed: u32::try_from(needed).unwrap_or(u32::MAX),
        });
    };
    let (body, trailer) = out.split_at_mut(needed - CHECKSUM_LEN);
    let mut slots = body.iter_mut();
    let mut put = |b: u8| {
        if let Some(slot) = slots.next() {
            *slot = b;
        }
    };
    MAGIC
        .into_iter()
        .chain(VERSION.to_le_bytes())
        .chain([0, 0])
        .chain(count.to_le_bytes())
        .for_each(&mut put);
    for s in samples {
        [s.dataset.code()]
            .into_iter()
            .chain(s.index.to_le_bytes())
            .chain([s.label])
            .for_each(&mut put);
        compress(s.pixels, &mut put);
    }
    trailer.copy_from_slice(&crc32(body).to_le_bytes());
    Ok(needed)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    /// A digit-like image: zero except a few rows with varied values, a 3-pixel run of 255
    /// and a lone zero between non-zero pixels.
    fn sparse(seed: u8) -> Vec<u8> {
        let mut img = vec![0u8; IMAGE_LEN];
        for row in [5usize, 6, 20] {
            for col in 10..16 {
                img[row * 28 + col] = (row as u8 * 9).wrapping_add(col as u8).wrapping_add(seed);
            }
        }
        img[6 * 28 + 12] = 0;
        img[20 * 28 + 11..20 * 28 + 14].fill(255);
        img
    }

    /// Dense noise: no two zeros in a row anywhere (literal runs only).
    fn dense(seed: u8) -> Vec<u8> {
        (0..IMAGE_LEN)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed) | 1)
            .collect()
    }

    fn samples<'a>(a: &'a [u8], b: &'a [u8]) -> [Sample<'a>; 2] {
        [
            Sample {
                dataset: Dataset::Mnist,
                index: 7,
                label: 3,
                pixels: a,
            },
            Sample {
                dataset: Dataset::Fashion,
                index: 0x0102_0304,
                label: 9,
                pixels: b,
            },
        ]
    }

    fn encoded(s: &[Sample<'_>]) -> Vec<u8> {
        let mut out = vec![0u8; max_encoded_len(s.len())];
        let n = encode(s, &mut out).unwrap();
        assert_eq!(n, encoded_len(s));
        out.truncate(n);
        out
    }

    fn two() -> Vec<u8> {
        let (a, b) = (sparse(1), dense(2));
        encoded(&samples(&a, &b))
    }

    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    fn decode_all(set: &SampleSet<'_>) -> Vec<(Dataset, u32, u8, Vec<u8>)> {
        let mut px = [0u8; IMAGE_LEN];
        set.iter()
            .map(|r| {
                let s = r.decode(&mut px);
                (s.dataset, s.index, s.label, s.pixels.to_vec())
            })
            .collect()
    }

    /// The bytes of one small record, written out by hand: the format is pinned.
    #[test]
    fn layout_is_pinned() {
        // Pixels: 140 zeros, 1 2 0 3, 4 zeros, 255 255, then zeros to the end (634).
        let mut img = vec![0u8; IMAGE_LEN];
        img[140..144].copy_from_slice(&[1, 2, 0, 3]);
        img[148..150].copy_from_slice(&[255, 255]);
        let s = [Sample {
            dataset: Dataset::Fashion,
            index: 0x0102_0304,
            label: 9,
            pixels: &img,
        }];
        let bytes = encoded(&s);
        let expected: Vec<u8> = [
            b"TVSM\x02\x00\x00\x00\x01\x00\x00\x00".as_slice(),
            &[1, 4, 3, 2, 1, 9],
            &[0xFF, 0x8B],             // 128 zeros, 12 zeros
            &[3, 1, 2, 0, 3],          // 4 pixels verbatim (a lone zero stays in)
            &[0x83],                   // 4 zeros
            &[1, 255, 255],            // 2 pixels verbatim
            &[0xFF, 0xFF, 0xFF, 0xFF], // 4 × 128 zeros
            &[0xF9],                   // 122 zeros: 784 in all
        ]
        .concat();
        assert_eq!(&bytes[..bytes.len() - 4], expected.as_slice());
        let n = bytes.len();
        assert_eq!(bytes[n - 4..], crc32(&bytes[..n - 4]).to_le_bytes());
        assert_eq!(crc32(&bytes[..n - 4]), 0xde71_8c3b, "pinned checksum");
        let set = SampleSet::from_bytes(&bytes).unwrap();
        assert_eq!(decode_all(&set)[0].3, img);
    }

    #[test]
    fn round_trip_decodes_the_pixels() {
        let (a, b) = (sparse(1), dense(2));
        let bytes = two();
        let set = SampleSet::from_bytes(&bytes).unwrap();
        assert_eq!((set.len(), set.version()), (2, VERSION));
        assert!(!set.is_empty());
        let s = decode_all(&set);
        assert_eq!(s[0], (Dataset::Mnist, 7, 3, a.clone()));
        assert_eq!(s[1], (Dataset::Fashion, 0x0102_0304, 9, b));
        assert_eq!(set.iter().len(), 2);
        assert_eq!(set.get(1), set.iter().nth(1));
        assert_eq!(set.get(0).map(|r| r.index), Some(7));
        assert_eq!(set.get(2), None);
        assert!(
            set.get(0).unwrap().encoded_len() < a.len() / 4,
            "sparse compresses"
        );
        assert_eq!(
            set.checksum(),
            u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap())
        );
    }

    #[test]
    fn awkward_images_round_trip_within_the_bound() {
        let alternating: Vec<u8> = (0..IMAGE_LEN).map(|i| (i % 2) as u8 * 200).collect();
        let pairs: Vec<u8> = (0..IMAGE_LEN).map(|i| ((i / 2) % 2) as u8 * 7).collect();
        let ends: Vec<u8> = (0..IMAGE_LEN)
            .map(|i| u8::from(i == 0 || i == 783))
            .collect();
        let images = [
            vec![0u8; IMAGE_LEN],
            vec![255u8; IMAGE_LEN],
            dense(0),
            alternating,
            pairs,
            ends,
            sparse(200),
        ];
        for img in &images {
            let s = [Sample {
                dataset: Dataset::Mnist,
                index: 1,
                label: 0,
                pixels: img,
            }];
            let bytes = encoded(&s);
            assert!(bytes.len() <= max_encoded_len(1), "{}", bytes.len());
            let set = SampleSet::from_bytes(&bytes).unwrap();
            assert_eq!(&decode_all(&set)[0].3, img);
        }
        let zeros = [Sample {
            dataset: Dataset::Mnist,
            index: 1,
            label: 0,
            pixels: &images[0],
        }];
        assert_eq!(encoded_len(&zeros), 16 + 6 + 7, "7 zero runs");
        // The worst case of `encode`: a single literal run of 784 needs 7 control bytes.
        let full = [Sample {
            pixels: &images[1],
            ..zeros[0]
        }];
        assert_eq!(encoded_len(&full), max_encoded_len(1));
    }

    #[test]
    fn version_1_is_still_read() {
        let (a, b) = (sparse(1), dense(2));
        let mut v1 = b"TVSM\x01\x00\x00\x00\x02\x00\x00\x00".to_vec();
        for s in samples(&a, &b) {
            v1.push(s.dataset.code());
            v1.extend_from_slice(&s.index.to_le_bytes());
            v1.push(s.label);
            v1.extend_from_slice(s.pixels);
        }
        assert_eq!(v1.len(), HEADER_LEN + 2 * RAW_RECORD_LEN);
        let v1 = with_crc(v1);
        let set = SampleSet::from_bytes(&v1).unwrap();
        assert_eq!((set.len(), set.version()), (2, VERSION_RAW));
        let v2 = two();
        let set2 = SampleSet::from_bytes(&v2).unwrap();
        assert_eq!(decode_all(&set), decode_all(&set2));
        for len in 0..v1.len() {
            assert!(SampleSet::from_bytes(&v1[..len]).is_err(), "length {len}");
        }
        let short = with_crc(v1[..v1.len() - 5].to_vec());
        assert_eq!(
            SampleSet::from_bytes(&short),
            Err(SampleSetError::PixelsTruncated { record: 1 })
        );
    }

    #[test]
    fn dataset_names_round_trip() {
        for d in [Dataset::Mnist, Dataset::Fashion] {
            assert_eq!(Dataset::from_name(d.name()), Some(d));
            assert_eq!(Dataset::from_code(d.code()), Some(d));
        }
        assert_eq!(Dataset::from_name("cifar"), None);
        assert_eq!(Dataset::from_code(2), None);
    }

    #[test]
    fn empty_set_is_valid() {
        let mut out = [0u8; max_encoded_len(0)];
        assert_eq!(encode(&[], &mut out), Ok(16));
        let set = SampleSet::from_bytes(&out).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.iter().count(), 0);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let bytes = two();
        for len in 0..bytes.len() {
            assert!(
                SampleSet::from_bytes(&bytes[..len]).is_err(),
                "length {len}"
            );
        }
        for extra in [&[0u8][..], &[0x80], &[1, 2, 3, 4]] {
            let mut b = bytes.clone();
            b.extend_from_slice(extra);
            assert!(SampleSet::from_bytes(&b).is_err(), "{extra:?} appended");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SampleSet::from_bytes(&b).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn errors_are_typed() {
        let bytes = two();
        let err = |b: &[u8]| SampleSet::from_bytes(b).unwrap_err();
        assert_eq!(err(&[]), SampleSetError::Truncated);
        assert_eq!(err(b"TNVI\x01"), SampleSetError::BadMagic);
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(err(&b), SampleSetError::BadMagic);
        let body = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = bytes[..bytes.len() - 4].to_vec();
            f(&mut b);
            with_crc(b)
        };
        assert_eq!(
            err(&body(&|b| b[4] = 3)),
            SampleSetError::UnsupportedVersion { found: 3 }
        );
        assert_eq!(err(&body(&|b| b[7] = 1)), SampleSetError::Reserved);
        assert_eq!(err(&body(&|b| b[8] = 3)), SampleSetError::Truncated);
        assert_eq!(err(&body(&|b| b[8] = 1)), SampleSetError::TrailingBytes);
        let second = 12 + set_record_len(&bytes, 0);
        assert_eq!(
            err(&body(&|b| b[second] = 2)),
            SampleSetError::BadDataset { record: 1 }
        );
        assert_eq!(
            err(&body(&|b| b[17] = 10)),
            SampleSetError::BadLabel { record: 0 }
        );
        // The first record's first run is 128 zeros: one more control byte of 128 zeros
        // in front overruns 784 pixels; dropping its last run ends it early.
        assert_eq!(bytes[18], 0xFF);
        assert_eq!(
            err(&body(&|b| b.insert(18, 0xFF))),
            SampleSetError::PixelsOverrun { record: 0 }
        );
        // A literal run longer than what is left of the file.
        let last = bytes.len() - 4 - 1;
        assert_eq!(
            err(&body(&|b| b.truncate(last))),
            SampleSetError::PixelsTruncated { record: 1 }
        );
        let mut b = bytes.clone();
        b[100] ^= 1;
        assert!(matches!(err(&b), SampleSetError::ChecksumMismatch { .. }));
        // A count that would overflow a 32-bit length is refused, not wrapped.
        assert_eq!(
            err(&body(&|b| b[8..12].copy_from_slice(&u32::MAX.to_le_bytes()))),
            SampleSetError::Truncated
        );
    }

    /// Bytes of record `i` of a valid file.
    fn set_record_len(bytes: &[u8], i: usize) -> usize {
        let set = SampleSet::from_bytes(bytes).unwrap();
        FIELDS_LEN + set.get(i).unwrap().encoded_len()
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic() {
        // Every byte string with a good header and checksum is read without panicking, and
        // whatever is accepted decodes to 784 pixels per record.
        let mut state = 0x1234_5678u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut accepted = 0;
        for round in 0..2000 {
            let len = (next() % 900) as usize;
            let mut body = b"TVSM\x02\x00\x00\x00\x01\x00\x00\x00".to_vec();
            body.extend_from_slice(&[0, 1, 0, 0, 0, (round % 10) as u8]);
            // Mostly long zero runs, so that some files cover exactly 784 pixels.
            body.extend((0..len).map(|_| match next() % 4 {
                0 => (next() % 0x80) as u8,
                _ => 0x80 | (next() % 0x80) as u8,
            }));
            if let Ok(set) = SampleSet::from_bytes(&with_crc(body)) {
                accepted += 1;
                assert_eq!(decode_all(&set)[0].3.len(), IMAGE_LEN);
            }
        }
        assert!(accepted < 2000);
    }

    #[test]
    fn encoder_refuses_bad_records_and_small_buffers() {
        let a = sparse(0);
        let mut s = Sample {
            dataset: Dataset::Mnist,
            index: 0,
            label: 10,
            pixels: &a,
        };
        let mut out = vec![0u8; max_encoded_len(1)];
        assert_eq!(
            encode(&[s], &mut out),
            Err(SampleSetError::BadLabel { record: 0 })
        );
        s.label = 1;
        s.pixels = &a[..783];
        assert_eq!(
            encode(&[s], &mut out),
            Err(SampleSetError::ImageSize { record: 0 })
        );
        s.pixels = &a;
        let needed = encoded_len(&[s]);
        assert_eq!(
            encode(&[s], &mut out[..needed - 1]),
            Err(SampleSetError::BufferTooSmall {
                needed: needed as u32
            })
        );
        assert_eq!(encode(&[s], &mut out[..needed]), Ok(needed));
    }

    #[test]
    fn messages_name_the_problem() {
        let e = SampleSetError::BadLabel { record: 4 };
        assert_eq!(std::format!("{e}"), "record 4 has a label ≥ 10");
        let e = SampleSetError::PixelsOverrun { record: 2 };
        assert_eq!(std::format!("{e}"), "record 2 has runs past pixel 784");
    }
}
