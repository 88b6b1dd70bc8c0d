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
use crate::params::{Draw, Params, Sqrt, PREPARE};
use crate::rng::Rng;

/// Number of interleaved partial sums in a dot product.
pub const LANES: usize = 8;

#[inline(always)]
fn combine(l: [f32; LANES]) -> f32 {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = l;
    ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
}

/// Where a layer's `f32` parameters are read from: little-endian bytes at any address
/// (`u8`, [`WIDTH`](Elem::WIDTH) 4), or `f32` words, which the model format stores 4-aligned
/// (`f32`, width 1; on the Cortex-M4 one `vldr` each instead of an `ldr` and a `vmov`).
/// Both give the same values, so the results are the same bits.
pub trait Elem: Copy {
    /// Elements per `f32`.
    const WIDTH: usize;
    /// Eight `f32` from `WIDTH·8` elements (zeros if `c` has another length).
    fn block(c: &[Self]) -> [f32; LANES];
    /// One `f32` from `WIDTH` elements (zero if `c` has another length).
    fn one(c: &[Self]) -> f32;
    /// The `k`-th `f32` of `c` (zero if `c` is too short).
    #[inline(always)]
    fn at(c: &[Self], k: usize) -> f32 {
        Self::one(c.get(k * Self::WIDTH..(k + 1) * Self::WIDTH).unwrap_or(&[]))
    }
}

impl Elem for u8 {
    const WIDTH: usize = 4;
    #[inline(always)]
    fn block(c: &[u8]) -> [f32; LANES] {
        let mut out = [0f32; LANES];
        for (o, b) in out.iter_mut().zip(c.chunks_exact(4)) {
            *o = le_f32(b);
        }
        out
    }
    #[inline(always)]
    fn one(c: &[u8]) -> f32 {
        le_f32(c)
    }
}

impl Elem for f32 {
    const WIDTH: usize = 1;
    #[inline(always)]
    fn block(c: &[f32]) -> [f32; LANES] {
        <[f32; LANES]>::try_from(c).unwrap_or([0.0; LANES])
    }
    #[inline(always)]
    fn one(c: &[f32]) -> f32 {
        c.first().copied().unwrap_or(0.0)
    }
}

/// The `f32` words of a parameter array if it is 4-aligned in memory (always true for a model
/// file loaded at a 4-aligned address: the format aligns every array within the file).
#[inline(always)]
fn words(b: &[u8]) -> Option<&[f32]> {
    bytemuck::try_cast_slice(b).ok()
}

/// `Σ_i draw(mean_i, var_i)·x_i` in the lane order, the weights drawn in increasing `i`.
///
/// Blocks of [`LANES`] weights are fixed-size arrays and the lanes a local array, so the
/// Cortex-M4 build unrolls a block and keeps the eight partial sums in registers.
#[inline(always)]
fn dot_drawn<T: Elem, D: Draw>(mean: &[T], var: &[T], x: &[f32], d: &mut D) -> f32 {
    let mut lanes = [0f32; LANES];
    let m = mean.chunks_exact(T::WIDTH * LANES);
    let v = var.chunks_exact(T::WIDTH * LANES);
    let xs = x.chunks_exact(LANES);
    let (mr, vr, xr) = (m.remainder(), v.remainder(), xs.remainder());
    for ((mb, vb), xb) in m.zip(v).zip(xs) {
        let Ok(&[x0, x1, x2, x3, x4, x5, x6, x7]) = <&[f32; LANES]>::try_from(xb) else {
            continue; // unreachable: exact chunks
        };
        let [m0, m1, m2, m3, m4, m5, m6, m7] = T::block(mb);
        let [l0, l1, l2, l3, l4, l5, l6, l7] = &mut lanes;
        // Written out: a loop around the draws is not unrolled (too large), and the lanes
        // would then live in memory. Means and inputs are read for the whole block, each
        // variance next to its draw: on the Cortex-M4 (where `vsqrt` goes through a core
        // register) this spills less, 34.0 M instructions per `Weights` image instead of
        // 34.6 M (all three read next to the draw: 38.1 M; means too: 35.0 M).
        let u = |k: usize| T::at(vb, k);
        *l0 += d.draw(m0, u(0)) * x0;
        *l1 += d.draw(m1, u(1)) * x1;
        *l2 += d.draw(m2, u(2)) * x2;
        *l3 += d.draw(m3, u(3)) * x3;
        *l4 += d.draw(m4, u(4)) * x4;
        *l5 += d.draw(m5, u(5)) * x5;
        *l6 += d.draw(m6, u(6)) * x6;
        *l7 += d.draw(m7, u(7)) * x7;
    }
    for ((l, (mw, vw)), &xi) in lanes
        .iter_mut()
        .zip(mr.chunks_exact(T::WIDTH).zip(vr.chunks_exact(T::WIDTH)))
        .zip(xr)
    {
        *l += d.draw(T::one(mw), T::one(vw)) * xi;
    }
    combine(lanes)
}

