//! A fast, exact standard-normal sampler: the 128-layer ziggurat of Marsaglia and Tsang
//! (2000), in `f32`, bit-identical on every target.
//!
//! One `u32` from [`Rng::next_u32`] gives the layer `i` (bits 0–6), the sign (bit 7) and a
//! 24-bit abscissa `j` (bits 8–31), so `x = j·W[i]`. 97.2% of draws (the mean of
//! `K[i]/2²⁴` over the layers) are accepted at once (`j < K[i]`): one generator step, one
//! entry `(K[i], ±W[i])` of a 256-entry table indexed by the low byte (layer and sign), an
//! integer compare and a multiply, as straight-line code that callers can unroll (≈ 18
//! Cortex-M4 instructions with the generator in registers). The rest go to the `#[cold]` slow
//! path: the tail beyond `r` (layer 0, Marsaglia's exponential method) or a wedge test
//! against `exp(−x²/2)`, decided by cheap bounds and only rarely (≈ 0.1% of wedge tests) by
//! `expf`; a rejection starts over with a new `u32`. Every transcendental is `libm`'s
//! `expf`/`logf`, and the arithmetic is plain `f32` in a fixed order, so the draws do not
//! depend on the target.
//!
//! The tables below are the classic construction (`r = 3.442619855899`, layer area
//! `v = 9.91256303526217e-3`) evaluated in `f64` and rounded to the stored types; the test
//! `tables_match_their_construction` recomputes them with `libm` and compares every entry.

use crate::rng::Rng;

/// Right edge of the base layer: the tail starts here.
const R: f32 = 3.442_619_8;
/// `1/R`.
const INV_R: f32 = 1.0 / R;

/// A standard normal draw N(0, 1).
///
/// The fast path is straight-line code (no loop, no call), so callers can unroll it and keep
/// the generator in registers; the ~2.8% of draws that miss it continue in `slow`, which
/// takes and returns the generator by value, so its state only goes through memory there.
#[inline(always)]
pub fn standard_normal(rng: &mut Rng) -> f32 {
    let u = rng.next_u32();
    let j = u >> 8;
    // Bits 0–7 (layer and sign) index one table of (K, ±W) pairs: `j·(−w)` has the same
    // bits as `−(j·w)`, so the sign costs nothing and both values come from one address.
    if let Some(&Layer { k, w }) = FAST.get((u & 0xff) as usize) {
        if j < k {
            return j as f32 * w;
        }
    }
    let (x, next) = slow(u, rng.clone());
    *rng = next;
    x
}

/// Bit 7 of `u` is the sign, applied without a branch (a random branch mispredicts half the
/// time): the same bits as `-x`.
#[inline(always)]
fn with_sign(x: f32, u: u32) -> f32 {
    f32::from_bits(x.to_bits() ^ ((u & 0x80) << 24))
}

/// The rest of a draw whose first `u32` `u` missed the fast path: the tail (layer 0), the
/// wedge test, or a rejection that starts over with new `u32`s. The same sequence of
/// generator outputs as one loop over all of it; the first `u` is known to have failed the
/// rectangle test `j < K[i]` (the fast path made it), so it goes straight to the tail or the
/// wedge (on the Cortex-M4 ≈ 20 instructions less per slow draw, 2.75% of all draws).
#[cold]
#[inline(never)]
fn slow(mut u: u32, mut rng: Rng) -> (f32, Rng) {
    loop {
        let i = (u & 0x7f) as usize;
        if i == 0 {
            loop {
                let (a, b) = (rng.next_u32(), rng.next_u32());
                if let Some(x) = tail(a, b) {
                    return (with_sign(x, u), rng);
                }
            }
        }
        if let Some(&w) = W.get(i) {
            let x = (u >> 8) as f32 * w;
            if wedge(i, x, rng.next_u32()) {
                return (with_sign(x, u), rng);
            }
        }
        // Rejected: a new attempt, whose rectangle test is made here.
        u = rng.next_u32();
        let i = (u & 0x7f) as usize;
        let j = u >> 8;
        if let (Some(&k), Some(&w)) = (K.get(i), W.get(i)) {
            if j < k {
                return (with_sign(j as f32 * w, u), rng);
            }
        }
    }
}

