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
/// own sequence of additions, the loop nesting does not change any bit, so each target gets
/// the nesting that suits it: on the Cortex-M4 ([`conv5x5_acc_pairs`]) the 25 weights stay in
/// registers and outputs are finished two at a time, sharing their input loads (1.8
/// instructions per multiply-add; one at a time, [`conv5x5_acc_pixels`], 2.3; four at a time
/// runs out of registers); elsewhere ([`conv5x5_acc_rows`]) the taps run outermost over whole
/// output rows, which vectorises. A test checks that all give the same bits.
// Not inlined: called with a pointer into `Scratch`, the loads get small offsets
// (inlined into `predict`, the Cortex-M4 needs an address computation per load).
#[inline(never)]
pub fn conv5x5_acc<const H: usize, const W: usize, const OH: usize, const OW: usize>(
    input: &[[f32; W]; H],
    w: &[[f32; K]; K],
    acc: &mut [[f32; OW]; OH],
) {
    #[cfg(target_arch = "arm")]
    conv5x5_acc_pairs(input, w, acc);
    #[cfg(not(target_arch = "arm"))]
    conv5x5_acc_rows(input, w, acc);
}

/// [`conv5x5_acc`] with the taps outermost and a whole output row innermost (SIMD-friendly).
#[inline]
pub fn conv5x5_acc_rows<const H: usize, const W: usize, const OH: usize, const OW: usize>(
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

/// [`conv5x5_acc`] output by output, the 25 weights held in registers (for the Cortex-M4's
/// 32 single-precision registers).
#[inline]
pub fn conv5x5_acc_pixels<const H: usize, const W: usize, const OH: usize, const OW: usize>(
    input: &[[f32; W]; H],
    w: &[[f32; K]; K],
    acc: &mut [[f32; OW]; OH],
) {
    const { assert!(H == OH + K - 1 && W == OW + K - 1) };
    let [[w00, w01, w02, w03, w04], [w10, w11, w12, w13, w14], [w20, w21, w22, w23, w24], [w30, w31, w32, w33, w34], [w40, w41, w42, w43, w44]] =
        *w;
    for (orow, window) in acc.iter_mut().zip(input.windows(K)) {
        let [r0, r1, r2, r3, r4] = window else {
            continue;
        };
        let taps = r0
            .windows(K)
            .zip(r1.windows(K))
            .zip(r2.windows(K))
            .zip(r3.windows(K))
            .zip(r4.windows(K));
        for (o, ((((t0, t1), t2), t3), t4)) in orow.iter_mut().zip(taps) {
            let (&[a0, a1, a2, a3, a4], &[b0, b1, b2, b3, b4], &[c0, c1, c2, c3, c4]) =
                (t0, t1, t2)
            else {
                continue;
            };
            let (&[d0, d1, d2, d3, d4], &[e0, e1, e2, e3, e4]) = (t3, t4) else {
                continue;
            };
            let mut s = *o;
            s += w00 * a0;
            s += w01 * a1;
            s += w02 * a2;
            s += w03 * a3;
            s += w04 * a4;
            s += w10 * b0;
            s += w11 * b1;
            s += w12 * b2;
            s += w13 * b3;
            s += w14 * b4;
            s += w20 * c0;
            s += w21 * c1;
            s += w22 * c2;
            s += w23 * c3;
            s += w24 * c4;
            s += w30 * d0;
            s += w31 * d1;
            s += w32 * d2;
            s += w33 * d3;
            s += w34 * d4;
            s += w40 * e0;
            s += w41 * e1;
            s += w42 * e2;
            s += w43 * e3;
            s += w44 * e4;
            *o = s;
        }
    }
}

/// [`conv5x5_acc`] two outputs at a time, the 25 weights held in registers: the two outputs
/// of a pair share 25 of their 30 input loads. Each output still adds its own terms in
/// (ky, kx) order, so the bits are those of the other nestings. Used on the Cortex-M4.
#[inline]
pub fn conv5x5_acc_pairs<const H: usize, const W: usize, const OH: usize, const OW: usize>(
    input: &[[f32; W]; H],
    w: &[[f32; K]; K],
    acc: &mut [[f32; OW]; OH],
) {
    const { assert!(H == OH + K - 1 && W == OW + K - 1) };
    let [[w00, w01, w02, w03, w04], [w10, w11, w12, w13, w14], [w20, w21, w22, w23, w24], [w30, w31, w32, w33, w34], [w40, w41, w42, w43, w44]] =
        *w;
    for (orow, window) in acc.iter_mut().zip(input.windows(K)) {
        let [r0, r1, r2, r3, r4] = window else {
            continue;
        };
        for p in 0..OW / 2 {
            let x = 2 * p;
            let (
                Some([o0, o1]),
                Some(&[a0, a1, a2, a3, a4, a5]),
                Some(&[b0, b1, b2, b3, b4, b5]),
                Some(&[c0, c1, c2, c3, c4, c5]),
                Some(&[d0, d1, d2, d3, d4, d5]),
                Some(&[e0, e1, e2, e3, e4, e5]),
            ) = (
                orow.get_mut(x..x + 2),
                six(r0, x),
                six(r1, x),
                six(r2, x),
                six(r3, x),
                six(r4, x),
            )
            else {
                continue; // unreachable: x + 6 ≤ W
            };
            let (mut s, mut t) = (*o0, *o1);
            s += w00 * a0;
            t += w00 * a1;
            s += w01 * a1;
            t += w01 * a2;
            s += w02 * a2;
            t += w02 * a3;
            s += w03 * a3;
            t += w03 * a4;
            s += w04 * a4;
            t += w04 * a5;
            s += w10 * b0;
            t += w10 * b1;
            s += w11 * b1;
            t += w11 * b2;
            s += w12 * b2;
            t += w12 * b3;
            s += w13 * b3;
            t += w13 * b4;
            s += w14 * b4;
            t += w14 * b5;
            s += w20 * c0;
            t += w20 * c1;
            s += w21 * c1;
            t += w21 * c2;
            s += w22 * c2;
            t += w22 * c3;
            s += w23 * c3;
            t += w23 * c4;
            s += w24 * c4;
            t += w24 * c5;
            s += w30 * d0;
            t += w30 * d1;
            s += w31 * d1;
            t += w31 * d2;
            s += w32 * d2;
            t += w32 * d3;
            s += w33 * d3;
            t += w33 * d4;
            s += w34 * d4;
            t += w34 * d5;
            s += w40 * e0;
            t += w40 * e1;
            s += w41 * e1;
            t += w41 * e2;
            s += w42 * e2;
            t += w42 * e3;
            s += w43 * e3;
            t += w43 * e4;
            s += w44 * e4;
            t += w44 * e5;
            *o0 = s;
            *o1 = t;
        }
        // An odd width leaves the last output alone.
        if let (1, Some(o)) = (OW % 2, orow.last_mut()) {
            let mut s = *o;
            for (row, wrow) in window.iter().zip(w) {
                for (&i, &wk) in row.iter().skip(OW - 1).zip(wrow) {
                    s += wk * i;
                }
            }
            *o = s;
        }
    }
}

/// The six inputs `r[x..x + 6]` of an output pair.
#[inline(always)]
fn six<const W: usize>(r: &[f32; W], x: usize) -> Option<&[f32; K + 1]> {
    r.get(x..x + K + 1)?.try_into().ok()
}

/// Draws a 5×5 kernel from 100 bytes of means and 100 bytes of variances, in storage order,
/// into `w`.
///
/// With `PREP` and both arrays 4-aligned (a model at an aligned address) the 25 variances
/// are first turned into standard deviations in one [`Draw::prepare`] (on the Cortex-M4 with
/// `HwSqrt`, in FPU registers) and the means are read as `f32` words; otherwise from bytes,
/// one square root per draw. The same draws and bits either way. (`infer` passes `true` on
/// 32-bit Arm only, where it is faster.)
#[inline(always)]
pub fn draw_kernel<D: Draw + Clone, const PREP: bool>(
    mean: &[u8],
    var: &[u8],
    d: &mut D,
    w: &mut [[f32; K]; K],
) {
    // A local copy keeps a generator's state in registers during the 25 draws.
    let mut local = d.clone();
    let aligned = (
        bytemuck::try_cast_slice::<u8, f32>(mean),
        bytemuck::try_cast_slice::<u8, f32>(var),
    );
    if let (true, Ok(m), Ok(v)) = (PREP, aligned.0, aligned.1) {
        // The prepared values go into `w` itself, each replaced by its draw (no buffer to
        // zero).
        D::prepare(v, w.as_flattened_mut());
        for (row, m) in w.iter_mut().zip(m.chunks_exact(K)) {
            let (Ok(&[m0, m1, m2, m3, m4]), &mut [s0, s1, s2, s3, s4]) =
                (<&[f32; K]>::try_from(m), &mut *row)
            else {
                continue; // unreachable: exact chunks
            };
            // Written out: a loop around the draws is not unrolled.
            *row = [
                local.draw_prepared(m0, s0),
                local.draw_prepared(m1, s1),
                local.draw_prepared(m2, s2),
                local.draw_prepared(m3, s3),
                local.draw_prepared(m4, s4),
            ];
        }
    } else {
        for (row, (m, v)) in w
            .iter_mut()
            .zip(mean.chunks_exact(4 * K).zip(var.chunks_exact(4 * K)))
        {
            let (Ok(m), Ok(v)) = (<&[u8; 4 * K]>::try_from(m), <&[u8; 4 * K]>::try_from(v)) else {
                continue; // unreachable: exact chunks
            };
            let ([m0, m1, m2, m3, m4], [v0, v1, v2, v3, v4]) = (f32x5(m), f32x5(v));
            *row = [
                local.draw(m0, v0),
                local.draw(m1, v1),
                local.draw(m2, v2),
                local.draw(m3, v3),
                local.draw(m4, v4),
            ];
        }
    }
    *d = local;
}

/// Five little-endian `f32`.
#[inline(always)]
fn f32x5(b: &[u8; 4 * K]) -> [f32; K] {
    let mut out = [0f32; K];
    for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
        *o = le_f32(c);
    }
    out
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

    /// Both ways of drawing a kernel (prepared standard deviations from aligned words, and one
    /// square root per draw from bytes) give the same bits and leave the generator in the same
    /// state.
    #[test]
    fn kernel_draws_agree_prepared_or_not() {
        use crate::params::{MeanDraw, SampleDraw};
        use crate::rng::Rng;
        let mut words = [0u32; 51];
        for (k, v) in words.iter_mut().enumerate() {
            *v = if k < 25 {
                (k as f32 * 0.03 - 0.4).to_bits()
            } else {
                (0.001 * (k % 7 + 1) as f32).to_bits()
            };
        }
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let (mean, var) = (&bytes[..100], &bytes[100..200]);
        assert!(bytemuck::try_cast_slice::<u8, f32>(var).is_ok(), "aligned");
        let (mut a, mut b) = ([[0f32; K]; K], [[1f32; K]; K]);
        let mut da = SampleDraw::new(Rng::seed_from_u64(4));
        let mut db = SampleDraw::new(Rng::seed_from_u64(4));
        draw_kernel::<_, true>(mean, var, &mut da, &mut a);
        draw_kernel::<_, false>(mean, var, &mut db, &mut b);
        assert_eq!(
            a.map(|r| r.map(f32::to_bits)),
            b.map(|r| r.map(f32::to_bits))
        );
        assert_eq!(da.into_rng(), db.into_rng());
        assert_ne!(a[0][0], f32::from_bits(words[0]), "drawn, not the mean");
        draw_kernel::<_, true>(mean, var, &mut MeanDraw, &mut a);
        assert_eq!(a[2][3], f32::from_bits(words[13]));
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
        // conv1's shape too.
        let mut big = [[0f32; 28]; 28];
        big.as_flattened_mut().iter_mut().for_each(|v| *v = next());
        let mut rows = [[-0.5f32; 24]; 24];
        conv5x5_acc_rows(&big, &w, &mut rows);
        let mut pixels = [[-0.5f32; 24]; 24];
        conv5x5_acc_pixels(&big, &w, &mut pixels);
        let mut pairs = [[-0.5f32; 24]; 24];
        conv5x5_acc_pairs(&big, &w, &mut pairs);
        assert_eq!(
            pairs.map(|r| r.map(f32::to_bits)),
            pixels.map(|r| r.map(f32::to_bits))
        );
        let expected_big = reference::<28, 28, 24, 24>(&big, &w, -0.5);
        for ((a, b), e) in rows
            .as_flattened()
            .iter()
            .zip(pixels.as_flattened())
            .zip(expected_big.as_flattened())
        {
            assert_eq!(a.to_bits(), e.to_bits());
            assert_eq!(b.to_bits(), e.to_bits());
        }
        // Both loop nestings, whichever this target uses.
        let mut rows = [[0.25f32; 8]; 8];
        conv5x5_acc_rows(&input, &w, &mut rows);
        let mut pixels = [[0.25f32; 8]; 8];
        conv5x5_acc_pixels(&input, &w, &mut pixels);
        let mut pairs = [[0.25f32; 8]; 8];
        conv5x5_acc_pairs(&input, &w, &mut pairs);
        assert_eq!(
            pairs.map(|r| r.map(f32::to_bits)),
            pixels.map(|r| r.map(f32::to_bits))
        );
        // An odd width (the last output alone).
        let mut odd_in = [[0f32; 7]; 6];
        odd_in
            .as_flattened_mut()
            .iter_mut()
            .for_each(|v| *v = next());
        let mut odd = [[0.125f32; 3]; 2];
        conv5x5_acc_pairs(&odd_in, &w, &mut odd);
        let odd_expected = reference::<6, 7, 2, 3>(&odd_in, &w, 0.125);
        for (a, e) in odd.iter().zip(&odd_expected) {
            for (a, e) in a.iter().zip(e) {
                assert_eq!(a.to_bits(), e.to_bits());
            }
        }
        for ((a, b), e) in rows
            .as_flattened()
            .iter()
            .zip(pixels.as_flattened())
            .zip(expected.as_flattened())
        {
            assert_eq!(a.to_bits(), e.to_bits());
            assert_eq!(b.to_bits(), e.to_bits());
        }
    }
}
