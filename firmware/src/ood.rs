//! Out-of-distribution AUROC over the embedded images: MNIST in, Fashion-MNIST out (the
//! positive class), by pairwise comparison — exact, and small enough for a few hundred images.

/// AUROC of `score` (higher = more out of distribution) for `out` vs `in_`:
/// P(score_out > score_in) + ½ P(tie), computed as (2·wins + ties) / (2·pairs) in f32.
/// `None` without at least one image of each kind.
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
