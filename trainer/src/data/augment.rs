//! Augmentation: the random crop of an image zero-padded on every side, normalised on the fly.

/// Writes the normalised random crop of `img` (28×28 u8) at offset (`dy`, `dx`) ∈ 0..=2·`pad`
/// of the image zero-padded by `pad` pixels (`dy = dx = pad` is the image itself).
#[inline]
pub fn crop_normalized(
    img: &[u8],
    pad: usize,
    (dy, dx): (usize, usize),
    lut: &[f32; 256],
    out: &mut [f32],
) {
    for y in 0..28 {
        let sy = y + dy;
        let row = &mut out[y * 28..(y + 1) * 28];
        if !(pad..pad + 28).contains(&sy) {
            row.fill(lut[0]);
            continue;
        }
        let src = &img[(sy - pad) * 28..(sy - pad + 1) * 28];
        for (x, o) in row.iter_mut().enumerate() {
            let sx = x + dx;
            *o = if (pad..pad + 28).contains(&sx) {
                lut[src[sx - pad] as usize]
            } else {
                lut[0]
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::monte_carlo::norm_lut;

    #[test]
    fn crop_pads_black_and_shifts() {
        let img: Vec<u8> = (0..784).map(|i| (i % 251) as u8 + 1).collect();
        let lut = norm_lut();
        let mut out = vec![0.0; 784];
        crop_normalized(&img, 4, (4, 4), &lut, &mut out);
        assert!(out.iter().zip(&img).all(|(&o, &p)| o == lut[p as usize]));
        crop_normalized(&img, 4, (0, 8), &lut, &mut out);
        // Output (y, x) = input (y − 4, x + 4): the top 4 rows and right 4 columns are padding.
        assert!(out[..4 * 28].iter().all(|&v| v == lut[0]));
        assert_eq!(out[4 * 28], lut[img[4] as usize]);
        assert_eq!(out[5 * 28 + 23], lut[img[28 + 27] as usize]);
        assert_eq!(out[5 * 28 + 24], lut[0]);
    }
}
