//! IDX files (the MNIST format), raw or gzipped, checked strictly.
//!
//! An image file is a 16-byte big-endian header `0x00000803, n, 28, 28` followed by exactly `n·784`
//! pixels; a label file is `0x00000801, n` followed by exactly `n` labels in `0..=9`. Anything else
//! (wrong magic or dimensions, a short or long file, a bad gzip stream, a label out of range) is an
//! error naming the file and the problem. A file starting with the gzip magic `1f 8b` is
//! decompressed first.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use tinyvi::arch::{CLASSES, IMAGE_LEN, IMAGE_SIDE};

use crate::error::{Result, TrainerError};

/// Magic number of an IDX file of u8 images (3 dimensions).
pub const IMAGE_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (1 dimension).
pub const LABEL_MAGIC: u32 = 0x0000_0801;
/// Refuse gzip streams that inflate beyond this (the largest MNIST file is 47 MB).
pub const MAX_DECOMPRESSED: u64 = 256 << 20;

/// Images and labels of one split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `len()·784` pixels, image after image, each row-major 28×28.
    pub images: Vec<u8>,
    /// One label in `0..=9` per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Pairs images with labels, checking that the counts and sizes agree.
    pub fn new(images: Vec<u8>, labels: Vec<u8>) -> Result<Self> {
        if images.len() != labels.len() * IMAGE_LEN {
            return Err(TrainerError::invalid(
                "dataset",
                format!(
                    "{} pixel bytes do not make {} images of {IMAGE_LEN}",
                    images.len(),
                    labels.len()
                ),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| usize::from(l) >= CLASSES) {
            return Err(TrainerError::invalid(
                "dataset",
                format!("label {} at index {i} is out of range 0..=9", labels[i]),
            ));
        }
        Ok(Dataset { images, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i` (784 bytes, row-major). Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_LEN..(i + 1) * IMAGE_LEN]
    }

    /// Label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Keeps only the first `n` images (all of them if `n >= len()`).
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * IMAGE_LEN);
        }
    }

    /// Images per label, `counts[c]` = number of images labelled `c`.
    pub fn label_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }
}

/// Published SHA-256 digests (lower-case hex) of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksums {
    /// Digest of the uncompressed IDX content.
    pub raw: &'static str,
    /// Digest of the `.gz` file itself, where one is published.
    pub gz: Option<&'static str>,
}

/// The bytes of a file after gzip decoding, and whether it was gzipped.
struct Content {
    bytes: Vec<u8>,
    gz_file: Option<Vec<u8>>,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn read_content(path: &Path) -> Result<Content> {
    let file = std::fs::read(path).map_err(|e| TrainerError::read(path, e))?;
    if file.is_empty() {
        return Err(TrainerError::data(
            path,
            "file is empty (0 bytes), expected an IDX file",
        ));
    }
    if file.starts_with(&[0x1f, 0x8b]) {
        let bytes = gunzip(&file).map_err(|e| TrainerError::data(path, e.to_string()))?;
        Ok(Content {
            bytes,
            gz_file: Some(file),
        })
    } else {
        Ok(Content {
            bytes: file,
            gz_file: None,
        })
    }
}

/// Why bytes are not the IDX file expected (the path is added by the reader).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdxError {
    /// The gzip stream does not inflate.
    #[error("gzip stream is corrupt: {0}")]
    Gzip(String),
    /// The gzip stream inflates to more than [`MAX_DECOMPRESSED`] bytes.
    #[error("gzip stream inflates to more than {MAX_DECOMPRESSED} bytes")]
    TooLarge,
    /// Shorter than the header.
    #[error(
        "truncated header: {len} bytes, an IDX {what} file starts with a {header}-byte header"
    )]
    TruncatedHeader {
        /// Bytes present.
        len: usize,
        /// `images` or `labels`.
        what: &'static str,
        /// The header's length.
        header: usize,
    },
    /// Another IDX type (or not IDX at all).
    #[error("expected magic 0x{expected:08x} (IDX {what}), found 0x{found:08x}")]
    Magic {
        /// The magic of `what`.
        expected: u32,
        /// `images` or `labels`.
        what: &'static str,
        /// The magic found.
        found: u32,
    },
    /// Images of another size.
    #[error("expected {IMAGE_SIDE}×{IMAGE_SIDE} images, found {rows}×{cols}")]
    Dimensions {
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
    /// A count of 0.
    #[error("holds no {0}")]
    Empty(&'static str),
    /// A count whose bytes this machine cannot address.
    #[error("the header promises {0} images, more than this machine can address")]
    Unaddressable(usize),
    /// Fewer bytes than the header promises.
    #[error(
        "truncated: the header promises {n} {what} ({expected} bytes), the file has {actual} bytes"
    )]
    Truncated {
        /// Items promised.
        n: usize,
        /// `images` or `labels`.
        what: &'static str,
        /// Bytes promised.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// More bytes than the header promises.
    #[error("{extra} trailing bytes after {n} {what} ({expected} bytes expected)")]
    Trailing {
        /// Bytes beyond the promised ones.
        extra: usize,
        /// Items promised.
        n: usize,
        /// `images` or `labels`.
        what: &'static str,
        /// Bytes promised.
        expected: usize,
    },
    /// A label of 10 or more.
    #[error("label {label} at index {index} is out of range 0..=9")]
    Label {
        /// The label.
        label: u8,
        /// Its index.
        index: usize,
    },
}

/// Inflates a gzip stream (several members allowed), refusing corrupt or oversized streams.
pub fn gunzip(gz: &[u8]) -> Result<Vec<u8>, IdxError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(gz).take(MAX_DECOMPRESSED + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| IdxError::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(IdxError::TooLarge);
    }
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn check_magic(
    bytes: &[u8],
    expected: u32,
    header: usize,
    what: &'static str,
) -> Result<(), IdxError> {
    let truncated = IdxError::TruncatedHeader {
        len: bytes.len(),
        what,
        header,
    };
    if bytes.len() < 4 {
        return Err(truncated);
    }
    let found = be_u32(bytes, 0);
    if found != expected {
        return Err(IdxError::Magic {
            expected,
            what,
            found,
        });
    }
    if bytes.len() < header {
        return Err(truncated);
    }
    Ok(())
}

fn check_length(
    actual: usize,
    expected: usize,
    n: usize,
    what: &'static str,
) -> Result<(), IdxError> {
    if actual < expected {
        Err(IdxError::Truncated {
            n,
            what,
            expected,
            actual,
        })
    } else if actual > expected {
        Err(IdxError::Trailing {
            extra: actual - expected,
            n,
            what,
            expected,
        })
    } else {
        Ok(())
    }
}

/// Parses an uncompressed IDX image file: returns the pixels (`n·784` bytes).
pub fn parse_images(bytes: &[u8]) -> Result<&[u8], IdxError> {
    check_magic(bytes, IMAGE_MAGIC, 16, "images")?;
    let n = be_u32(bytes, 4) as usize;
    let rows = be_u32(bytes, 8) as usize;
    let cols = be_u32(bytes, 12) as usize;
    if rows != IMAGE_SIDE || cols != IMAGE_SIDE {
        return Err(IdxError::Dimensions { rows, cols });
    }
    if n == 0 {
        return Err(IdxError::Empty("images"));
    }
    let expected = n
        .checked_mul(IMAGE_LEN)
        .and_then(|b| b.checked_add(16))
        .ok_or(IdxError::Unaddressable(n))?;
    check_length(bytes.len(), expected, n, "images")?;
    Ok(&bytes[16..])
}

/// Parses an uncompressed IDX label file: returns the labels (all in `0..=9`).
pub fn parse_labels(bytes: &[u8]) -> Result<&[u8], IdxError> {
    check_magic(bytes, LABEL_MAGIC, 8, "labels")?;
    let n = be_u32(bytes, 4) as usize;
    if n == 0 {
        return Err(IdxError::Empty("labels"));
    }
    check_length(bytes.len(), n.saturating_add(8), n, "labels")?;
    let labels = &bytes[8..];
    if let Some(index) = labels.iter().position(|&l| usize::from(l) >= CLASSES) {
        return Err(IdxError::Label {
            label: labels[index],
            index,
        });
    }
    Ok(labels)
}

fn verify(path: &Path, content: &Content, sums: Option<&Checksums>) -> Result<()> {
    let Some(sums) = sums else { return Ok(()) };
    let (expected, found) = match (&content.gz_file, sums.gz) {
        (Some(gz), Some(expected)) => (expected, sha256_hex(gz)),
        _ => (sums.raw, sha256_hex(&content.bytes)),
    };
    if found != expected {
        return Err(TrainerError::Checksum {
            path: path.into(),
            expected: expected.to_string(),
            found,
        });
    }
    Ok(())
}

/// Reads an IDX image file (raw or gzipped) and returns its pixels, `n·784` bytes.
/// With `sums`, the file must also have the published SHA-256 (of the `.gz` file when it is
/// gzipped and a `.gz` digest is published, else of the uncompressed content).
pub fn read_images(path: &Path, sums: Option<&Checksums>) -> Result<Vec<u8>> {
    let content = read_content(path)?;
    parse_images(&content.bytes).map_err(|e| TrainerError::data(path, e.to_string()))?;
    verify(path, &content, sums)?;
    let mut bytes = content.bytes;
    bytes.drain(..16);
    Ok(bytes)
}

/// Reads an IDX label file (raw or gzipped); see [`read_images`] for `sums`.
pub fn read_labels(path: &Path, sums: Option<&Checksums>) -> Result<Vec<u8>> {
    let content = read_content(path)?;
    parse_labels(&content.bytes).map_err(|e| TrainerError::data(path, e.to_string()))?;
    verify(path, &content, sums)?;
    let mut bytes = content.bytes;
    bytes.drain(..8);
    Ok(bytes)
}

/// Reads an image file and its label file and pairs them; the counts must agree.
pub fn read_pair(
    images: &Path,
    image_sums: Option<&Checksums>,
    labels: &Path,
    label_sums: Option<&Checksums>,
) -> Result<Dataset> {
    let pixels = read_images(images, image_sums)?;
    let labs = read_labels(labels, label_sums)?;
    let n_images = pixels.len() / IMAGE_LEN;
    if n_images != labs.len() {
        return Err(TrainerError::CountMismatch {
            images: images.into(),
            n_images,
            labels: labels.into(),
            n_labels: labs.len(),
        });
    }
    Ok(Dataset {
        images: pixels,
        labels: labs,
    })
}

/// Builds the bytes of a raw IDX image file (for tests and tools).
pub fn encode_images(pixels: &[u8], rows: u32, cols: u32) -> Vec<u8> {
    let per = (rows as usize * cols as usize).max(1);
    let n = (pixels.len() / per) as u32;
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [IMAGE_MAGIC, n, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Builds the bytes of a raw IDX label file (for tests and tools).
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABEL_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: usize) -> Vec<u8> {
        let px: Vec<u8> = (0..n * IMAGE_LEN).map(|i| (i % 251) as u8).collect();
        encode_images(&px, 28, 28)
    }

    #[test]
    fn valid_files_parse() {
        let bytes = images(3);
        let px = parse_images(&bytes).unwrap();
        assert_eq!(px.len(), 3 * IMAGE_LEN);
        assert_eq!(px[IMAGE_LEN + 1], ((IMAGE_LEN + 1) % 251) as u8);
        let labels = encode_labels(&[0, 9, 4]);
        assert_eq!(parse_labels(&labels).unwrap(), &[0, 9, 4]);
    }

    #[test]
    fn header_problems_are_named() {
        let mut bytes = images(1);
        bytes[3] = 0x01;
        assert_eq!(
            parse_images(&bytes).unwrap_err().to_string(),
            "expected magic 0x00000803 (IDX images), found 0x00000801"
        );
        let bytes = encode_images(&[0; 2 * 32 * 32], 32, 32);
        assert_eq!(
            parse_images(&bytes).unwrap_err().to_string(),
            "expected 28×28 images, found 32×32"
        );
        assert!(parse_images(&images(1)[..10])
            .unwrap_err()
            .to_string()
            .starts_with("truncated header: 10 bytes"));
        assert!(parse_labels(&[0, 0])
            .unwrap_err()
            .to_string()
            .starts_with("truncated header: 2 bytes"));
    }

    #[test]
    fn lengths_must_be_exact() {
        let bytes = images(2);
        let short = &bytes[..bytes.len() - 1];
        assert_eq!(
            parse_images(short).unwrap_err().to_string(),
            format!(
                "truncated: the header promises 2 images (1584 bytes), the file has {} bytes",
                short.len()
            )
        );
        let mut long = bytes.clone();
        long.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            parse_images(&long).unwrap_err().to_string(),
            "3 trailing bytes after 2 images (1584 bytes expected)"
        );
        let mut labels = encode_labels(&[1, 2]);
        labels.push(3);
        assert!(parse_labels(&labels)
            .unwrap_err()
            .to_string()
            .starts_with("1 trailing bytes"));
    }

    #[test]
    fn labels_must_be_digits() {
        assert_eq!(
            parse_labels(&encode_labels(&[3, 9, 10]))
                .unwrap_err()
                .to_string(),
            "label 10 at index 2 is out of range 0..=9"
        );
    }

    #[test]
    fn gzip_is_transparent_and_checked() {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let raw = images(2);
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz).unwrap(), raw);
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        bad.truncate(bad.len() - 2);
        assert!(gunzip(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("gzip stream is corrupt"));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn dataset_accessors() {
        let mut d = Dataset::new(vec![7; 3 * IMAGE_LEN], vec![1, 1, 5]).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.image(2).len(), IMAGE_LEN);
        assert_eq!(d.label_counts()[1], 2);
        d.truncate(1);
        assert_eq!((d.len(), d.images.len()), (1, IMAGE_LEN));
        assert_eq!(
            Dataset::new(vec![0; IMAGE_LEN], vec![10])
                .unwrap_err()
                .to_string(),
            "dataset: label 10 at index 0 is out of range 0..=9"
        );
        assert_eq!(
            Dataset::new(vec![0; 10], vec![1]).unwrap_err().to_string(),
            format!("dataset: 10 pixel bytes do not make 1 images of {IMAGE_LEN}")
        );
    }
}
