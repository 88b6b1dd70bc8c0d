//! A small seedable, portable PRNG (xoshiro256++ seeded through SplitMix64) and a Gaussian
//! sampler. Every random draw of the trainer comes from a [`Rng::stream`] keyed by the run seed
//! and the draw's purpose and position, so results never depend on the thread count.

use tinyvi::rng::SplitMix64;

/// One SplitMix64 step (the core's): advances `state` and returns the next output.
#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    let mut g = SplitMix64::new(*state);
    let out = g.next_u64();
    *state = g.state();
    out
}

/// Start of the ziggurat's tail.
const ZIG_R: f64 = 3.442_619_855_899;
/// Area of each ziggurat layer.
const ZIG_V: f64 = 9.912_563_035_262_17e-3;

/// Layer edges `x[i]` (x[0] is the base strip's virtual width V/f(R), x[1] = R, x[128] = 0)
/// and the density `f[i] = e^{−x[i]²/2}` at them.
struct Zig {
    x: [f64; 129],
    f: [f64; 129],
}

fn zig_tables() -> &'static Zig {
    static TABLES: std::sync::OnceLock<Zig> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut x = [0.0f64; 129];
        let mut f = [0.0f64; 129];
        let fr = (-0.5 * ZIG_R * ZIG_R).exp();
        x[0] = ZIG_V / fr;
        x[1] = ZIG_R;
        for i in 2..128 {
            let prev = x[i - 1];
            x[i] = (-2.0 * (ZIG_V / prev + (-0.5 * prev * prev).exp()).ln()).sqrt();
        }
        x[128] = 0.0;
        for i in 0..129 {
            f[i] = (-0.5 * x[i] * x[i]).exp();
        }
        // The base strip (i = 0) holds the tail: its "density" bounds are not used.
        Zig { x, f }
    })
}

/// xoshiro256++.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// Purposes of the random streams (the first key word), so that no two uses share a stream.
pub mod purpose {
    /// Parameter initialisation.
    pub const INIT: u64 = 1;
    /// Per-epoch shuffling.
    pub const SHUFFLE: u64 = 2;
    /// Per-epoch crop offsets.
    pub const AUGMENT: u64 = 3;
    /// Training weight noise ε.
    pub const TRAIN_EPS: u64 = 4;
    /// Evaluation weight noise ε.
    pub const EVAL_EPS: u64 = 5;
    /// Training pre-activation noise of the fully connected layers (local reparameterisation).
    pub const TRAIN_LR_EPS: u64 = 6;
}

impl Rng {
    /// A generator seeded directly from one 64-bit value.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// An independent stream for `seed` and a key (purpose, then positions).
    pub fn stream(seed: u64, key: &[u64]) -> Self {
        let mut st = seed;
        let mut h = splitmix64(&mut st);
        for &k in key {
            st ^= k.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ h;
            h = splitmix64(&mut st);
        }
        Rng::new(h)
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`), by widening multiplication (bias < 2⁻³²·n).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A standard normal draw by the Marsaglia–Tsang ziggurat (128 layers, f64 tables): one
    /// 64-bit draw and a multiply for ~98.8% of the values.
    #[inline]
    pub fn normal(&mut self) -> f32 {
        let t = zig_tables();
        loop {
            let u = self.next_u64();
            let i = (u & 127) as usize;
            // Signed 53-bit uniform in (−1, 1) from the high bits.
            let v = ((u >> 11) as f64 * (1.0 / (1u64 << 52) as f64)) - 1.0;
            let x = v * t.x[i];
            if x.abs() < t.x[i + 1] {
                return x as f32;
            }
            if i == 0 {
                // Tail beyond R (Marsaglia's method).
                loop {
                    let a = -(1.0 - self.next_f64()).ln() / ZIG_R;
                    let b = -(1.0 - self.next_f64()).ln();
                    if b + b >= a * a {
                        let z = ZIG_R + a;
                        return if v < 0.0 { -z as f32 } else { z as f32 };
                    }
                }
            }
            // Wedge: accept under the density.
            let y = t.f[i] + self.next_f64() * (t.f[i + 1] - t.f[i]);
            if y < (-0.5 * x * x).exp() {
                return x as f32;
            }
        }
    }

    /// Fills `out` with standard normal draws (ziggurat).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        for x in out {
            *x = self.normal();
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(7, &[1, 2]).next_u64()).collect();
        assert!(a.iter().all(|&x| x == a[0]));
        assert_ne!(
            Rng::stream(7, &[1, 2]).next_u64(),
            Rng::stream(7, &[1, 3]).next_u64()
        );
        assert_ne!(
            Rng::stream(7, &[1, 2]).next_u64(),
            Rng::stream(8, &[1, 2]).next_u64()
        );
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::new(3);
        let mut v = vec![0f32; 200_001];
        r.fill_normal(&mut v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let kurt = v.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n / (var * var);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
    }

    #[test]
    fn ziggurat_tails_have_the_normal_mass() {
        let mut r = Rng::new(11);
        let n = 2_000_000;
        let (mut over2, mut over3, mut over35, mut neg) = (0usize, 0usize, 0usize, 0usize);
        for _ in 0..n {
            let z = r.normal().abs() as f64;
            over2 += (z > 2.0) as usize;
            over3 += (z > 3.0) as usize;
            over35 += (z > 3.5) as usize;
        }
        for _ in 0..n / 10 {
            neg += (r.normal() < 0.0) as usize;
        }
        let p = |c: usize| c as f64 / n as f64;
        // Two-sided tail masses of N(0, 1): 0.0455, 0.0027, 0.000465.
        assert!((p(over2) - 0.0455).abs() < 0.0015, "{}", p(over2));
        assert!((p(over3) - 0.0027).abs() < 0.0003, "{}", p(over3));
        assert!((p(over35) - 0.000465).abs() < 0.0001, "{}", p(over35));
        assert!((neg as f64 / (n / 10) as f64 - 0.5).abs() < 0.005);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..1000).collect();
        Rng::new(1).shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
    }
}
