//! The crate's own pseudo-random number generator: xoshiro128++ (Blackman and Vigna), seeded
//! from a `u64` through splitmix64.
//!
//! Integer arithmetic only, so every target produces the same stream. Uniform floats are made
//! from the top 24 bits of one `u32`, which an `f32` holds exactly.

/// splitmix64's output function: a bijective 64-bit mix (Stafford's variant 13).
#[inline]
pub const fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64's increment (the golden ratio in 64 bits).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64 (Steele, Lea and Flood), used to expand a `u64` seed into xoshiro's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64-bit output.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// The state: `SplitMix64::new(g.state())` continues as `g` does.
    pub const fn state(self) -> u64 {
        self.state
    }
}

/// The seed of image `index` of a run seeded with `seed`.
///
/// The host replay and the firmware both call this, so image `i` gets the same Monte Carlo
/// samples wherever it runs and whichever images run before it.
pub const fn image_seed(seed: u64, index: u32) -> u64 {
    mix64(seed ^ mix64((index as u64) ^ 0xD1B5_4A32_D192_ED03))
}

/// xoshiro128++: 128 bits of state, period 2¹²⁸ − 1, 32-bit outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u32; 4],
}

/// 2⁻²⁴, the spacing of the uniform floats.
const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;

impl Rng {
    /// A generator whose state is two splitmix64 outputs from `seed`.
    pub const fn seed_from_u64(seed: u64) -> Self {
        let a = mix64(seed.wrapping_add(GOLDEN_GAMMA));
        let b = mix64(seed.wrapping_add(GOLDEN_GAMMA.wrapping_mul(2)));
        // Two consecutive splitmix64 outputs are never both zero (the mix is a bijection),
        // so the state is never all zeros.
        Rng {
            s: [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32],
        }
    }

    /// A generator with the given raw state, which must not be all zeros (an all-zero state
    /// is replaced by `[1, 0, 0, 0]`).
    pub const fn from_state(s: [u32; 4]) -> Self {
        if s[0] | s[1] | s[2] | s[3] == 0 {
            Rng { s: [1, 0, 0, 0] }
        } else {
            Rng { s }
        }
    }

    /// The next 32-bit output.
    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        let [s0, s1, s2, s3] = self.s;
        let result = s0.wrapping_add(s3).rotate_left(7).wrapping_add(s0);
        let t = s1 << 9;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        let s2 = s2 ^ t;
        let s3 = s3.rotate_left(11);
        self.s = [s0, s1, s2, s3];
        result
    }

    /// A uniform `f32` in [0, 1): a multiple of 2⁻²⁴, from the top 24 bits.
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * TWO_POW_M24
    }

    /// A uniform `f32` in (0, 1): (k + ½)·2⁻²⁴ for k from the top 24 bits; safe for `ln`.
    #[inline]
    pub fn uniform_open(&mut self) -> f32 {
        ((self.next_u32() >> 8) as f32 + 0.5) * TWO_POW_M24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro128plusplus_matches_the_reference() {
        // Outputs of the reference C implementation from the state {1, 2, 3, 4}.
        let mut rng = Rng::from_state([1, 2, 3, 4]);
        let expected: [u32; 10] = [
            641, 1573767, 3222811527, 3517856514, 836907274, 4247214768, 3867114732, 1355841295,
            495546011, 621204420,
        ];
        for e in expected {
            assert_eq!(rng.next_u32(), e);
        }
    }

    #[test]
    fn splitmix64_matches_the_reference() {
        // Outputs of the reference C implementation seeded with 1234567.
        let mut sm = SplitMix64::new(1_234_567);
        let expected: [u64; 5] = [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for e in expected {
            assert_eq!(sm.next_u64(), e);
        }
        // The seeding uses the first two outputs.
        let mut sm = SplitMix64::new(42);
        let (a, b) = (sm.next_u64(), sm.next_u64());
        let rng = Rng::seed_from_u64(42);
        assert_eq!(
            rng.s,
            [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32]
        );
    }

    #[test]
    fn uniforms_are_in_range_and_balanced() {
        let mut rng = Rng::seed_from_u64(7);
        let n = 100_000;
        let mut sum = 0.0f64;
        for _ in 0..n {
            let u = rng.uniform();
            assert!((0.0..1.0).contains(&u));
            let v = rng.uniform_open();
            assert!(v > 0.0 && v < 1.0);
            sum += u as f64;
        }
        // Mean 1/2, standard error sqrt(1/12/n) ≈ 9.1e-4; 5 standard errors.
        assert!((sum / n as f64 - 0.5).abs() < 5.0 * 9.2e-4);
        assert_eq!(Rng::from_state([0; 4]), Rng::from_state([1, 0, 0, 0]));
    }

    #[test]
    fn image_seeds_differ_and_are_stable() {
        let seeds: [u64; 4] = [
            image_seed(0, 0),
            image_seed(0, 1),
            image_seed(1, 0),
            image_seed(1, 1),
        ];
        for (i, a) in seeds.iter().enumerate() {
            for b in &seeds[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(image_seed(5, 9), image_seed(5, 9));
        assert_eq!(
            image_seed(5, 9),
            mix64(5 ^ mix64(9 ^ 0xD1B5_4A32_D192_ED03))
        );
    }
}