/// `(Σ_i mean_i·x_i, Σ_i var_i·x2_i)` in the lane order.
#[inline(always)]
fn dot_pair<T: Elem>(mean: &[T], var: &[T], x: &[f32], x2: &[f32]) -> (f32, f32) {
    let mut lm = [0f32; LANES];
    let mut lv = [0f32; LANES];
    let m = mean.chunks_exact(T::WIDTH * LANES);
    let v = var.chunks_exact(T::WIDTH * LANES);
    let xs = x.chunks_exact(LANES);
    let x2s = x2.chunks_exact(LANES);
    let (mr, vr, xr, x2r) = (
        m.remainder(),
        v.remainder(),
        xs.remainder(),
        x2s.remainder(),
    );
    for (((mb, vb), xb), x2b) in m.zip(v).zip(xs).zip(x2s) {
        let (mb, vb) = (T::block(mb), T::block(vb));
        for ((((a, b), &mw), &vw), (&xi, &x2i)) in lm
            .iter_mut()
            .zip(lv.iter_mut())
            .zip(&mb)
            .zip(&vb)
            .zip(xb.iter().zip(x2b))
        {
            *a += mw * xi;
            *b += vw * x2i;
        }
    }
    for ((((a, b), mw), vw), (&xi, &x2i)) in lm
        .iter_mut()
        .zip(lv.iter_mut())
        .zip(mr.chunks_exact(T::WIDTH))
        .zip(vr.chunks_exact(T::WIDTH))
        .zip(xr.iter().zip(x2r))
    {
        *a += T::one(mw) * xi;
        *b += T::one(vw) * x2i;
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
    match (words(p.weight_mean), words(p.weight_var)) {
        (Some(m), Some(v)) => rows_drawn::<f32, D, IN>(m, v, x, &mut local, out),
        // By value: a `&mut local` passed to a call would keep `local` in memory in the
        // fast arm too (on the Cortex-M4, 1.7 M more instructions per `Weights` image).
        _ => local = rows_drawn_bytes(p.weight_mean, p.weight_var, x, local, out),
    }
    *d = local;
}

/// `out[o] += Σ_i draw(w_oi)·x_i`, rows in order.
#[inline(always)]
pub(crate) fn rows_drawn<T: Elem, D: Draw, const IN: usize>(
    mean: &[T],
    var: &[T],
    x: &[f32; IN],
    d: &mut D,
    out: &mut [f32],
) {
    for (o, (m, v)) in out.iter_mut().zip(
        mean.chunks_exact(T::WIDTH * IN)
            .zip(var.chunks_exact(T::WIDTH * IN)),
    ) {
        *o += dot_drawn(m, v, x, d);
    }
}

/// The two values of weight `k` of block `b`: from its prepared value (`PREP`, see
/// [`Draw::prepare`]) or from its variance.
#[inline(always)]
fn pair<T: Elem, D: Draw, const PREP: bool>(d: &mut D, mb: &[T], vb: &[T], k: usize) -> (f32, f32) {
    if PREP {
        d.draw2_prepared(T::at(mb, k), T::at(vb, k))
    } else {
        d.draw2(T::at(mb, k), T::at(vb, k))
    }
}

/// Half of a pair of dot products: the terms in lanes `H·4 .. H·4+4` (`i mod 8` in that
/// range), in increasing `i`, each weight pair from one [`Draw::draw2_prepared`] (`var`
/// holds the values of [`Draw::prepare`]); returns those four
/// lanes of each sample. Four lanes per sample keep eight accumulators in registers on the
/// Cortex-M4 (sixteen spilled).
#[inline(always)]
fn half_drawn2<T: Elem, D: Draw, const H: usize, const PREP: bool>(
    mean: &[T],
    var: &[T],
    xa: &[f32],
    xb: &[f32],
    d: &mut D,
) -> ([f32; 4], [f32; 4]) {
    let mut la = [0f32; 4];
    let mut lb = [0f32; 4];
    let m = mean.chunks_exact(T::WIDTH * LANES);
    let v = var.chunks_exact(T::WIDTH * LANES);
    let xas = xa.chunks_exact(LANES);
    let xbs = xb.chunks_exact(LANES);
    let (mr, vr, xar, xbr) = (
        m.remainder(),
        v.remainder(),
        xas.remainder(),
        xbs.remainder(),
    );
    for (((mb, vb), xab), xbb) in m.zip(v).zip(xas).zip(xbs) {
        let (Some(xab), Some(xbb)) = (xab.get(4 * H..4 * H + 4), xbb.get(4 * H..4 * H + 4)) else {
            continue; // unreachable: blocks of 8
        };
        let ([a0, a1, a2, a3], [b0, b1, b2, b3]) = (&mut la, &mut lb);
        let (Ok(&[x0, x1, x2, x3]), Ok(&[y0, y1, y2, y3])) =
            (<&[f32; 4]>::try_from(xab), <&[f32; 4]>::try_from(xbb))
        else {
            continue; // unreachable: 4 elements
        };
        let (w0, u0) = pair::<T, D, PREP>(d, mb, vb, 4 * H);
        *a0 += w0 * x0;
        *b0 += u0 * y0;
        let (w1, u1) = pair::<T, D, PREP>(d, mb, vb, 4 * H + 1);
        *a1 += w1 * x1;
        *b1 += u1 * y1;
        let (w2, u2) = pair::<T, D, PREP>(d, mb, vb, 4 * H + 2);
        *a2 += w2 * x2;
        *b2 += u2 * y2;
        let (w3, u3) = pair::<T, D, PREP>(d, mb, vb, 4 * H + 3);
        *a3 += w3 * x3;
        *b3 += u3 * y3;
    }
    for (((a, b), (mw, vw)), (&xai, &xbi)) in la
        .iter_mut()
        .zip(lb.iter_mut())
        .zip(
            mr.chunks_exact(T::WIDTH)
                .zip(vr.chunks_exact(T::WIDTH))
                .skip(4 * H),
        )
        .zip(xar.iter().zip(xbr).skip(4 * H))
    {
        let (wa, wb) = if PREP {
            d.draw2_prepared(T::one(mw), T::one(vw))
        } else {
            d.draw2(T::one(mw), T::one(vw))
        };
        *a += wa * xai;
        *b += wb * xbi;
    }
    (la, lb)
}

/// `Σ_i w_i·xa_i` and `Σ_i w'_i·xb_i` for two samples at once, each pair of weights from
/// one [`Draw::draw2`], each sum in the lane order. Draw order: first the terms of lanes 0–3
/// (`i mod 8 < 4`) in increasing `i`, then those of lanes 4–7 in increasing `i`.
#[inline(always)]
fn dot_drawn2<T: Elem, D: Draw, const PREP: bool>(
    mean: &[T],
    var: &[T],
    xa: &[f32],
    xb: &[f32],
    d: &mut D,
) -> (f32, f32) {
    let ([a0, a1, a2, a3], [b0, b1, b2, b3]) = half_drawn2::<T, D, 0, PREP>(mean, var, xa, xb, d);
    // `combine`'s left half, summed before the second loop and kept in memory through it.
    let mut left = [(a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)];
    core::hint::black_box(&mut left);
    let ([a4, a5, a6, a7], [b4, b5, b6, b7]) = half_drawn2::<T, D, 1, PREP>(mean, var, xa, xb, d);
    let [ha, hb] = left;
    (ha + ((a4 + a5) + (a6 + a7)), hb + ((b4 + b5) + (b6 + b7)))
}

/// [`dense`] for two Monte Carlo samples at once, inputs `xa`, `xb`, outputs `outa`, `outb`:
/// every bias, then every weight in storage order, drawn with [`Draw::draw2`] (the value for
/// sample `a` first, then for `b`, sharing the parameter's loads and square root). Each
/// output's sum has the order of [`dense`].
#[inline(never)]
pub fn dense2<
    D: Draw + Clone,
    const IN: usize,
    const OUT: usize,
    const WB: usize,
    const BB: usize,
>(
    xa: &[f32; IN],
    xb: &[f32; IN],
    p: &Params<'_, WB, BB>,
    d: &mut D,
    outa: &mut [f32; OUT],
    outb: &mut [f32; OUT],
) {
    const { assert!(WB == 4 * IN * OUT && BB == 4 * OUT && IN > 0) };
    let mut local = d.clone();
    for ((a, b), (m, v)) in outa
        .iter_mut()
        .zip(outb.iter_mut())
        .zip(p.bias_mean.chunks_exact(4).zip(p.bias_var.chunks_exact(4)))
    {
        (*a, *b) = local.draw2(le_f32(m), le_f32(v));
    }
    match (words(p.weight_mean), words(p.weight_var)) {
        (Some(m), Some(v)) => {
            if PREPARE {
                // One row's prepared variances (standard deviations when sampling).
                let mut row = [0f32; IN];
                rows_drawn2::<D, true>(m, v, xa, xb, &mut local, outa, outb, &mut row);
            } else {
                rows_drawn2::<D, false>(m, v, xa, xb, &mut local, outa, outb, &mut []);
            }
        }
        _ => local = rows_drawn2_bytes(p.weight_mean, p.weight_var, xa, xb, local, outa, outb),
    }
    *d = local;
}

/// `outa[o] += Σ_i wa_oi·xa_i`, `outb[o] += Σ_i wb_oi·xb_i`, rows in order. Each row's
/// variances are first turned into `prepared` (`xa.len()` values) by [`Draw::prepare`]: on
/// the Cortex-M4 the square roots of a row then stay in FPU registers (`HwSqrt`'s
/// `sqrt_slice`), and the drawing loop reads `σ` with one load, keeping fewer values in
/// core registers.
// One copy for every layer shape (slices, not arrays): ≈ 9 KB less Cortex-M4 code than one
// per layer, for a loop bound read at run time.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn rows_drawn2<D: Draw + Clone, const PREP: bool>(
    mean: &[f32],
    var: &[f32],
    xa: &[f32],
    xb: &[f32],
    d: &mut D,
    outa: &mut [f32],
    outb: &mut [f32],
    prepared: &mut [f32],
) {
    // A local copy keeps the generator in registers (`d` is behind a pointer).
    let mut local = d.clone();
    let row = xa.len().max(1);
    for ((a, b), (m, v)) in outa
        .iter_mut()
        .zip(outb.iter_mut())
        .zip(mean.chunks_exact(row).zip(var.chunks_exact(row)))
    {
        let (sa, sb) = if PREP {
            D::prepare(v, prepared);
            dot_drawn2::<f32, D, true>(m, prepared, xa, xb, &mut local)
        } else {
            dot_drawn2::<f32, D, false>(m, v, xa, xb, &mut local)
        };
        *a += sa;
        *b += sb;
    }
    *d = local;
}