/// Uniform in (0, 1) from the top 24 bits of `u`, as [`Rng::uniform_open`].
#[inline(always)]
fn open01(u: u32) -> f32 {
    ((u >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// One attempt at the tail beyond `r` (Marsaglia): `a = −ln(U₁)/r`, `b = −ln(U₂)`, accept
/// `r + a` when `2b ≥ a²`.
#[cold]
#[inline(never)]
fn tail(u1: u32, u2: u32) -> Option<f32> {
    let a = -libm::logf(open01(u1)) * INV_R;
    let b = -libm::logf(open01(u2));
    (b + b >= a * a).then_some(R + a)
}

/// The wedge test of layer `i` ≥ 1 for a draw `x` outside its inner rectangle:
/// `F[i] + U·(F[i−1] − F[i]) < exp(−x²/2)`, `U` uniform in [0, 1) from `u`'s top 24 bits,
/// the exponential `libm::expf(−0.5·x·x)`.
///
/// Decided first against cheap bounds `lo ≤ libm::expf(−0.5·x·x) ≤ hi` ([`wedge_bounds`]):
/// `y < lo` accepts and `y ≥ hi` rejects, with the result `expf` would give; only a `y`
/// between them (≈ 1 in 10⁴ wedge tests) calls `expf`. The bounds hold for every `x` a wedge
/// can see (the test `wedge_bounds_hold_for_every_wedge_draw` checks all of them), so the
/// decisions, and the stream, are those of the plain test. Inlined into [`slow`], its only
/// caller.
#[inline(always)]
fn wedge(i: usize, x: f32, u: u32) -> bool {
    let (Some(&f_i), Some(&f_above)) = (F.get(i), F.get(i.wrapping_sub(1))) else {
        return false;
    };
    let uniform = (u >> 8) as f32 * (1.0 / 16_777_216.0);
    let y = f_i + uniform * (f_above - f_i);
    let (lo, hi) = wedge_bounds(i, x);
    if y < lo {
        true
    } else if y >= hi {
        false
    } else {
        y < libm::expf(-0.5 * x * x)
    }
}

/// Bounds `(lo, hi)` on `libm::expf(−0.5·x·x)` for `x` in layer `i`'s wedge
/// (`x_{i−1} ≤ x ≤ x_i`, `i ≥ 1`): with `d = (x_i − x)(x_i + x)/2 ≥ 0`,
/// `exp(−x²/2) = F[i]·e^d`, and `e^d` is its cubic Taylor polynomial within
/// `e^d·d⁴/24 ≤ 0.1·d⁴` (`d ≤ 0.76` in every wedge); `4·10⁻⁶` more covers the rounding of
/// `x_i`, `F[i]`, this arithmetic, `expf`'s argument and `expf` itself (≤ 1 ulp).
#[inline(always)]
fn wedge_bounds(i: usize, x: f32) -> (f32, f32) {
    let (Some(&w), Some(&f_i)) = (W.get(i), F.get(i)) else {
        return (0.0, f32::INFINITY); // unreachable for i < 128: always calls expf
    };
    let x_i = w * 16_777_216.0;
    let d = (x_i - x) * (x_i + x) * 0.5;
    let e = f_i * (1.0 + d * (1.0 + d * (0.5 + d * (1.0 / 6.0))));
    let d2 = d * d;
    let m = f_i * (0.1 * d2 * d2) + 4e-6;
    (e - m, e + m)
}

/// One entry of the fast path's table: layer `i`'s threshold `K[i]` and its scale `±W[i]`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Layer {
    k: u32,
    w: f32,
}

/// The fast path's table, indexed by the low byte of the draw: entry `s·128 + i` is
/// `(K[i], W[i])` with the sign of `W[i]` flipped when the sign bit `s` is 1. Built from `K`
/// and `W` at compile time.
static FAST: [Layer; 256] = {
    let mut t = [Layer { k: 0, w: 0.0 }; 256];
    let mut b = 0;
    while b < 256 {
        let i = b & 0x7f;
        let sign = ((b & 0x80) as u32) << 24;
        #[allow(clippy::indexing_slicing)] // compile time: b < 256, i < 128
        {
            t[b] = Layer {
                k: K[i],
                w: f32::from_bits(W[i].to_bits() ^ sign),
            };
        }
        b += 1;
    }
    t
};

/// Fast-path thresholds: layer `i` accepts `j < K[i]` (`2²⁴·x_{i−1}/x_i`; layer 0: `2²⁴·r/q`).
const K: [u32; 128] = [
    15555140, 0, 12590646, 14272655, 14988941, 15384586, 15635011, 15807563, 15933579, 16029596,
    16105157, 16166149, 16216401, 16258510, 16294297, 16325080, 16351833, 16375293, 16396028,
    16414481, 16431004, 16445882, 16459345, 16471580, 16482746, 16492973, 16502371, 16511033,
    16519041, 16526461, 16533355, 16539771, 16545757, 16551350, 16556586, 16561495, 16566103,
    16570436, 16574514, 16578356, 16581979, 16585400, 16588632, 16591687, 16594578, 16597313,
    16599904, 16602357, 16604681, 16606884, 16608971, 16610948, 16612821, 16614596, 16616275,
    16617864, 16619366, 16620785, 16622124, 16623386, 16624574, 16625689, 16626734, 16627712,
    16628623, 16629469, 16630252, 16630973, 16631633, 16632232, 16632772, 16633253, 16633676,
    16634040, 16634345, 16634592, 16634780, 16634909, 16634978, 16634986, 16634933, 16634816,
    16634636, 16634389, 16634074, 16633688, 16633230, 16632697, 16632084, 16631389, 16630608,
    16629736, 16628767, 16627697, 16626519, 16625225, 16623807, 16622256, 16620562, 16618713,
    16616695, 16614493, 16612090, 16609464, 16606592, 16603448, 16599998, 16596205, 16592024,
    16587401, 16582272, 16576558, 16570162, 16562964, 16554811, 16545510, 16534808, 16522367,
    16507732, 16490264, 16469044, 16442689, 16409025, 16364393, 16302110, 16208407, 16049218,
    15707337,
];
/// Abscissa scales: `x = j·W[i]` with `W[i] = x_i/2²⁴` (layer 0: `q/2²⁴`).
const W: [f32; 128] = [
    2.2131718e-7,
    1.6231589e-8,
    2.1628823e-8,
    2.542424e-8,
    2.8457512e-8,
    3.103352e-8,
    3.3300648e-8,
    3.5343344e-8,
    3.7214672e-8,
    3.895036e-8,
    4.057574e-8,
    4.2109466e-8,
    4.3565745e-8,
    4.495565e-8,
    4.628801e-8,
    4.7569994e-8,
    4.8807497e-8,
    5.000545e-8,
    5.1168016e-8,
    5.2298752e-8,
    5.3400715e-8,
    5.4476573e-8,
    5.5528652e-8,
    5.6559003e-8,
    5.7569448e-8,
    5.856161e-8,
    5.9536948e-8,
    6.0496774e-8,
    6.144227e-8,
    6.2374525e-8,
    6.329453e-8,
    6.420318e-8,
    6.510132e-8,
    6.598971e-8,
    6.686908e-8,
    6.7740075e-8,
    6.860333e-8,
    6.945942e-8,
    7.0308886e-8,
    7.115225e-8,
    7.199e-8,
    7.282259e-8,
    7.365045e-8,
    7.447401e-8,
    7.5293656e-8,
    7.6109785e-8,
    7.692275e-8,
    7.773291e-8,
    7.854061e-8,
    7.934618e-8,
    8.014993e-8,
    8.09522e-8,
    8.1753264e-8,
    8.255345e-8,
    8.335304e-8,
    8.4152326e-8,
    8.4951594e-8,
    8.575113e-8,
    8.6551225e-8,
    8.7352156e-8,
    8.8154195e-8,
    8.8957634e-8,
    8.976275e-8,
    9.056983e-8,
    9.137916e-8,
    9.219103e-8,
    9.300573e-8,
    9.3823566e-8,
    9.464484e-8,
    9.546986e-8,
    9.629894e-8,
    9.7132414e-8,
    9.797061e-8,
    9.8813885e-8,
    9.9662586e-8,
    1.00517084e-7,
    1.01377765e-7,
    1.0224502e-7,
    1.0311926e-7,
    1.0400093e-7,
    1.0489048e-7,
    1.05788374e-7,
    1.0669511e-7,
    1.0761123e-7,
    1.0853726e-7,
    1.09473795e-7,
    1.10421446e-7,
    1.11380885e-7,
    1.12352794e-7,
    1.1333791e-7,
    1.1433705e-7,
    1.15351035e-7,
    1.163808e-7,
    1.17427305e-7,
    1.1849163e-7,
    1.1957489e-7,
    1.2067837e-7,
    1.2180338e-7,
    1.229514e-7,
    1.2412407e-7,
    1.2532313e-7,
    1.2655053e-7,
    1.2780846e-7,
    1.2909929e-7,
    1.3042572e-7,
    1.3179073e-7,
    1.3319769e-7,
    1.3465045e-7,
    1.3615335e-7,
    1.3771138e-7,
    1.3933034e-7,
    1.4101693e-7,
    1.4277902e-7,
    1.4462594e-7,
    1.4656891e-7,
    1.4862147e-7,
    1.5080033e-7,
    1.5312634e-7,
    1.5562607e-7,
    1.5833416e-7,
    1.6129694e-7,
    1.6457852e-7,
    1.6827138e-7,
    1.7251635e-7,
    1.7754414e-7,
    1.8377476e-7,
    1.9211083e-7,
    2.0519613e-7,
];
/// Density at each layer's right edge: `F[i] = exp(−x_i²/2)` (`F[0] = 1`, the top of the top layer).
static F: [f32; 128] = [
    1.0,
    0.9635997,
    0.9362827,
    0.9130436,
    0.89228165,
    0.87324303,
    0.8555006,
    0.8387836,
    0.8229072,
    0.8077383,
    0.793177,
    0.7791461,
    0.7655842,
    0.7524416,
    0.73967725,
    0.7272569,
    0.7151515,
    0.7033361,
    0.69178915,
    0.68049186,
    0.6694277,
    0.658582,
    0.6479418,
    0.63749546,
    0.6272325,
    0.6171434,
    0.6072195,
    0.5974532,
    0.58783704,
    0.5783647,
    0.56903,
    0.5598274,
    0.5507518,
    0.54179835,
    0.5329627,
    0.52424055,
    0.5156282,
    0.50712204,
    0.49871865,
    0.49041483,
    0.48220766,
    0.4740943,
    0.46607214,
    0.4581387,
    0.45029163,
    0.44252872,
    0.43484783,
    0.427247,
    0.41972435,
    0.41227803,
    0.40490642,
    0.39760786,
    0.3903808,
    0.3832238,
    0.37613547,
    0.36911446,
    0.3621595,
    0.35526937,
    0.34844297,
    0.34167916,
    0.33497685,
    0.3283351,
    0.3217529,
    0.3152294,
    0.30876362,
    0.30235484,
    0.29600215,
    0.28970486,
    0.2834622,
    0.2772735,
    0.27113807,
    0.2650553,
    0.25902456,
    0.2530453,
    0.24711695,
    0.241239,
    0.23541094,
    0.22963232,
    0.2239027,
    0.21822165,
    0.21258877,
    0.20700371,
    0.20146611,
    0.19597565,
    0.19053204,
    0.18513499,
    0.17978427,
    0.17447963,
    0.1692209,
    0.16400786,
    0.15884037,
    0.15371831,
    0.14864157,
    0.14361008,
    0.13862377,
    0.13368265,
    0.12878671,
    0.12393598,
    0.119130544,
    0.11437051,
    0.10965602,
    0.104987256,
    0.10036444,
    0.095787846,
    0.0912578,
    0.08677467,
    0.0823389,
    0.077950984,
    0.073611505,
    0.06932112,
    0.06508058,
    0.06089077,
    0.056752663,
    0.0526674,
    0.048636295,
    0.044660863,
    0.040742867,
    0.03688439,
    0.033087887,
    0.029356318,
    0.025693292,
    0.022103304,
    0.018592102,
    0.015167298,
    0.011839478,
    0.008624485,
    0.005548995,
    0.0026696292,
];

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    const PINNED_SUM_BITS: u32 = 0x43cf_f22b;
    const R64: f64 = 3.442619855899;
    const V64: f64 = 9.91256303526217e-3;
    const M: f64 = 16_777_216.0;

    /// The ziggurat tables, built in f64 with libm as in Marsaglia and Tsang's `zigset`.
    fn construct() -> ([u32; 128], [f32; 128], [f32; 128]) {
        let (mut k, mut w, mut f) = ([0u32; 128], [0f32; 128], [0f32; 128]);
        let mut dn = R64;
        let mut tn = dn;
        let q = V64 / libm::exp(-0.5 * dn * dn);
        k[0] = ((dn / q) * M) as u32;
        k[1] = 0;
        w[0] = (q / M) as f32;
        w[127] = (dn / M) as f32;
        f[0] = 1.0;
        f[127] = libm::exp(-0.5 * dn * dn) as f32;
        for i in (1..=126).rev() {
            dn = libm::sqrt(-2.0 * libm::log(V64 / dn + libm::exp(-0.5 * dn * dn)));
            k[i + 1] = ((dn / tn) * M) as u32;
            tn = dn;
            f[i] = libm::exp(-0.5 * dn * dn) as f32;
            w[i] = (dn / M) as f32;
        }
        (k, w, f)
    }

    #[test]
    fn tables_match_their_construction() {
        let (k, w, f) = construct();
        assert_eq!(K, k);
        for i in 0..128 {
            assert_eq!(W[i].to_bits(), w[i].to_bits(), "W[{i}]");
            assert_eq!(F[i].to_bits(), f[i].to_bits(), "F[{i}]");
        }
        assert_eq!(R, R64 as f32);
        // The top layer reaches x = 0 with the right area: x₁·(1 − f(x₁)) = v.
        let x1 = W[1] as f64 * M;
        assert!((x1 * (1.0 - libm::exp(-0.5 * x1 * x1)) - V64).abs() < 1e-6);
    }

    fn normal_cdf(x: f64) -> f64 {
        0.5 * libm::erfc(-x / core::f64::consts::SQRT_2)
    }

    /// Every `x` a wedge test can see (layer `i` ≥ 1, `j` from `K[i]` to 2²⁴ − 1, ≈ 59
    /// million values): the bounds bracket `libm::expf(−0.5·x·x)`, so the quick decisions of
    /// `wedge` are always those of the plain test; and they are tight enough to decide
    /// almost every test without `expf`.
    #[test]
    fn wedge_bounds_hold_for_every_wedge_draw() {
        let (mut checked, mut width) = (0u64, 0f64);
        let (mut undecided, mut weight) = (0f64, 0f64);
        for i in 1..128 {
            let mut j = K[i];
            while j < 1 << 24 {
                let x = j as f32 * W[i];
                let e = libm::expf(-0.5 * x * x);
                let (lo, hi) = wedge_bounds(i, x);
                assert!(lo <= e && e <= hi, "layer {i} j {j}: {lo} {e} {hi}");
                let band = (((hi - lo) / (F[i - 1] - F[i])) as f64).min(1.0);
                width = width.max(band);
                // Every layer is equally likely, then every j of its wedge.
                let p = 1.0 / (1u64 << 24) as f64;
                undecided += band * p;
                weight += p;
                checked += 1;
                j += 1;
            }
        }
        assert!(checked > 50_000_000, "{checked}");
        // Share of wedge tests that need `expf` (a uniform `y` in the band): ≈ 0.11%.
        let share = undecided / weight;
        std::println!("widest band {width}, expf share {share}");
        assert!(share < 2e-3, "widest band {width}, expf share {share}");
    }

    #[test]
    fn fast_table_is_k_and_signed_w() {
        for (b, entry) in FAST.iter().enumerate() {
            let (i, neg) = (b & 0x7f, b & 0x80 != 0);
            assert_eq!(entry.k, K[i]);
            let w = if neg { -W[i] } else { W[i] };
            assert_eq!(entry.w.to_bits(), w.to_bits(), "entry {b}");
        }
    }

    #[test]
    fn moments_are_those_of_n01() {
        let mut rng = Rng::seed_from_u64(1);
        let n = 1_000_000;
        let (mut s1, mut s2, mut s3, mut s4) = (0.0f64, 0.0, 0.0, 0.0);
        for _ in 0..n {
            let x = standard_normal(&mut rng) as f64;
            s1 += x;
            s2 += x * x;
            s3 += x * x * x;
            s4 += x * x * x * x;
        }
        let n = n as f64;
        let (m1, m2, m3, m4) = (s1 / n, s2 / n, s3 / n, s4 / n);
        // Standard errors: sqrt(1/n), sqrt(2/n), sqrt(15/n), sqrt(96/n). Each bound is 5 of
        // them: a false alarm has probability < 1e-5 per moment under a correct sampler.
        let se = |var: f64| 5.0 * (var / n).sqrt();
        assert!(m1.abs() < se(1.0), "mean {m1}");
        assert!((m2 - 1.0).abs() < se(2.0), "second moment {m2}");
        assert!(m3.abs() < se(15.0), "third moment {m3}");
        assert!((m4 - 3.0).abs() < se(96.0), "fourth moment {m4}");
    }

    #[test]
    fn kolmogorov_smirnov_against_the_normal_cdf() {
        let mut rng = Rng::seed_from_u64(2);
        let n = 200_000;
        let mut xs: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng) as f64).collect();
        xs.sort_by(f64::total_cmp);
        let mut d = 0.0f64;
        for (i, &x) in xs.iter().enumerate() {
            let c = normal_cdf(x);
            d = d.max((c - i as f64 / n as f64).abs());
            d = d.max(((i + 1) as f64 / n as f64 - c).abs());
        }
        // Critical value at significance 0.001 (false-alarm rate 0.1%): 1.9495/sqrt(n).
        let crit = 1.9495 / (n as f64).sqrt();
        assert!(d < crit, "KS statistic {d} ≥ {crit}");
    }

    #[test]
    fn chi_square_on_the_tails_and_slow_path() {
        // Bins with edges at the layer boundaries the slow path serves, plus the deep tail.
        let edges = [
            -4.0, -3.442_62, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 3.442_62, 4.0,
        ];
        let mut counts = [0u64; 12];
        let mut rng = Rng::seed_from_u64(3);
        let n = 2_000_000u64;
        for _ in 0..n {
            let x = standard_normal(&mut rng);
            let bin = edges.iter().take_while(|&&e| x >= e).count();
            counts[bin] += 1;
        }
        let mut chi2 = 0.0;
        for (bin, &c) in counts.iter().enumerate() {
            let lo = if bin == 0 {
                f64::NEG_INFINITY
            } else {
                edges[bin - 1] as f64
            };
            let hi = edges.get(bin).map_or(f64::INFINITY, |&e| e as f64);
            let expected = n as f64 * (normal_cdf(hi) - normal_cdf(lo));
            chi2 += (c as f64 - expected).powi(2) / expected;
        }
        // 11 degrees of freedom; the 0.999 quantile is 31.26 (false-alarm rate 0.1%).
        assert!(chi2 < 31.26, "chi-square {chi2}");
    }

    /// The slow paths take the generator's outputs in the order the earlier `&mut Rng`
    /// version drew them: pinned values of the stream.
    #[test]
    fn stream_is_pinned() {
        let mut rng = Rng::seed_from_u64(2026);
        let mut sum = 0.0f32;
        let mut slow = 0;
        for _ in 0..100_000 {
            let x = standard_normal(&mut rng);
            slow += usize::from(x.abs() > R);
            sum += x;
        }
        assert!(slow > 0);
        assert_eq!(sum.to_bits(), PINNED_SUM_BITS, "sum = {sum}");
    }

    #[test]
    fn same_seed_same_bits() {
        let mut a = Rng::seed_from_u64(9);
        let mut b = Rng::seed_from_u64(9);
        for _ in 0..10_000 {
            assert_eq!(
                standard_normal(&mut a).to_bits(),
                standard_normal(&mut b).to_bits()
            );
        }
    }
}
