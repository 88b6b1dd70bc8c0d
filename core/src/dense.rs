//! Fully-connected layers on fixed-size arrays, with weights read in place as little-endian
//! bytes in `[out][in]` order.
//!
//! Every dot product `Σ_i w_i·x_i` is summed in [`LANES`] interleaved partial sums: term `i`
//! goes to lane `i mod 8` in increasing `i`, and the lanes are then combined as
//! `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`. This order is fixed on every target
//! (it is part of the bit-exactness contract) and lets hosts use SIMD and the Cortex-M4 keep
//! eight independent accumulators in registers.

use crate::format::le_f32;
use crate::gauss::standard_normal;
use crate::params::{Draw, Params, Sqrt};
use crate::rng::Rng;

/// Number of interleaved partial sums in a dot product.
pub const LANES: usize = 8;

#[inline(always)]
fn combine(l: [f32; LANES]) -> f32 {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = l;
    ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
}

/// Eight little-endian `f32`.
#[inline(always)]
fn f32x8(b: &[u8; 4 * LANES]) -> [f32; LANES] {
    let mut out = [0f32; LANES];
    for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
        *o = le_f32(c);
    }
    out
}

/// `Σ_i draw(mean_i, var_i)·x_i` in the lane order, the weights drawn in increasing `i`.
///
/// Blocks of [`LANES`] weights are fixed-size arrays and the lanes a local array, so the
/// Cortex-M4 build unrolls a block and keeps the eight partial sums in registers.
#[inline(always)]
fn dot_drawn<D: Draw>(mean: &[u8], var: &[u8], x: &[f32], d: &mut D) -> f32 {
    let mut lanes = [0f32; LANES];
    let m = mean.chunks_exact(4 * LANES);
    let v = var.chunks_exact(4 * LANES);
    let xs = x.chunks_exact(LANES);
    let (mr, vr, xr) = (m.remainder(), v.remainder(), xs.remainder());
    for ((mb, vb), xb) in m.zip(v).zip(xs) {
        let (Ok(mb), Ok(vb), Ok(&[x0, x1, x2, x3, x4, x5, x6, x7])) = (
            <&[u8; 4 * LANES]>::try_from(mb),
            <&[u8; 4 * LANES]>::try_from(vb),
            <&[f32; LANES]>::try_from(xb),
        ) else {
            continue; // unreachable: exact chunks
        };
        let [m0, m1, m2, m3, m4, m5, m6, m7] = f32x8(mb);
        let [v0, v1, v2, v3, v4, v5, v6, v7] = f32x8(vb);
        let [l0, l1, l2, l3, l4, l5, l6, l7] = &mut lanes;
        // Written out: a loop around the draws is not unrolled (too large), and the lanes
        // would then live in memory.
        *l0 += d.draw(m0, v0) * x0;
        *l1 += d.draw(m1, v1) * x1;
        *l2 += d.draw(m2, v2) * x2;
        *l3 += d.draw(m3, v3) * x3;
        *l4 += d.draw(m4, v4) * x4;
        *l5 += d.draw(m5, v5) * x5;
        *l6 += d.draw(m6, v6) * x6;
        *l7 += d.draw(m7, v7) * x7;
    }
    for ((l, (mw, vw)), &xi) in lanes
        .iter_mut()
        .zip(mr.chunks_exact(4).zip(vr.chunks_exact(4)))
        .zip(xr)
    {
        *l += d.draw(le_f32(mw), le_f32(vw)) * xi;
    }
    combine(lanes)
}

/// `(Σ_i mean_i·x_i, Σ_i var_i·x2_i)` in the lane order.
#[inline(always)]
fn dot_pair(mean: &[u8], var: &[u8], x: &[f32], x2: &[f32]) -> (f32, f32) {
    let mut lm = [0f32; LANES];
    let mut lv = [0f32; LANES];
    let m = mean.chunks_exact(4 * LANES);
    let v = var.chunks_exact(4 * LANES);
    let xs = x.chunks_exact(LANES);
    let x2s = x2.chunks_exact(LANES);
    let (mr, vr, xr, x2r) = (
        m.remainder(),
        v.remainder(),
        xs.remainder(),
        x2s.remainder(),
    );
    for (((mb, vb), xb), x2b) in m.zip(v).zip(xs).zip(x2s) {
        for ((((a, b), mw), vw), (&xi, &x2i)) in lm
            .iter_mut()
            .zip(lv.iter_mut())
            .zip(mb.chunks_exact(4))
            .zip(vb.chunks_exact(4))
            .zip(xb.iter().zip(x2b))
        {
            *a += le_f32(mw) * xi;
            *b += le_f32(vw) * x2i;
        }
    }
    for ((((a, b), mw), vw), (&xi, &x2i)) in lm
        .iter_mut()
        .zip(lv.iter_mut())
        .zip(mr.chunks_exact(4))
        .zip(vr.chunks_exact(4))
        .zip(xr.iter().zip(x2r))
    {
        *a += le_f32(mw) * xi;
        *b += le_f32(vw) * x2i;
    }
    (combine(lm), combine(lv))
}

