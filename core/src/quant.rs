//! Inference from `f16` and `int8` model files: the parameters stay in the model bytes and
//! are decoded to `f32` as the kernels reach them (a bias array, a 5×5 kernel, one row of a
//! fully-connected layer at a time), then go through the same `f32` kernels as an `f32`
//! file, in the same order.
//!
//! So a quantised file gives the bits of the `f32` file of its decoded values
//! ([`crate::format::Tensor::get`]): the same draws, sums and results
//! (`tests::quantised_file_gives_the_bits_of_its_decoded_f32_file`). A log-scale σ code is
//! decoded through a 256-entry table of variances computed (with `libm::expf`) when a layer
//! starts; [`MeanDraw`](crate::params::MeanDraw) decodes no variance at all.

use crate::arch::CLASSES;
use crate::conv::conv5x5_acc;
use crate::dense::{rows_drawn, rows_drawn2, rows_pair};
use crate::format::{le_f16, le_f32, Layer, Tensor};
use crate::infer::{fill, kernel, relu, Scratch, CH1, CH2, FLAT, H1, H2};
use crate::params::{draw_into, Draw, Sqrt, PREPARE};
use crate::pool::relu_maxpool2;
use crate::rng::Rng;

/// The five layers of a LeNet read from an `f16` or `int8` file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuantNet<'m> {
    pub(crate) layers: [Layer<'m>; 5],
}

/// The variance of every log-scale code of `t` (zeros for other encodings, which need none).
fn var_table(t: &Tensor<'_>) -> [f32; 256] {
    let mut table = [0f32; 256];
    if let Tensor::LogSd(l) = t {
        for (code, v) in (0..=u8::MAX).zip(table.iter_mut()) {
            let s = l.sd(code);
            *v = s * s;
        }
    }
    table
}

/// Values `start .. start + out.len()` of `t` (zeros past its end), `table` holding the
/// variances of its log-scale codes ([`var_table`]).
#[inline(always)]
fn decode(t: &Tensor<'_>, table: &[f32; 256], start: usize, out: &mut [f32]) {
    match t {
        Tensor::F32(v) => {
            let b = v.as_bytes().get(start * 4..).unwrap_or(&[]);
            for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                *o = le_f32(c);
            }
        }
        Tensor::F16(h) => {
            let b = h.as_bytes().get(start * 2..).unwrap_or(&[]);
            for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                *o = le_f16(c);
            }
        }
        Tensor::F16Sd(h) => {
            let b = h.as_bytes().get(start * 2..).unwrap_or(&[]);
            for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                let s = le_f16(c);
                *o = s * s;
            }
        }
        Tensor::Int8(q) => {
            let per = q.per_channel().max(1);
            let codes = q.codes().get(start..).unwrap_or(&[]);
            if start % per + out.len() <= per {
                // Within one output channel (a kernel, a row): one scale.
                let scale = q.scales().get(start / per).unwrap_or(0.0);
                for (o, &c) in out.iter_mut().zip(codes) {
                    *o = c as i8 as f32 * scale;
                }
            } else {
                for (i, (o, &c)) in out.iter_mut().zip(codes).enumerate() {
                    *o = c as i8 as f32 * q.scales().get((start + i) / per).unwrap_or(0.0);
                }
            }
        }
        Tensor::LogSd(l) => {
            let codes = l.codes().get(start..).unwrap_or(&[]);
            for (o, &c) in out.iter_mut().zip(codes) {
                *o = table.get(c as usize).copied().unwrap_or(0.0);
            }
        }
    }
}

/// The `f32` bytes of decoded values, as the kernels read them (4-aligned).
#[inline(always)]
fn bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// A layer's decoded biases drawn by `d` in order, into `out` (`draw_into`'s order).
#[inline(always)]
fn biases<D: Draw>(l: &Layer<'_>, d: &mut D, out: &mut [f32]) {
    let mut m = [0f32; H1];
    let mut v = [0f32; H1];
    let n = out.len().min(H1);
    let (Some(m), Some(v)) = (m.get_mut(..n), v.get_mut(..n)) else {
        return; // unreachable: no layer has more than H1 outputs
    };
    let none = [0f32; 256];
    decode(&l.bias_mean, &none, 0, m);
    if D::USES_VAR {
        decode(&l.bias_var, &none, 0, v);
    }
    draw_into(bytes(m), bytes(v), d, out);
}

