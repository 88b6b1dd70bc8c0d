//! What the device reports and the host checks it with: the out-of-distribution AUROC over the
//! embedded images (MNIST in, Fashion-MNIST out, the positive class), computed pairwise, and
//! the stored CRC-32 that names a model or sample file in the log.

/// AUROC of `score` (higher = more out of distribution) for `out` vs `in_`:
/// P(score_out > score_in) + ½ P(tie), computed as (2·wins + ties) / (2·pairs) in f32 —
/// exact, and small enough for a few hundred images. `None` without at least one image of
/// each kind.
pub fn auroc(
    in_: impl Iterator<Item = f32> + Clone,
    out: impl Iterator<Item = f32> + Clone,
) -> Option<f32> {
    let mut twice: u64 = 0;
    let mut pairs: u64 = 0;
    for o in out {
        for i in in_.clone() {
            twice += if o > i {
                2
            } else if o == i {
                1
            } else {
                0
            };
            pairs += 1;
        }
    }
    (pairs > 0).then(|| twice as f32 / (2 * pairs) as f32)
}

/// The CRC-32 stored in the last four bytes of a file (little-endian), as the model and
/// sample-set formats end; `None` for a file shorter than four bytes.
pub fn trailer_crc(bytes: &[u8]) -> Option<u32> {
    let (_, last) = bytes.split_last_chunk::<4>()?;
    Some(u32::from_le_bytes(*last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(in_: &[f32], out: &[f32]) -> Option<f32> {
        auroc(in_.iter().copied(), out.iter().copied())
    }

    #[test]
    fn auroc_counts_ties_as_half() {
        assert_eq!(of(&[0.1, 0.2], &[0.3, 0.4]), Some(1.0));
        assert_eq!(of(&[0.3, 0.4], &[0.1, 0.2]), Some(0.0));
        assert_eq!(of(&[0.5], &[0.5]), Some(0.5));
        assert_eq!(of(&[0.1, 0.5], &[0.5]), Some(0.75));
        assert_eq!(of(&[], &[0.5]), None);
        assert_eq!(of(&[0.5], &[]), None);
    }

    #[test]
    fn trailer_crc_reads_the_last_four_bytes() {
        assert_eq!(trailer_crc(&[9, 0x78, 0x56, 0x34, 0x12]), Some(0x1234_5678));
        assert_eq!(trailer_crc(&[1, 2, 3, 4]), Some(0x0403_0201));
        assert_eq!(trailer_crc(&[1, 2, 3]), None);
    }
}