/// `out[o] = b_o + Σ_i w_oi·x_i` with every bias and weight drawn by `d`: first the `OUT`
/// biases in order, then the weights in storage order (`o` major, `i` minor).
// Not inlined: called with a pointer into `Scratch`, the loads get small offsets
// (inlined into `predict`, the Cortex-M4 needs an address computation per load).
#[inline(never)]
pub fn dense<
    D: Draw + Clone,
    const IN: usize,
    const OUT: usize,
    const WB: usize,
    const BB: usize,
>(
    x: &[f32; IN],
    p: &Params<'_, WB, BB>,
    d: &mut D,
    out: &mut [f32; OUT],
) {
    const { assert!(WB == 4 * IN * OUT && BB == 4 * OUT && IN > 0) };
    // A local copy keeps a generator's state in registers (`d` itself is behind a pointer).
    let mut local = d.clone();
    crate::params::draw_into(p.bias_mean, p.bias_var, &mut local, out);
    for (o, (m, v)) in out.iter_mut().zip(
        p.weight_mean
            .chunks_exact(4 * IN)
            .zip(p.weight_var.chunks_exact(4 * IN)),
    ) {
        *o += dot_drawn(m, v, x, &mut local);
    }
    *d = local;
}

/// Local reparameterisation: `out[o] = μ_o + S::sqrt(v_o)·ε_o` with
/// `μ_o = b_μ + Σ_i μ_oi·x_i` and `v_o = b_var + Σ_i var_oi·x_i²`, one standard normal per
/// output drawn in increasing `o`.
// Not inlined: called with a pointer into `Scratch`, the loads get small offsets
// (inlined into `predict`, the Cortex-M4 needs an address computation per load).
#[inline(never)]
pub fn dense_local_reparam<
    S: Sqrt,
    const IN: usize,
    const OUT: usize,
    const WB: usize,
    const BB: usize,