/// A fully-connected layer of one sample ([`crate::dense::dense`]'s draws and sums), rows
/// decoded one at a time.
#[inline(never)]
fn dense_q<D: Draw + Clone, const IN: usize, const OUT: usize>(
    x: &[f32; IN],
    l: &Layer<'_>,
    d: &mut D,
    out: &mut [f32; OUT],
) {
    let mut local = d.clone();
    biases(l, &mut local, out);
    let table = if D::USES_VAR {
        var_table(&l.weight_var)
    } else {
        [0f32; 256]
    };
    let mut m = [0f32; IN];
    let mut v = [0f32; IN];
    for (o, acc) in out.iter_mut().enumerate() {
        decode(&l.weight_mean, &table, o * IN, &mut m);
        if D::USES_VAR {
            decode(&l.weight_var, &table, o * IN, &mut v);
        }
        rows_drawn::<f32, D, IN>(&m, &v, x, &mut local, core::slice::from_mut(acc));
    }
    *d = local;
}

/// A fully-connected layer of a `Weights` pair ([`crate::dense::dense2`]'s draws and sums).
#[inline(never)]
fn dense2_q<D: Draw + Clone, const IN: usize, const OUT: usize>(
    xa: &[f32; IN],
    xb: &[f32; IN],
    l: &Layer<'_>,
    d: &mut D,
    outa: &mut [f32; OUT],
    outb: &mut [f32; OUT],
) {
    let mut local = d.clone();
    let mut bm = [0f32; OUT];
    let mut bv = [0f32; OUT];
    let table = var_table(&l.weight_var);
    decode(&l.bias_mean, &table, 0, &mut bm);
    decode(&l.bias_var, &table, 0, &mut bv);
    for ((a, b), (&m, &v)) in outa.iter_mut().zip(outb.iter_mut()).zip(bm.iter().zip(&bv)) {
        (*a, *b) = local.draw2(m, v);
    }
    let mut m = [0f32; IN];
    let mut v = [0f32; IN];
    let mut prepared = [0f32; IN];
    for (o, (a, b)) in outa.iter_mut().zip(outb.iter_mut()).enumerate() {
        decode(&l.weight_mean, &table, o * IN, &mut m);
        decode(&l.weight_var, &table, o * IN, &mut v);
        let (a, b) = (core::slice::from_mut(a), core::slice::from_mut(b));
        if PREPARE {
            rows_drawn2::<D, true>(&m, &v, xa, xb, &mut local, a, b, &mut prepared);
        } else {
            rows_drawn2::<D, false>(&m, &v, xa, xb, &mut local, a, b, &mut []);
        }
    }
    *d = local;
}

/// A fully-connected layer with local reparameterisation
/// ([`crate::dense::dense_local_reparam`]'s draws and sums).
#[inline(never)]
fn dense_local_reparam_q<S: Sqrt, const IN: usize, const OUT: usize>(
    x: &[f32; IN],
    l: &Layer<'_>,
    rng: &mut Rng,
    out: &mut [f32; OUT],
) {
    let mut x2 = [0f32; IN];
    for (s, &v) in x2.iter_mut().zip(x) {
        *s = v * v;
    }
    let table = var_table(&l.weight_var);
    let mut m = [0f32; IN];
    let mut v = [0f32; IN];
    let (mut bm, mut bv) = ([0f32; 1], [0f32; 1]);
    for (o, acc) in out.iter_mut().enumerate() {
        decode(&l.weight_mean, &table, o * IN, &mut m);
        decode(&l.weight_var, &table, o * IN, &mut v);
        decode(&l.bias_mean, &table, o, &mut bm);
        decode(&l.bias_var, &table, o, &mut bv);
        rows_pair::<S, f32, IN>(
            &m,
            &v,
            bytes(&bm),
            bytes(&bv),
            x,
            &x2,
            rng,
            core::slice::from_mut(acc),
        );
    }
}

/// One 5×5 kernel (`index` in storage order) of a convolution, decoded and drawn into `w`.
#[inline(always)]
fn conv_kernel<D: Draw + Clone>(
    l: &Layer<'_>,
    table: &[f32; 256],
    index: usize,
    d: &mut D,
    w: &mut [[f32; 5]; 5],
) {
    let mut m = [0f32; 25];
    let mut v = [0f32; 25];
    decode(&l.weight_mean, table, index * 25, &mut m);
    if D::USES_VAR {
        decode(&l.weight_var, table, index * 25, &mut v);
    }
    kernel(bytes(&m), bytes(&v), d, w);
}

