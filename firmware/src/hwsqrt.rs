//! The Cortex-M4F's hardware square root (`vsqrt.f32`) for the core's
//! [`tinyvi::params::Sqrt`], and a start-up check that it has the bits of `libm::sqrtf`.
//!
//! IEEE 754 square root is correctly rounded, so `vsqrt.f32` and `libm::sqrtf` (the host
//! replay's) must agree on every input; [`check`] verifies it on the device before any
//! image is classified, so a mismatch is a failed run, not a silent divergence.

/// `vsqrt.f32`: about 14 cycles on the Cortex-M4F, one instruction under QEMU, against ≈ 60
/// instructions for `libm::sqrtf` in software.
pub struct HwSqrt;

impl tinyvi::params::Sqrt for HwSqrt {
    #[inline(always)]
    fn sqrt(x: f32) -> f32 {
        let y: u32;
        // On stable Rust the `sreg` operand class needs the unstable `vfp2` target feature, so
        // the value goes through a core register and s15, declared clobbered.
        // SAFETY: FPU instructions on registers only (the target has an FPU: thumbv7em-…-eabihf);
        // no memory, stack or flags are touched.
        unsafe {
            core::arch::asm!(
                "vmov s15, {x}",
                "vsqrt.f32 s15, s15",
                "vmov {y}, s15",
                x = in(reg) x.to_bits(),
                y = lateout(reg) y,
                out("s15") _,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        f32::from_bits(y)
    }
}

/// Mantissas tried in every binade and sign: the ends, the middle, and pseudo-random ones.
const FIXED_MANTISSAS: [u32; 4] = [0, 1, 0x40_0000, 0x7f_ffff];
const RANDOM_MANTISSAS: u32 = 4;

/// Inputs checked by [`check`]: both signs × 256 exponent fields × 8 mantissas = 4,096,
/// including ±0, every subnormal binade's ends, ±∞ and NaNs.
pub const CHECKED: u32 = 2 * 256 * (FIXED_MANTISSAS.len() as u32 + RANDOM_MANTISSAS);

/// A disagreement between `vsqrt.f32` and `libm::sqrtf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The input's bits.
    pub x: u32,
    /// `HwSqrt::sqrt(x)`'s bits.
    pub hw: u32,
    /// `libm::sqrtf(x)`'s bits.
    pub libm: u32,
}

/// Compares `HwSqrt::sqrt` with `libm::sqrtf` on [`CHECKED`] inputs spanning every binade of
/// both signs: the first disagreement, if any, and how many disagreed. Equal means the same
/// bits, or both NaN (a NaN's payload is not part of the contract: the core never takes the
/// square root of a negative or NaN variance of a validated model).
// Cold and never inlined: runs once at start-up, so it is kept small (≈ 1 KB with
// `libm::sqrtf`).
#[cold]
#[inline(never)]
pub fn check() -> Result<(), (Mismatch, u32)> {
    use tinyvi::params::Sqrt;
    const PER_BINADE: u32 = FIXED_MANTISSAS.len() as u32 + RANDOM_MANTISSAS;
    let mut state = 0x9e37_79b9u32;
    let mut first = None;
    let mut count = 0u32;
    // i = (sign, exponent field, mantissa number), sign outermost.
    for i in 0..CHECKED {
        let (sign, exponent, k) = (i / (256 * PER_BINADE), i / PER_BINADE % 256, i % PER_BINADE);
        let mantissa = match FIXED_MANTISSAS.get(k as usize) {
            Some(&m) => m,
            None => {
                // xorshift32: a different mantissa every time.
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state & 0x7f_ffff
            }
        };
        let x = f32::from_bits(core::hint::black_box(
            sign << 31 | exponent << 23 | mantissa,
        ));
        let (hw, soft) = (HwSqrt::sqrt(x), libm::sqrtf(x));
        #[cfg(feature = "provoke-sqrt-mismatch")]
        let hw = if i == 1000 {
            f32::from_bits(hw.to_bits() ^ 1)
        } else {
            hw
        };
        if hw.to_bits() != soft.to_bits() && !(hw.is_nan() && soft.is_nan()) {
            count += 1;
            first.get_or_insert(Mismatch {
                x: x.to_bits(),
                hw: hw.to_bits(),
                libm: soft.to_bits(),
            });
        }
    }
    match first {
        None => Ok(()),
        Some(m) => Err((m, count)),
    }
}
