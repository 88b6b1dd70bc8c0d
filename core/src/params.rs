//! A layer's parameters as fixed-size borrowed byte arrays, and how a weight is drawn from
//! its posterior (the mean, or one Gaussian sample).

use core::marker::PhantomData;

use crate::format::{le_f32, Layer};
use crate::gauss::standard_normal;
use crate::rng::Rng;

/// A layer's posterior means and variances, `WB` bytes of weights and `BB` bytes of biases,
/// borrowed from the model file (little-endian `f32`, read in place).
#[derive(Clone, Copy, Debug)]
pub struct Params<'m, const WB: usize, const BB: usize> {
    /// Weight means.
    pub weight_mean: &'m [u8; WB],
    /// Weight variances σ².
    pub weight_var: &'m [u8; WB],
    /// Bias means.
    pub bias_mean: &'m [u8; BB],
    /// Bias variances σ².
    pub bias_var: &'m [u8; BB],
}

impl<'m, const WB: usize, const BB: usize> Params<'m, WB, BB> {
    /// Views of a decoded layer's arrays, if they are stored as `f32` and their byte lengths
    /// are `WB` and `BB`.
    pub fn from_layer(layer: &Layer<'m>) -> Option<Self> {
        let f32s = |t: &crate::format::Tensor<'m>| t.as_f32().map(|v| v.as_bytes());
        Some(Params {
            weight_mean: f32s(&layer.weight_mean)?.try_into().ok()?,
            weight_var: f32s(&layer.weight_var)?.try_into().ok()?,
            bias_mean: f32s(&layer.bias_mean)?.try_into().ok()?,
            bias_var: f32s(&layer.bias_var)?.try_into().ok()?,
        })
    }
}

/// Whether the sampled layers turn their variances into standard deviations before drawing
/// ([`Draw::prepare`]: a row of `dense2`, a convolution kernel): on the Cortex-M4 (32-bit
/// Arm) it saves ≈ 4 instructions per weight pair and frees registers; on x86-64, where the
/// square root is one instruction in the loop, the extra pass made `Weights` ≈ 20% and
/// `Mean` ≈ 5% slower. The same bits either way (tests run both).
pub(crate) const PREPARE: bool = cfg!(target_arch = "arm");

/// How a weight or bias is obtained from its posterior N(mean, var).
pub trait Draw {
    /// Whether [`draw`](Self::draw) reads the variance (`false` for [`MeanDraw`]: a
    /// quantised model then skips decoding variances).
    const USES_VAR: bool = true;

    /// The value used for a parameter with posterior mean `mean` and variance `var`.
    fn draw(&mut self, mean: f32, var: f32) -> f32;

    /// Two values for the same parameter, for two Monte Carlo samples at once: the first
    /// draw, then the second (the same bits as two calls of [`draw`](Self::draw)).
    #[inline(always)]
    fn draw2(&mut self, mean: f32, var: f32) -> (f32, f32) {
        let a = self.draw(mean, var);
        (a, self.draw(mean, var))
    }

    /// Turns variances into what [`draw2_prepared`](Self::draw2_prepared) takes, `out[k]`
    /// from `var[k]` (the shorter length): the variances themselves by default, the standard
    /// deviations for [`SampleDraw`] (all square roots of a row in one call, which a
    /// [`Sqrt`] can do faster than one at a time). Draws nothing.
    #[inline(always)]
    fn prepare(var: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(var) {
            *o = v;
        }
    }

    /// [`draw`](Self::draw) from a value made by [`prepare`](Self::prepare): the same bits
    /// and the same draws.
    #[inline(always)]
    fn draw_prepared(&mut self, mean: f32, prepared: f32) -> f32 {
        self.draw(mean, prepared)
    }

    /// [`draw2`](Self::draw2) from a value made by [`prepare`](Self::prepare): the same bits
    /// and the same draws.
    #[inline(always)]
    fn draw2_prepared(&mut self, mean: f32, prepared: f32) -> (f32, f32) {
        self.draw2(mean, prepared)
    }
}

/// The posterior mean: deterministic, consumes no random numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeanDraw;

impl Draw for MeanDraw {
    const USES_VAR: bool = false;

    #[inline(always)]
    fn draw(&mut self, mean: f32, _var: f32) -> f32 {
        mean
    }

    /// Nothing to prepare: the variances are not used.
    #[inline(always)]
    fn prepare(_var: &[f32], _out: &mut [f32]) {}
}

/// The square root used to turn a variance into a standard deviation.
///
/// IEEE 754 square root is correctly rounded, so every correct implementation gives the same
/// bits: [`LibmSqrt`] (`libm::sqrtf`, the default), `f32::sqrt` of `std` (x86's `sqrtss`),
/// the Cortex-M4F's `vsqrt.f32`. `libm::sqrtf` is a software routine on the Cortex-M4
/// (≈ 60 instructions, about half the cost of drawing a weight); a firmware may pass an
/// implementation with the hardware instruction (it needs `asm!`, which this crate forbids):
///
/// ```
/// struct StdSqrt;
/// impl tinyvi::params::Sqrt for StdSqrt {
///     fn sqrt(x: f32) -> f32 {
///         x.sqrt()
///     }
/// }
/// ```
///
/// An implementation must return the correctly rounded square root for every input
/// (`−0 → −0`, negative → NaN, `+∞ → +∞`, subnormals exact), or the host and the device
/// stop agreeing bit for bit.
pub trait Sqrt {
    /// The correctly rounded square root of `x`.
    fn sqrt(x: f32) -> f32;