/// `rows_drawn2` for parameters at an address that is not 4-aligned (as `rows_drawn_bytes`).
#[inline(never)]
fn rows_drawn2_bytes<D: Draw>(
    mean: &[u8],
    var: &[u8],
    xa: &[f32],
    xb: &[f32],
    mut d: D,
    outa: &mut [f32],
    outb: &mut [f32],
) -> D {
    let row = 4 * xa.len();
    for ((oa, ob), (m, v)) in outa
        .iter_mut()
        .zip(outb.iter_mut())
        .zip(mean.chunks_exact(row).zip(var.chunks_exact(row)))
    {
        let mut la = [0f32; LANES];
        let mut lb = [0f32; LANES];
        for half in 0..2 {
            for (i, ((mw, vw), (&xai, &xbi))) in m
                .chunks_exact(4)
                .zip(v.chunks_exact(4))
                .zip(xa.iter().zip(xb))
                .enumerate()
                .filter(|(i, _)| (i % LANES) / 4 == half)
            {
                let (wa, wb) = d.draw2(le_f32(mw), le_f32(vw));
                if let (Some(a), Some(b)) = (la.get_mut(i % LANES), lb.get_mut(i % LANES)) {
                    *a += wa * xai;
                    *b += wb * xbi;
                }
            }
        }
        *oa += combine(la);
        *ob += combine(lb);
    }
    d
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
    match (words(p.weight_mean), words(p.weight_var)) {
        (Some(m), Some(v)) => {
            rows_pair::<S, f32, IN>(m, v, p.bias_mean, p.bias_var, x, &x2, rng, out)
        }
        _ => rows_pair_bytes::<S, WB, BB>(p, x, &x2, rng, out),
    }
}