impl QuantNet<'_> {
    /// conv1 → ReLU → pool → conv2 → ReLU → pool, from `s.x` into `s.p2`, in the order of
    /// the `f32` network.
    #[inline(never)]
    pub(crate) fn features<D: Draw + Clone>(&self, d: &mut D, s: &mut Scratch) {
        let [l1, l2, ..] = &self.layers;
        let mut bias1 = [0f32; CH1];
        biases(l1, d, &mut bias1);
        let table = if D::USES_VAR {
            var_table(&l1.weight_var)
        } else {
            [0f32; 256]
        };
        let mut w = [[0f32; 5]; 5];
        for (k, (pooled, &b)) in s.p1.iter_mut().zip(&bias1).enumerate() {
            conv_kernel(l1, &table, k, d, &mut w);
            fill(s.c1.as_flattened_mut(), b);
            conv5x5_acc(&s.x, &w, &mut s.c1);
            relu_maxpool2(&s.c1, pooled);
        }

        let mut bias2 = [0f32; CH2];
        biases(l2, d, &mut bias2);
        for (acc, &b) in s.c2.iter_mut().zip(&bias2) {
            fill(acc.as_flattened_mut(), b);
        }
        let table = if D::USES_VAR {
            var_table(&l2.weight_var)
        } else {
            [0f32; 256]
        };
        // Input channel outermost: kernel (out, in) is number out·6 + in.
        for (ic, input) in s.p1.iter().enumerate() {
            for (oc, acc) in s.c2.iter_mut().enumerate() {
                conv_kernel(l2, &table, oc * CH1 + ic, d, &mut w);
                conv5x5_acc(input, &w, acc);
            }
        }
        for (acc, pooled) in s.c2.iter().zip(s.p2.iter_mut()) {
            relu_maxpool2(acc, pooled);
        }
    }

    /// fc1 → ReLU → fc2 → ReLU → fc3 of one sample, from `s.p2` into `s.logits`.
    #[inline(always)]
    pub(crate) fn classifier<D: Draw + Clone>(&self, d: &mut D, s: &mut Scratch) {
        let [_, _, l3, l4, l5] = &self.layers;
        let Ok(flat) = <&[f32; FLAT]>::try_from(s.p2.as_flattened().as_flattened()) else {
            return; // unreachable: 16·4·4 = 256
        };
        dense_q(flat, l3, d, &mut s.h1);
        relu(&mut s.h1);
        dense_q(&s.h1, l4, d, &mut s.h2);
        relu(&mut s.h2);
        dense_q::<D, H2, CLASSES>(&s.h2, l5, d, &mut s.logits);
    }

    /// The classifier of a `Weights` pair: the first sample's features in `s.p2a` (output
    /// `s.logits_a`), the second's in `s.p2` (output `s.logits`).
    #[inline(always)]
    pub(crate) fn classifier2<D: Draw + Clone>(&self, d: &mut D, s: &mut Scratch) {
        let [_, _, l3, l4, l5] = &self.layers;
        let Ok(flat) = <&[f32; FLAT]>::try_from(s.p2.as_flattened().as_flattened()) else {
            return; // unreachable: 16·4·4 = 256
        };
        dense2_q(&s.p2a, flat, l3, d, &mut s.h1a, &mut s.h1);
        relu(&mut s.h1a);
        relu(&mut s.h1);
        dense2_q(&s.h1a, &s.h1, l4, d, &mut s.h2a, &mut s.h2);
        relu(&mut s.h2a);
        relu(&mut s.h2);
        dense2_q::<D, H2, CLASSES>(&s.h2a, &s.h2, l5, d, &mut s.logits_a, &mut s.logits);
    }

    /// The classifier with local reparameterisation.
    #[inline(always)]
    pub(crate) fn classifier_local_reparam<S: Sqrt>(&self, rng: &mut Rng, s: &mut Scratch) {
        let [_, _, l3, l4, l5] = &self.layers;
        let Ok(flat) = <&[f32; FLAT]>::try_from(s.p2.as_flattened().as_flattened()) else {
            return; // unreachable: 16·4·4 = 256
        };
        dense_local_reparam_q::<S, FLAT, H1>(flat, l3, rng, &mut s.h1);
        relu(&mut s.h1);
        dense_local_reparam_q::<S, H1, H2>(&s.h1, l4, rng, &mut s.h2);
        relu(&mut s.h2);
        dense_local_reparam_q::<S, H2, CLASSES>(&s.h2, l5, rng, &mut s.logits);
    }
}
