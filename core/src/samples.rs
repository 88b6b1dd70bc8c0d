//! The sample-set file: a few labelled test images that the trainer exports and the firmware
//! embeds, read in place from a borrowed `&[u8]` (flash on a device).
//!
//! A fixed little-endian byte layout, so that a record is found by arithmetic and nothing is
//! copied:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `TVSM` |
//! | 4 | 2 | format version, u16 ([`VERSION`]) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | number of records `n`, u32 |
//! | 12 | `n` × 790 | records |
//! | 12 + 790`n` | 4 | CRC-32 (zlib's) of every byte before it |
//!
//! A record is: dataset, u8 (0 = MNIST test, 1 = Fashion-MNIST test); the image's index in its
//! dataset, u32; its label, u8 (< 10); the 784 pixels, row by row.

use core::fmt;

use crate::arch::{CLASSES, IMAGE_LEN};
use crate::error::{Error, Result};
use crate::format::crc32;

/// The four bytes every sample-set file starts with.
pub const MAGIC: [u8; 4] = *b"TVSM";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 12;
/// Bytes of one record: dataset, index, label, pixels.
pub const RECORD_LEN: usize = 1 + 4 + 1 + IMAGE_LEN;
/// Bytes of the CRC-32 trailer.
pub const CHECKSUM_LEN: usize = 4;

/// What is wrong with a sample-set file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SampleSetError {
    /// The bytes end before the header, a record or the checksum does.
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
    /// Bytes follow the checksum.
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
}

impl fmt::Display for SampleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SampleSetError::Truncated => f.write_str("file is truncated"),
            SampleSetError::BadMagic => f.write_str("not a tinyvi sample set (bad magic tag)"),
            SampleSetError::UnsupportedVersion { found } => write!(
                f,
                "format version {found} is not supported (this build reads version {VERSION})"
            ),
            SampleSetError::Reserved => f.write_str("reserved header field is not 0"),
            SampleSetError::ChecksumMismatch { stored, computed } => write!(
                f,
                "file is corrupt: CRC-32 {computed:#010x} does not match the stored {stored:#010x}"
            ),
            SampleSetError::TrailingBytes => f.write_str("unexpected bytes after the checksum"),
            SampleSetError::BadDataset { record } => {
                write!(f, "record {record} has an unknown dataset")
            }
            SampleSetError::BadLabel { record } => {
                write!(f, "record {record} has a label ≥ {CLASSES}")
            }
            SampleSetError::ImageSize { record } => {
                write!(f, "record {record} is not a {IMAGE_LEN}-byte image")
            }
        }
    }
}

impl From<SampleSetError> for Error {
    fn from(e: SampleSetError) -> Self {
        Error::SampleSet(e)
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

/// One labelled image, borrowing its pixels.
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

/// A validated sample-set file, borrowing its records from the bytes it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleSet<'a> {
    records: &'a [u8],
    checksum: u32,
}

impl<'a> SampleSet<'a> {
    /// Validates a sample-set file without copying it: magic, version, reserved field, length,
    /// CRC-32, then every record's dataset and label.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        if bytes.get(..MAGIC.len()).is_some_and(|m| m != MAGIC) {
            return Err(SampleSetError::BadMagic.into());
        }
        let (Some(version), Some(reserved), Some(count)) =
            (le_u16(bytes, 4), le_u16(bytes, 6), le_u32(bytes, 8))
        else {
            return Err(SampleSetError::Truncated.into());
        };
        if version != VERSION {
            return Err(SampleSetError::UnsupportedVersion { found: version }.into());
        }
        if reserved != 0 {
            return Err(SampleSetError::Reserved.into());
        }
        let records_len = (count as u64) * RECORD_LEN as u64;
        let total = HEADER_LEN as u64 + records_len + CHECKSUM_LEN as u64;
        if (bytes.len() as u64) < total {
            return Err(SampleSetError::Truncated.into());
        }
        if (bytes.len() as u64) > total {
            return Err(SampleSetError::TrailingBytes.into());
        }
        let body_len = bytes.len().saturating_sub(CHECKSUM_LEN);
        let (body, trailer) = bytes.split_at(body_len);
        let stored = le_u32(trailer, 0).ok_or(SampleSetError::Truncated)?;
        let computed = crc32(body);
        if stored != computed {
            return Err(SampleSetError::ChecksumMismatch { stored, computed }.into());
        }
        let set = SampleSet {
            records: body.get(HEADER_LEN..).unwrap_or_default(),
            checksum: stored,
        };
        for (record, chunk) in set.records.chunks_exact(RECORD_LEN).enumerate() {
            let record = record as u32;
            if chunk
                .first()
                .copied()
                .and_then(Dataset::from_code)
                .is_none()
            {
                return Err(SampleSetError::BadDataset { record }.into());
            }
            if chunk.get(5).is_none_or(|&l| l as usize >= CLASSES) {
                return Err(SampleSetError::BadLabel { record }.into());
            }
        }
        Ok(set)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.records.len() / RECORD_LEN
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The stored CRC-32 (of every byte before it): identifies the file in logs.
    pub fn checksum(&self) -> u32 {
        self.checksum
    }