/// `rows_drawn` for parameters at an address that is not 4-aligned (a model decoded from an
/// unaligned buffer): the same draws and sums in the same order, in compact code (one copy for
/// every layer shape; a firmware with its model at an aligned address never runs it).
#[inline(never)]
fn rows_drawn_bytes<D: Draw>(mean: &[u8], var: &[u8], x: &[f32], mut d: D, out: &mut [f32]) -> D {
    let row = 4 * x.len();
    for (o, (m, v)) in out
        .iter_mut()
        .zip(mean.chunks_exact(row).zip(var.chunks_exact(row)))
    {
        let mut lanes = [0f32; LANES];
        for (i, ((mw, vw), &xi)) in m.chunks_exact(4).zip(v.chunks_exact(4)).zip(x).enumerate() {
            if let Some(l) = lanes.get_mut(i % LANES) {
                *l += d.draw(le_f32(mw), le_f32(vw)) * xi;
            }
        }
        *o += combine(lanes);
    }
    d
}

/// `rows_pair` for parameters at an address that is not 4-aligned, as `rows_drawn_bytes`.
#[inline(never)]
fn rows_pair_bytes<S: Sqrt, const WB: usize, const BB: usize>(
    p: &Params<'_, WB, BB>,
    x: &[f32],
    x2: &[f32],
    rng: &mut Rng,
    out: &mut [f32],
) {
    let row = 4 * x.len();
    for (o, (((m, v), bm), bv)) in out.iter_mut().zip(
        p.weight_mean
            .chunks_exact(row)
            .zip(p.weight_var.chunks_exact(row))
            .zip(p.bias_mean.chunks_exact(4))
            .zip(p.bias_var.chunks_exact(4)),
    ) {
        let mut lm = [0f32; LANES];
        let mut lv = [0f32; LANES];
        for (i, ((mw, vw), (&xi, &x2i))) in m
            .chunks_exact(4)
            .zip(v.chunks_exact(4))
            .zip(x.iter().zip(x2))
            .enumerate()
        {
            if let (Some(a), Some(b)) = (lm.get_mut(i % LANES), lv.get_mut(i % LANES)) {
                *a += le_f32(mw) * xi;
                *b += le_f32(vw) * x2i;
            }
        }
        let mean = le_f32(bm) + combine(lm);
        let var = le_f32(bv) + combine(lv);
        *o = mean + S::sqrt(var) * standard_normal(rng);
    }
}

