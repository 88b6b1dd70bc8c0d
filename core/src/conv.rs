//! 5×5 "valid" convolution (stride 1, no padding) of one input channel into one output
//! channel, on fixed-size arrays.

use crate::format::le_f32;
use crate::params::Draw;

/// Kernel side.
pub const K: usize = 5;

/// `acc[y][x] += Σ_{ky, kx} w[ky][kx] · input[y + ky][x + kx]`, the 25 terms added one at a
/// time in (ky, kx) row-major order, to each output independently.
///
/// `OH = H − 4` and `OW = W − 4` are checked at compile time. Because every output gets its
/// own sequence of additions, the loop nesting does not change any bit: the loops run the
/// taps outermost and a whole output row innermost, which vectorises on hosts.
#[inline]
pub fn conv5x5_acc<const H: usize, const W: usize, const OH: usize, const OW: usize>(
    input: &[[f32; W]; H],
    w: &[[f32; K]; K],
    acc: &mut [[f32; OW]; OH],
) {
    const { assert!(H == OH + K - 1 && W == OW + K - 1) };
    for (orow, window) in acc.iter_mut().zip(input.windows(K)) {
        for (irow, wrow) in window.iter().zip(w) {
            for (kx, &wk) in wrow.iter().enumerate() {
                for (o, &i) in orow.iter_mut().zip(irow.iter().skip(kx)) {
                    *o += wk * i;
                }
            }
        }
    }
}

/// Draws a 5×5 kernel from 100 bytes of means and 100 bytes of variances, in storage order.
#[inline(always)]
pub fn draw_kernel<D: Draw>(mean: &[u8], var: &[u8], d: &mut D) -> [[f32; K]; K] {
    let mut w = [[0f32; K]; K];
    for (o, (m, v)) in w
        .as_flattened_mut()
        .iter_mut()
        .zip(mean.chunks_exact(4).zip(var.chunks_exact(4)))
    {
        *o = d.draw(le_f32(m), le_f32(v));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward nested loops with explicit indices, in the documented order.
    fn reference<const H: usize, const W: usize, const OH: usize, const OW: usize>(
        input: &[[f32; W]; H],
        w: &[[f32; K]; K],
        bias: f32,
    ) -> [[f32; OW]; OH] {
        let mut out = [[bias; OW]; OH];
        for y in 0..OH {
            for x in 0..OW {
                for ky in 0..K {
                    for kx in 0..K {
                        out[y][x] += w[ky][kx] * input[y + ky][x + kx];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_delta_kernel_shifts_the_image() {
        let mut input = [[0f32; 7]; 6];
        for (y, row) in input.iter_mut().enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                *v = (10 * y + x) as f32;
            }
        }
        let mut w = [[0f32; K]; K];
        w[3][1] = 2.0;
        let mut acc = [[1.0f32; 3]; 2];
        conv5x5_acc(&input, &w, &mut acc);
        // out[y][x] = 1 + 2·input[y+3][x+1]
        assert_eq!(acc, [[63.0, 65.0, 67.0], [83.0, 85.0, 87.0]]);
    }

    #[test]
    fn a_box_kernel_sums_windows() {
        let input = [[1.0f32; 5]; 5];
        let w = [[1.0f32; K]; K];
        let mut acc = [[0.5f32; 1]; 1];
        conv5x5_acc(&input, &w, &mut acc);
        assert_eq!(acc, [[25.5]]);
    }

    #[test]
    fn matches_the_reference_bit_for_bit() {
        let mut s = 1u32;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / 16_777_216.0 - 0.5
        };
        let mut input = [[0f32; 12]; 12];
        input
            .as_flattened_mut()
            .iter_mut()
            .for_each(|v| *v = next());
        let mut w = [[0f32; K]; K];
        w.as_flattened_mut().iter_mut().for_each(|v| *v = next());
        let mut acc = [[0.25f32; 8]; 8];
        conv5x5_acc(&input, &w, &mut acc);
        let expected = reference::<12, 12, 8, 8>(&input, &w, 0.25);
        for (a, e) in acc.as_flattened().iter().zip(expected.as_flattened()) {
            assert_eq!(a.to_bits(), e.to_bits());
        }
    }
}