>(
    x: &[f32; IN],
    p: &Params<'_, WB, BB>,
    rng: &mut Rng,
    out: &mut [f32; OUT],
) {
    const { assert!(WB == 4 * IN * OUT && BB == 4 * OUT && IN > 0) };
    let mut x2 = [0f32; IN];
    for (s, &v) in x2.iter_mut().zip(x) {
        *s = v * v;
    }
    for (o, (((m, v), bm), bv)) in out.iter_mut().zip(
        p.weight_mean
            .chunks_exact(4 * IN)
            .zip(p.weight_var.chunks_exact(4 * IN))
            .zip(p.bias_mean.chunks_exact(4))
            .zip(p.bias_var.chunks_exact(4)),
    ) {
        let (sm, sv) = dot_pair(m, v, x, &x2);
        let mean = le_f32(bm) + sm;
        let var = le_f32(bv) + sv;
        *o = mean + S::sqrt(var) * standard_normal(rng);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::params::{MeanDraw, SampleDraw};

    fn bytes<const B: usize>(v: &[f32]) -> [u8; B] {
        let mut out = [0u8; B];
        for (o, x) in out.chunks_exact_mut(4).zip(v) {
            o.copy_from_slice(&x.to_le_bytes());
        }
        out
    }

    // 12 inputs (one full block of 8 and a remainder of 4), 2 outputs.
    const X: [f32; 12] = [
        1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
    ];

    fn weights() -> Vec<f32> {
        (0..24).map(|k| (k as f32 - 11.0) * 0.5).collect()
    }

    #[test]
    fn mean_forward_matches_hand_sums() {
        let w = weights();
        let wm: [u8; 96] = bytes(&w);
        let wv: [u8; 96] = bytes(&[1.0; 24]);
        let bm: [u8; 8] = bytes(&[0.5, -1.0]);
        let bv: [u8; 8] = bytes(&[1.0, 1.0]);
        let p = Params {
            weight_mean: &wm,
            weight_var: &wv,
            bias_mean: &bm,
            bias_var: &bv,
        };
        let mut out = [0f32; 2];
        dense(&X, &p, &mut MeanDraw, &mut out);
        // Integers and halves: every partial sum is exact, so any order gives these.
        let e0: f32 = 0.5 + (0..12).map(|i| w[i] * X[i]).sum::<f32>();
        let e1: f32 = -1.0 + (0..12).map(|i| w[12 + i] * X[i]).sum::<f32>();
        assert_eq!(out, [e0, e1]);
        assert_eq!(out, [-142.5, 324.0]);
    }

    #[test]
    fn lane_order_is_the_documented_one() {
        // Values whose sum depends on the order: lane 0 gets 1e8 then −1e8, lane 1 gets 1.
        let mut x = [0f32; 16];
        x[0] = 1e8;
        x[8] = -1e8;
        x[1] = 1.0;
        x[9] = 1.0;
        let wm: [u8; 64] = bytes(&[1.0; 16]);
        let got = dot_drawn(&wm, &wm, &x, &mut MeanDraw);
        // Lanes: l0 = (0 + 1e8) − 1e8 = 0, l1 = 2: total 2. Left-to-right would give 0.
        assert_eq!(got, 2.0);
        let x2 = x.map(|v| v * v);
        let (m, v) = dot_pair(&wm, &wm, &x, &x2);
        assert_eq!(m, 2.0);
        assert_eq!(v, 2e16); // the 2 is lost in lane 0's 2e16 only after combining
        let mut y = [0f32; 16];
        y[0] = 1e8;
        y[1] = 1.0;
        y[8] = 1.0;
        y[9] = -1e8;
        // Lanes 0 and 1 each lose their 1 against ±1e8.
        assert_eq!(dot_drawn(&wm, &wm, &y, &mut MeanDraw), 0.0);
    }

    #[test]
    fn sampled_forward_draws_biases_then_weights_in_storage_order() {
        let w = weights();
        let wm: [u8; 96] = bytes(&w);
        let var: Vec<f32> = (0..24).map(|k| 0.01 * k as f32).collect();
        let wv: [u8; 96] = bytes(&var);
        let bm: [u8; 8] = bytes(&[0.5, -1.0]);
        let bv: [u8; 8] = bytes(&[0.04, 0.09]);
        let p = Params {
            weight_mean: &wm,
            weight_var: &wv,
            bias_mean: &bm,
            bias_var: &bv,
        };
        let mut out = [0f32; 2];
        let mut d = SampleDraw::new(Rng::seed_from_u64(5));
        dense(&X, &p, &mut d, &mut out);

        let mut s = SampleDraw::new(Rng::seed_from_u64(5));
        let b = [s.draw(0.5, 0.04), s.draw(-1.0, 0.09)];
        for o in 0..2 {
            let ws: Vec<f32> = (0..12)
                .map(|i| s.draw(w[12 * o + i], var[12 * o + i]))
                .collect();
            let mut lanes = [0f32; LANES];
            for (i, (wi, xi)) in ws.iter().zip(X).enumerate() {
                lanes[i % LANES] += wi * xi;
            }
            assert_eq!(out[o].to_bits(), (b[o] + combine(lanes)).to_bits());
        }
        assert_eq!(d.into_rng(), s.into_rng());
    }

    #[test]
    fn local_reparam_draws_one_normal_per_output() {
        let w = weights();
        let wm: [u8; 96] = bytes(&w);
        let wv: [u8; 96] = bytes(&[0.25; 24]);
        let bm: [u8; 8] = bytes(&[0.5, -1.0]);
        let bv: [u8; 8] = bytes(&[1.0, 0.0]);
        let p = Params {
            weight_mean: &wm,
            weight_var: &wv,
            bias_mean: &bm,
            bias_var: &bv,
        };
        let mut out = [0f32; 2];
        let mut rng = Rng::seed_from_u64(6);
        dense_local_reparam::<crate::params::LibmSqrt, 12, 2, 96, 8>(&X, &p, &mut rng, &mut out);
        let mut r = Rng::seed_from_u64(6);
        let e = [standard_normal(&mut r), standard_normal(&mut r)];
        assert_eq!(rng, r);
        // Σ x² = 650; variances 1 + 0.25·650 and 0 + 0.25·650.
        let sd = [libm::sqrtf(163.5), libm::sqrtf(162.5)];
        assert_eq!(out[0], -142.5 + sd[0] * e[0]);
        assert_eq!(out[1], 324.0 + sd[1] * e[1]);
    }
}