    /// `out[k] = sqrt(x[k])` for every `k` below the shorter length, with the bits of
    /// [`sqrt`](Self::sqrt). The default calls it in a loop; an implementation can do better
    /// (the firmware's `HwSqrt` keeps the values in FPU registers: 1.5 Cortex-M4
    /// instructions per root instead of ≈ 7 with the moves to and from core registers).
    #[inline(always)]
    fn sqrt_slice(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = Self::sqrt(v);
        }
    }
}

/// `libm::sqrtf`: the portable default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LibmSqrt;

impl Sqrt for LibmSqrt {
    #[inline(always)]
    fn sqrt(x: f32) -> f32 {
        libm::sqrtf(x)
    }
}

/// One sample `mean + sqrt(var)·ε`, `ε` the next standard normal of the generator, the
/// square root computed by `S`. Owns its generator (a copy can then live in registers);
/// [`into_rng`](Self::into_rng) gives it back.
#[derive(Debug)]
pub struct SampleDraw<S: Sqrt = LibmSqrt>(Rng, PhantomData<fn() -> S>);

impl<S: Sqrt> Clone for SampleDraw<S> {
    fn clone(&self) -> Self {
        SampleDraw(self.0.clone(), PhantomData)
    }
}

impl SampleDraw<LibmSqrt> {
    /// Draws from `rng` with `libm::sqrtf`.
    pub fn new(rng: Rng) -> Self {
        SampleDraw(rng, PhantomData)
    }
}

impl<S: Sqrt> SampleDraw<S> {
    /// Draws from `rng` with the square root `S`.
    pub fn with_sqrt(rng: Rng) -> Self {
        SampleDraw(rng, PhantomData)
    }

    /// The generator, advanced by every draw made.
    pub fn into_rng(self) -> Rng {
        self.0
    }
}

impl<S: Sqrt> Draw for SampleDraw<S> {
    #[inline(always)]
    fn draw(&mut self, mean: f32, var: f32) -> f32 {
        let eps = standard_normal(&mut self.0);
        mean + S::sqrt(var) * eps
    }

    /// One square root for both draws: `mean + σ·ε_a`, `mean + σ·ε_b`.
    #[inline(always)]
    fn draw2(&mut self, mean: f32, var: f32) -> (f32, f32) {
        self.draw2_prepared(mean, S::sqrt(var))
    }

    /// The standard deviations `S::sqrt(var)`, by [`Sqrt::sqrt_slice`].
    #[inline(always)]
    fn prepare(var: &[f32], out: &mut [f32]) {
        S::sqrt_slice(var, out);
    }

    /// `mean + σ·ε` with `σ = sd`.
    #[inline(always)]
    fn draw_prepared(&mut self, mean: f32, sd: f32) -> f32 {
        mean + sd * standard_normal(&mut self.0)
    }

    /// `mean + σ·ε_a`, `mean + σ·ε_b` with `σ = sd`.
    #[inline(always)]
    fn draw2_prepared(&mut self, mean: f32, sd: f32) -> (f32, f32) {
        let a = mean + sd * standard_normal(&mut self.0);
        (a, mean + sd * standard_normal(&mut self.0))
    }
}

/// Fills `out` with drawn values from little-endian means and variances, in order.
#[inline(always)]
pub fn draw_into<D: Draw>(mean: &[u8], var: &[u8], d: &mut D, out: &mut [f32]) {
    for (o, (m, v)) in out
        .iter_mut()
        .zip(mean.chunks_exact(4).zip(var.chunks_exact(4)))
    {
        *o = d.draw(le_f32(m), le_f32(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<const N: usize, const B: usize>(v: [f32; N]) -> [u8; B] {
        let mut out = [0u8; B];
        for (o, x) in out.chunks_exact_mut(4).zip(v) {
            o.copy_from_slice(&x.to_le_bytes());
        }
        out
    }

    #[test]
    fn mean_draw_copies_and_sample_draw_follows_the_generator() {
        let m: [u8; 12] = bytes([1.0, -2.0, 0.5]);
        let v: [u8; 12] = bytes([0.0, 4.0, 0.25]);
        let mut out = [0f32; 3];
        draw_into(&m, &v, &mut MeanDraw, &mut out);
        assert_eq!(out, [1.0, -2.0, 0.5]);

        let mut d = SampleDraw::new(Rng::seed_from_u64(11));
        draw_into(&m, &v, &mut d, &mut out);
        let rng = d.into_rng();
        let mut again = Rng::seed_from_u64(11);
        let e: [f32; 3] = core::array::from_fn(|_| standard_normal(&mut again));
        assert_eq!(out, [1.0, -2.0 + 2.0 * e[1], 0.5 + 0.5 * e[2]]);
        assert_ne!(e[0], 0.0); // an ε was consumed even for a zero variance
        assert_eq!(rng, again);
    }
}