/// The rows of [`dense_local_reparam`], in order.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn rows_pair<S: Sqrt, T: Elem, const IN: usize>(
    wm: &[T],
    wv: &[T],
    bias_mean: &[u8],
    bias_var: &[u8],
    x: &[f32; IN],
    x2: &[f32; IN],
    rng: &mut Rng,
    out: &mut [f32],
) {
    for (o, (((m, v), bm), bv)) in out.iter_mut().zip(
        wm.chunks_exact(T::WIDTH * IN)
            .zip(wv.chunks_exact(T::WIDTH * IN))
            .zip(bias_mean.chunks_exact(4))
            .zip(bias_var.chunks_exact(4)),
    ) {
        let (sm, sv) = dot_pair(m, v, x, x2);
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
        let got = dot_drawn(&wm[..], &wm[..], &x, &mut MeanDraw);
        // Lanes: l0 = (0 + 1e8) − 1e8 = 0, l1 = 2: total 2. Left-to-right would give 0.
        assert_eq!(got, 2.0);
        let x2 = x.map(|v| v * v);
        let (m, v) = dot_pair(&wm[..], &wm[..], &x, &x2);
        assert_eq!(m, 2.0);
        assert_eq!(v, 2e16); // the 2 is lost in lane 0's 2e16 only after combining
        let mut y = [0f32; 16];
        y[0] = 1e8;
        y[1] = 1.0;
        y[8] = 1.0;
        y[9] = -1e8;
        // Lanes 0 and 1 each lose their 1 against ±1e8.
        assert_eq!(dot_drawn(&wm[..], &wm[..], &y, &mut MeanDraw), 0.0);
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

    /// The same layer read from 4-aligned words and from bytes at an odd address gives the
    /// same bits and leaves the generator in the same state, in both sampled modes.
    #[test]
    fn aligned_words_and_unaligned_bytes_agree() {
        const IN: usize = 20; // two blocks of 8 and a remainder of 4
        const OUT: usize = 3;
        let w: Vec<f32> = (0..IN * OUT)
            .map(|k| ((k * 37) % 23) as f32 * 0.1 - 1.1)
            .collect();
        let var: Vec<f32> = (0..IN * OUT).map(|k| 0.001 * (1 + k % 7) as f32).collect();
        let b = [0.25f32, -0.5, 0.75];
        let bv = [0.01f32, 0.02, 0.03];
        let x: [f32; IN] = core::array::from_fn(|i| (i as f32 - 9.5) * 0.3);
        // Word-aligned storage, and the same bytes one past a word boundary.
        let put = |v: &[f32], buf: &mut Vec<u32>, shift: usize| -> (usize, usize) {
            let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
            let mut raw = vec![0u8; bytes.len() + 4];
            raw[shift..shift + bytes.len()].copy_from_slice(&bytes);
            buf.clear();
            buf.extend(
                raw.chunks_exact(4)
                    .map(|c| u32::from_ne_bytes(c.try_into().unwrap())),
            );
            (shift, bytes.len())
        };
        let run = |shift: usize| {
            let (mut a, mut c, mut e, mut f) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (s, n) = put(&w, &mut a, shift);
            put(&var, &mut c, shift);
            let (s2, n2) = put(&b, &mut e, shift);
            put(&bv, &mut f, shift);
            let wm: &[u8] = &bytemuck::cast_slice::<u32, u8>(&a)[s..s + n];
            let wv: &[u8] = &bytemuck::cast_slice::<u32, u8>(&c)[s..s + n];
            let bm: &[u8] = &bytemuck::cast_slice::<u32, u8>(&e)[s2..s2 + n2];
            let bvv: &[u8] = &bytemuck::cast_slice::<u32, u8>(&f)[s2..s2 + n2];
            assert_eq!(words(wm).is_some(), shift == 0);
            let p: Params<'_, { 4 * IN * OUT }, { 4 * OUT }> = Params {
                weight_mean: wm.try_into().unwrap(),
                weight_var: wv.try_into().unwrap(),
                bias_mean: bm.try_into().unwrap(),
                bias_var: bvv.try_into().unwrap(),
            };
            let mut out = [0f32; OUT];
            let mut d = SampleDraw::new(Rng::seed_from_u64(9));
            dense(&x, &p, &mut d, &mut out);
            let mut out_lr = [0f32; OUT];
            let mut rng = Rng::seed_from_u64(9);
            dense_local_reparam::<crate::params::LibmSqrt, IN, OUT, _, _>(
                &x,
                &p,
                &mut rng,
                &mut out_lr,
            );
            let mut out_mean = [0f32; OUT];
            dense(&x, &p, &mut MeanDraw, &mut out_mean);
            (
                out.map(f32::to_bits),
                d.into_rng(),
                out_lr.map(f32::to_bits),
                rng,
                out_mean,
            )
        };
        let aligned = run(0);
        for shift in 1..4 {
            assert_eq!(run(shift), aligned, "shift {shift}");
        }
        // The outputs depend on the draws (not all equal to the mean forward pass).
        assert_ne!(aligned.0, aligned.4.map(f32::to_bits));
    }

    /// `rows_drawn2` with prepared standard deviations (the Cortex-M4's way) and with one
    /// square root per pair (the host's) gives the same bits and generator state.
    #[test]
    fn rows_drawn2_prepared_or_not_agree() {
        const IN: usize = 20;
        const OUT: usize = 3;
        let m: Vec<f32> = (0..IN * OUT)
            .map(|k| ((k * 13) % 11) as f32 * 0.1 - 0.5)
            .collect();
        let v: Vec<f32> = (0..IN * OUT).map(|k| 0.003 * (1 + k % 4) as f32).collect();
        let xa: Vec<f32> = (0..IN).map(|i| i as f32 * 0.2 - 1.0).collect();
        let xb: Vec<f32> = (0..IN).map(|i| 0.5 - i as f32 * 0.05).collect();
        let run = |prep: bool| {
            let mut d = SampleDraw::new(Rng::seed_from_u64(31));
            let (mut oa, mut ob) = ([0.25f32; OUT], [-0.5f32; OUT]);
            let mut row = [0f32; IN];
            if prep {
                rows_drawn2::<_, true>(&m, &v, &xa, &xb, &mut d, &mut oa, &mut ob, &mut row);
            } else {
                rows_drawn2::<_, false>(&m, &v, &xa, &xb, &mut d, &mut oa, &mut ob, &mut []);
            }
            (oa.map(f32::to_bits), ob.map(f32::to_bits), d.into_rng())
        };
        assert_eq!(run(true), run(false));
    }

    /// `dense2` draws in the order `infer` documents (biases, then each row's lanes 0–3 and
    /// then 4–7, `ε_a` before `ε_b`, one σ for both), from aligned words and from bytes.
    #[test]
    fn dense2_follows_the_documented_order() {
        const IN: usize = 20; // two blocks of 8 and a remainder of 4
        const OUT: usize = 3;
        let w: Vec<f32> = (0..IN * OUT)
            .map(|k| ((k * 29) % 17) as f32 * 0.1 - 0.8)
            .collect();
        let var: Vec<f32> = (0..IN * OUT).map(|k| 0.002 * (1 + k % 5) as f32).collect();
        let (b, bv) = ([0.5f32, -0.25, 0.125], [0.04f32, 0.01, 0.09]);
        let xa: [f32; IN] = core::array::from_fn(|i| (i as f32 - 9.5) * 0.3);
        let xb: [f32; IN] = core::array::from_fn(|i| 1.0 - 0.07 * i as f32);
        // The reference, written from the documented order.
        let mut rng = Rng::seed_from_u64(21);
        let mut two = |m: f32, v: f32| {
            let ea = standard_normal(&mut rng);
            let eb = standard_normal(&mut rng);
            let sd = libm::sqrtf(v);
            (m + sd * ea, m + sd * eb)
        };
        let mut want = [[0f32; OUT]; 2];
        for o in 0..OUT {
            (want[0][o], want[1][o]) = two(b[o], bv[o]);
        }
        for o in 0..OUT {
            let (mut la, mut lb) = ([0f32; LANES], [0f32; LANES]);
            for half in 0..2 {
                for i in (0..IN).filter(|i| (i % LANES) / 4 == half) {
                    let (wa, wb) = two(w[o * IN + i], var[o * IN + i]);
                    la[i % LANES] += wa * xa[i];
                    lb[i % LANES] += wb * xb[i];
                }
            }
            want[0][o] += combine(la);
            want[1][o] += combine(lb);
        }
        let want_rng = rng;
        for shift in 0..4 {
            let put = |v: &[f32]| -> Vec<u32> {
                let mut raw = vec![0u8; 4 * v.len() + 4];
                for (k, f) in v.iter().enumerate() {
                    raw[shift + 4 * k..shift + 4 * k + 4].copy_from_slice(&f.to_le_bytes());
                }
                raw.chunks_exact(4)
                    .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
                    .collect()
            };
            let (a, c, e, f) = (put(&w), put(&var), put(&b), put(&bv));
            fn view(buf: &[u32], shift: usize, n: usize) -> &[u8] {
                &bytemuck::cast_slice::<u32, u8>(buf)[shift..shift + 4 * n]
            }
            let (wm, wv) = (view(&a, shift, IN * OUT), view(&c, shift, IN * OUT));
            let (bm, bvv) = (view(&e, shift, OUT), view(&f, shift, OUT));
            assert_eq!(words(wm).is_some(), shift == 0);
            let p: Params<'_, { 4 * IN * OUT }, { 4 * OUT }> = Params {
                weight_mean: wm.try_into().unwrap(),
                weight_var: wv.try_into().unwrap(),
                bias_mean: bm.try_into().unwrap(),
                bias_var: bvv.try_into().unwrap(),
            };
            let (mut oa, mut ob) = ([0f32; OUT], [0f32; OUT]);
            let mut d = SampleDraw::new(Rng::seed_from_u64(21));
            dense2(&xa, &xb, &p, &mut d, &mut oa, &mut ob);
            assert_eq!(
                oa.map(f32::to_bits),
                want[0].map(f32::to_bits),
                "shift {shift}"
            );
            assert_eq!(
                ob.map(f32::to_bits),
                want[1].map(f32::to_bits),
                "shift {shift}"
            );
            assert_eq!(d.into_rng(), want_rng);
            // With the means, both samples are `dense`'s forward pass.
            let (mut ma, mut mb, mut m1) = ([0f32; OUT], [0f32; OUT], [0f32; OUT]);
            dense2(&xa, &xa, &p, &mut MeanDraw, &mut ma, &mut mb);
            dense(&xa, &p, &mut MeanDraw, &mut m1);
            assert_eq!(ma, m1);
            assert_eq!(mb, m1);
        }
        assert_ne!(want[0], want[1]);
    }
}
