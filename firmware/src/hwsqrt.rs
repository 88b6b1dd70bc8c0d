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

    /// Eight roots per iteration without leaving the FPU: `vldmia` eight inputs into s8–s15,
    /// eight `vsqrt.f32`, `vstmia` them out (1.5 instructions per root, against ≈ 7 for
    /// [`sqrt`](Self::sqrt) with its moves through core registers); the remainder one at a
    /// time. The same instruction, so the same bits ([`check`] tests both).
    #[inline(always)]
    fn sqrt_slice(x: &[f32], out: &mut [f32]) {
        let n = x.len().min(out.len());
        let blocks = n / 8;
        if blocks > 0 {
            // SAFETY: reads `8·blocks ≤ x.len()` f32 from `x` and writes as many to `out`
            // (both in bounds, f32-aligned as slices of f32); only s8–s15 (declared
            // clobbered), the two pointers and the counter (in-out operands) and the flags
            // (`subs`) change; no stack.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "vldmia {src}!, {{s8-s15}}",
                    "vsqrt.f32 s8, s8",
                    "vsqrt.f32 s9, s9",
                    "vsqrt.f32 s10, s10",
                    "vsqrt.f32 s11, s11",
                    "vsqrt.f32 s12, s12",
                    "vsqrt.f32 s13, s13",
                    "vsqrt.f32 s14, s14",
                    "vsqrt.f32 s15, s15",
                    "vstmia {dst}!, {{s8-s15}}",
                    "subs {q}, {q}, #1",
                    "bne 2b",
                    src = inout(reg) x.as_ptr() => _,
                    dst = inout(reg) out.as_mut_ptr() => _,
                    q = inout(reg) blocks => _,
                    out("s8") _,
                    out("s9") _,
                    out("s10") _,
                    out("s11") _,
                    out("s12") _,
                    out("s13") _,
                    out("s14") _,
                    out("s15") _,
                    options(nostack),
                );
            }
        }
        let done = 8 * blocks;
        for (o, &v) in out
            .iter_mut()
            .skip(done)
            .zip(x.iter().skip(done))
            .take(n - done)
        {
            *o = Self::sqrt(v);
        }
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
    /// `HwSqrt::sqrt(x)`'s bits (or `sqrt_slice`'s, if only that one differs).
    pub hw: u32,
    /// `libm::sqrtf(x)`'s bits.
    pub libm: u32,
}

/// Compares `HwSqrt::sqrt` and `HwSqrt::sqrt_slice` (the form the `Weights` mode uses) with
/// `libm::sqrtf` on [`CHECKED`] inputs spanning every binade of both signs: the first
/// disagreement, if any, and how many inputs disagreed. Equal means the same
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
    // i = (sign, exponent field, mantissa number), sign outermost; in batches of 12, which
    // also go through `sqrt_slice` (its eight-root loop and four roots one at a time).
    let mut input = |i: u32| {
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
        f32::from_bits(core::hint::black_box(
            sign << 31 | exponent << 23 | mantissa,
        ))
    };
    const BATCH: u32 = 12;
    const { assert!(CHECKED % BATCH == 4) };
    for batch in 0..CHECKED.div_ceil(BATCH) {
        // The last batch has 4 inputs.
        let len = (CHECKED - BATCH * batch).min(BATCH);
        let xs: [f32; BATCH as usize] = core::array::from_fn(|k| match k as u32 {
            k if k < len => input(BATCH * batch + k),
            _ => 0.0,
        });
        let (xs, mut roots) = (
            xs.get(..len as usize).unwrap_or(&[]),
            [0f32; BATCH as usize],
        );
        HwSqrt::sqrt_slice(core::hint::black_box(xs), &mut roots);
        for ((k, &x), &slice) in (0u32..).zip(xs).zip(&roots) {
            let (hw, soft) = (HwSqrt::sqrt(x), libm::sqrtf(x));
            #[cfg(feature = "provoke-sqrt-mismatch")]
            let hw = if BATCH * batch + k == 1000 {
                f32::from_bits(hw.to_bits() ^ 1)
            } else {
                hw
            };
            #[cfg(not(feature = "provoke-sqrt-mismatch"))]
            let _ = k;
            let differs = |r: f32| r.to_bits() != soft.to_bits() && !(r.is_nan() && soft.is_nan());
            // The scalar result if it differs, else the slice's.
            let wrong = if differs(hw) { hw } else { slice };
            if differs(wrong) {
                count += 1;
                first.get_or_insert(Mismatch {
                    x: x.to_bits(),
                    hw: wrong.to_bits(),
                    libm: soft.to_bits(),
                });
            }
        }
    }
    match first {
        None => Ok(()),
        Some(m) => Err((m, count)),
    }
}