    /// Image `i`, if in range.
    pub fn get(&self, i: usize) -> Option<Sample<'a>> {
        let start = i.checked_mul(RECORD_LEN)?;
        let chunk = self.records.get(start..start.checked_add(RECORD_LEN)?)?;
        Self::record(chunk)
    }

    /// The images in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Sample<'a>> + Clone + 'a {
        self.records
            .chunks_exact(RECORD_LEN)
            .map(|chunk| Self::record(chunk).unwrap_or(EMPTY))
    }

    /// Decodes one validated record.
    fn record(chunk: &'a [u8]) -> Option<Sample<'a>> {
        Some(Sample {
            dataset: Dataset::from_code(*chunk.first()?)?,
            index: le_u32(chunk, 1)?,
            label: *chunk.get(5)?,
            pixels: chunk.get(6..RECORD_LEN)?,
        })
    }
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Stands in for a record that cannot be decoded; unreachable after validation.
const EMPTY: Sample<'static> = Sample {
    dataset: Dataset::Mnist,
    index: 0,
    label: 0,
    pixels: &[],
};

/// Bytes that [`encode`] writes for `count` images.
pub const fn encoded_len(count: usize) -> usize {
    HEADER_LEN + count * RECORD_LEN + CHECKSUM_LEN
}

/// Encodes `samples` into `out` and returns the number of bytes written
/// ([`encoded_len`]`(samples.len())`).
///
/// Refuses images that are not 784 bytes and labels ≥ 10, and an `out` that is too small.
pub fn encode(samples: &[Sample<'_>], out: &mut [u8]) -> Result<usize> {
    let count = u32::try_from(samples.len()).map_err(|_| Error::TooLarge)?;
    let needed = encoded_len(samples.len());
    let Some(out) = out.get_mut(..needed) else {
        return Err(Error::BufferTooSmall {
            needed: u32::try_from(needed).unwrap_or(u32::MAX),
        });
    };
    let (body, trailer) = out.split_at_mut(needed - CHECKSUM_LEN);
    let (header, records) = body.split_at_mut(HEADER_LEN);
    let mut fields = MAGIC.into_iter().chain(VERSION.to_le_bytes()).chain([0, 0]);
    let mut fields = fields.by_ref().chain(count.to_le_bytes());
    header.fill_with(|| fields.next().unwrap_or(0));
    for (record, (s, chunk)) in samples
        .iter()
        .zip(records.chunks_exact_mut(RECORD_LEN))
        .enumerate()
    {
        let record = record as u32;
        if s.label as usize >= CLASSES {
            return Err(SampleSetError::BadLabel { record }.into());
        }
        let (fields, pixels) = chunk.split_at_mut(RECORD_LEN - IMAGE_LEN);
        if s.pixels.len() != pixels.len() {
            return Err(SampleSetError::ImageSize { record }.into());
        }
        let mut f = [s.dataset.code()]
            .into_iter()
            .chain(s.index.to_le_bytes())
            .chain([s.label]);
        fields.fill_with(|| f.next().unwrap_or(0));
        pixels.copy_from_slice(s.pixels);
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

    fn image(seed: u8) -> Vec<u8> {
        (0..IMAGE_LEN)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    fn two() -> Vec<u8> {
        let (a, b) = (image(1), image(2));
        let samples = [
            Sample {
                dataset: Dataset::Mnist,
                index: 7,
                label: 3,
                pixels: &a,
            },
            Sample {
                dataset: Dataset::Fashion,
                index: 0x0102_0304,
                label: 9,
                pixels: &b,
            },
        ];
        let mut out = vec![0u8; encoded_len(2)];
        assert_eq!(encode(&samples, &mut out), Ok(out.len()));
        out
    }

    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn layout_is_pinned() {
        let bytes = two();
        assert_eq!(bytes.len(), 12 + 2 * 790 + 4);
        assert_eq!(&bytes[..12], b"TVSM\x01\x00\x00\x00\x02\x00\x00\x00");
        assert_eq!(&bytes[12..18], &[0, 7, 0, 0, 0, 3]);
        assert_eq!(&bytes[18..18 + IMAGE_LEN], image(1).as_slice());
        assert_eq!(&bytes[802..808], &[1, 4, 3, 2, 1, 9]);
        let n = bytes.len();
        assert_eq!(bytes[n - 4..], crc32(&bytes[..n - 4]).to_le_bytes());
    }

    #[test]
    fn round_trip_borrows_the_pixels() {
        let bytes = two();
        let set = SampleSet::from_bytes(&bytes).unwrap();
        assert_eq!(set.len(), 2);
        assert!(!set.is_empty());
        let s: Vec<_> = set.iter().collect();
        assert_eq!(s[0].dataset, Dataset::Mnist);
        assert_eq!((s[0].index, s[0].label), (7, 3));
        assert_eq!(s[1].dataset, Dataset::Fashion);
        assert_eq!((s[1].index, s[1].label), (0x0102_0304, 9));
        assert_eq!(s[1].pixels, image(2).as_slice());
        assert_eq!(set.get(1), Some(s[1]));
        assert_eq!(set.get(2), None);
        assert_eq!(s[0].pixels.as_ptr(), bytes[18..].as_ptr(), "not copied");
        assert_eq!(
            set.checksum(),
            u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap())
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
        let mut out = [0u8; encoded_len(0)];
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
        // Every bit of the header, of the first record's fields and of the trailer, and a
        // stride through the pixels.
        let bits = (0..18 * 8)
            .chain((18 * 8..bytes.len() * 8).step_by(61))
            .chain((bytes.len() - 4) * 8..bytes.len() * 8);
        for bit in bits {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SampleSet::from_bytes(&b).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn errors_are_typed() {
        let bytes = two();
        let err = |b: &[u8]| SampleSet::from_bytes(b).unwrap_err();
        assert_eq!(err(&[]), Error::SampleSet(SampleSetError::Truncated));
        assert_eq!(err(b"TNVI\x01"), Error::SampleSet(SampleSetError::BadMagic));
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(err(&b), Error::SampleSet(SampleSetError::BadMagic));
        let body = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = bytes[..bytes.len() - 4].to_vec();
            f(&mut b);
            with_crc(b)
        };
        assert_eq!(
            err(&body(&|b| b[4] = 2)),
            Error::SampleSet(SampleSetError::UnsupportedVersion { found: 2 })
        );
        assert_eq!(
            err(&body(&|b| b[7] = 1)),
            Error::SampleSet(SampleSetError::Reserved)
        );
        assert_eq!(
            err(&body(&|b| b[8] = 3)),
            Error::SampleSet(SampleSetError::Truncated)
        );
        assert_eq!(
            err(&body(&|b| b[8] = 1)),
            Error::SampleSet(SampleSetError::TrailingBytes)
        );
        assert_eq!(
            err(&body(&|b| b[12 + RECORD_LEN] = 2)),
            Error::SampleSet(SampleSetError::BadDataset { record: 1 })
        );
        assert_eq!(
            err(&body(&|b| b[17] = 10)),
            Error::SampleSet(SampleSetError::BadLabel { record: 0 })
        );
        let mut b = bytes.clone();
        b[100] ^= 1;
        assert!(matches!(
            err(&b),
            Error::SampleSet(SampleSetError::ChecksumMismatch { .. })
        ));
        // A count that would overflow a 32-bit length is refused, not wrapped.
        assert_eq!(
            err(&body(&|b| b[8..12].copy_from_slice(&u32::MAX.to_le_bytes()))),
            Error::SampleSet(SampleSetError::Truncated)
        );
    }

    #[test]
    fn encoder_refuses_bad_records_and_small_buffers() {
        let a = image(0);
        let mut s = Sample {
            dataset: Dataset::Mnist,
            index: 0,
            label: 10,
            pixels: &a,
        };
        let mut out = vec![0u8; encoded_len(1)];
        assert_eq!(
            encode(&[s], &mut out),
            Err(Error::SampleSet(SampleSetError::BadLabel { record: 0 }))
        );
        s.label = 1;
        s.pixels = &a[..783];
        assert_eq!(
            encode(&[s], &mut out),
            Err(Error::SampleSet(SampleSetError::ImageSize { record: 0 }))
        );
        s.pixels = &a;
        assert_eq!(
            encode(&[s], &mut out[..100]),
            Err(Error::BufferTooSmall { needed: 806 })
        );
    }

    #[test]
    fn messages_name_the_problem() {
        let e = Error::SampleSet(SampleSetError::BadLabel { record: 4 });
        assert_eq!(std::format!("{e}"), "sample set: record 4 has a label ≥ 10");
    }
}
