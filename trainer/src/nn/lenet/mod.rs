//! The LeNet's forward and backward passes on a shard of images, for one or several weight
//! samples at once, in preallocated workspaces.
//!
//! A weight sample is one flat `[f32; PARAMS]` vector laid out as [`LAYERS`] says. conv1 runs
//! all the shard's samples in one GEMM (its input columns are shared); the rest of the network
//! runs per sample.
//!
//! With local reparameterisation ([`Workspace::forward_backward_lr`]) the conv layers still use
//! the sampled weights, while fc1..fc3 take their means and variances and one ε per image and
//! output unit ([`LocalReparam`]): two GEMMs forward (mean and variance) and four backward, on
//! the same buffers, so the cost per image stays that of the weight-sampling path.

use crate::nn::conv::{self, ConvShape};
use crate::nn::kernels::{Aligned, Ld};
use crate::nn::linear;

mod local_reparam;

pub use local_reparam::LocalReparam;

/// conv1 shape.
pub const C1: ConvShape = ConvShape {
    cin: 1,
    cout: 6,
    k: 5,
    h: 28,
};
/// conv2 shape.
pub const C2: ConvShape = ConvShape {
    cin: 6,
    cout: 16,
    k: 5,
    h: 12,
};
/// Pixels per image.
pub const IN: usize = 784;
/// Values per image after pool 1 (6×12×12).
pub const P1: usize = 6 * 144;
/// Flattened features after pool 2 (16×4×4).
pub const FEAT: usize = 256;
/// fc1 width.
pub const H1: usize = 120;
/// fc2 width.
pub const H2: usize = 84;
/// Classes.
pub const OUT: usize = 10;
/// Output units of the three fully connected layers (pre-activation noise per image under
/// local reparameterisation).
pub const FC_UNITS: usize = H1 + H2 + OUT;
/// First parameter of the fully connected layers (= end of the convolutions').
pub const FC_START: usize = 2572;

/// Offsets of one layer's weights and biases in a flat parameter vector.
#[derive(Clone, Copy, Debug)]
pub struct LayerRange {
    /// Layer name.
    pub name: &'static str,
    /// First weight.
    pub w: usize,
    /// First bias (= end of the weights).
    pub b: usize,
    /// End of the biases.
    pub end: usize,
}

const fn lr(name: &'static str, w: usize, nw: usize, nb: usize) -> LayerRange {
    LayerRange {
        name,
        w,
        b: w + nw,
        end: w + nw + nb,
    }
}

/// The five layers' ranges, in order.
pub const LAYERS: [LayerRange; 5] = [
    lr("conv1", 0, 150, 6),
    lr("conv2", 156, 2400, 16),
    lr("fc1", 2572, 30720, 120),
    lr("fc2", 33412, 10080, 84),
    lr("fc3", 43576, 840, 10),
];
/// Parameters (weights and biases) in one flat vector.
pub const PARAMS: usize = 44_426;

/// The layer a flat parameter index belongs to.
pub fn layer_of(i: usize) -> &'static LayerRange {
    LAYERS.iter().find(|l| i < l.end).unwrap_or(&LAYERS[4])
}

/// Row stride for a matrix of `cols` columns: rounded up to 16 and then padded by 32 floats,
/// so consecutive rows are never a multiple of 4 KiB apart. Measured on the training shapes,
/// this padding changes nothing once the buffers are 64-byte aligned ([`Aligned`]); it is kept
/// as a guard against cache-set aliasing on other CPUs. Only addresses change, never the
/// arithmetic.
pub const fn padded(cols: usize) -> usize {
    cols.div_ceil(16) * 16 + PAD
}
const PAD: usize = 32;

/// Buffers for a shard of up to `cap_n` images and `cap_s` samples.
pub struct Workspace {
    cap_n: usize,
    cap_s: usize,
    /// Normalised input images, `[n][784]`; the caller fills it.
    pub x: Aligned,
    col1: Aligned,
    w1s: Aligned,
    b1s: Aligned,
    y1: Aligned,
    p1: Aligned,
    arg1: Vec<u8>,
    col2: Aligned,
    y2: Aligned,
    p2: Aligned,
    arg2: Vec<u8>,
    h1: Aligned,
    h2: Aligned,
    /// Logits of the last [`Workspace::tail_forward`], `[n][10]`.
    pub logits: Aligned,
    /// Local reparameterisation: `√var` of fc1, fc2, fc3 and the `x²` scratch.
    sd1: Aligned,
    sd2: Aligned,
    sd3: Aligned,
    sq: Aligned,
    back: Option<Back>,
}

struct Back {
    dlogits: Aligned,
    dh2: Aligned,
    dh1: Aligned,
    dp2: Aligned,
    dy2: Aligned,
    dcol2: Aligned,
    dp1: Aligned,
    dy1: Aligned,
    dw1s: Aligned,
    dv: Aligned,
    tmp: Aligned,
}

/// Per-sample result of the softmax cross-entropy.
#[derive(Clone, Copy, Debug, Default)]
pub struct CeOut {
    /// Σ over the shard's images of −ln softmax(z)[y].
    pub ce_sum: f64,
    /// Images whose argmax logit is the label.
    pub correct: usize,
}

impl Workspace {
    /// Buffers for `cap_n` images and `cap_s` stacked samples; `backward` adds the gradient
    /// buffers.
    pub fn new(cap_n: usize, cap_s: usize, backward: bool) -> Self {
        let (n, s) = (cap_n, cap_s);
        let n1 = padded(n * C1.positions());
        let n2 = padded(n * C2.positions());
        let back = backward.then(|| Back {
            dlogits: Aligned::zeros(n * OUT),
            dh2: Aligned::zeros(n * H2),
            dh1: Aligned::zeros(n * H1),
            dp2: Aligned::zeros(n * FEAT),
            dy2: Aligned::zeros(16 * n2),
            dcol2: Aligned::zeros(C2.kdim() * n2),
            dp1: Aligned::zeros(n * P1),
            dy1: Aligned::zeros(s * 6 * n1),
            dw1s: Aligned::zeros(s * 150),
            dv: Aligned::zeros(n * H1),
            tmp: Aligned::zeros(n * FEAT),
        });
        Workspace {
            cap_n,
            cap_s,
            x: Aligned::zeros(n * IN),
            col1: Aligned::zeros(C1.kdim() * n1),
            w1s: Aligned::zeros(s * 150),
            b1s: Aligned::zeros(s * 6),
            y1: Aligned::zeros(s * 6 * n1),
            p1: Aligned::zeros(s * n * P1),
            arg1: vec![0; s * n * P1],
            col2: Aligned::zeros(C2.kdim() * n2),
            y2: Aligned::zeros(16 * n2),
            p2: Aligned::zeros(n * FEAT),
            arg2: vec![0; n * FEAT],
            h1: Aligned::zeros(n * H1),
            h2: Aligned::zeros(n * H2),
            logits: Aligned::zeros(n * OUT),
            sd1: Aligned::zeros(n * H1),
            sd2: Aligned::zeros(n * H2),
            sd3: Aligned::zeros(n * OUT),
            sq: Aligned::zeros(n * FEAT),
            back,
        }
    }

    /// Image capacity.
    pub fn cap_n(&self) -> usize {
        self.cap_n
    }

    /// Builds conv1's columns from `x` (shared by all samples).
    pub fn prepare_input(&mut self, n: usize) {
        assert!(n <= self.cap_n);
        conv::im2col_ld(C1, &self.x, n, &mut self.col1, padded(n * 576));
    }

    /// conv1 + bias + ReLU + pool for every sample in `weights` (≤ `cap_s`), stacked in one GEMM.
    pub fn conv1(&mut self, n: usize, weights: &[&[f32]]) {
        let s = weights.len();
        assert!(s <= self.cap_s && n <= self.cap_n);
        let l = LAYERS[0];
        for (j, w) in weights.iter().enumerate() {
            self.w1s[j * 150..(j + 1) * 150].copy_from_slice(&w[l.w..l.b]);
            self.b1s[j * 6..(j + 1) * 6].copy_from_slice(&w[l.b..l.end]);
        }
        let n1 = n * C1.positions();
        let ld1 = padded(n1);
        let ld = Ld { a: ld1, b: ld1 };
        conv::conv_gemm_ld(&self.w1s, s * 6, 25, &self.col1, n1, &mut self.y1, ld);
        for r in 0..s * 6 {
            let (j, c) = (r / 6, r % 6);
            for i in 0..n {
                let y = &self.y1[r * ld1 + i * 576..r * ld1 + (i + 1) * 576];
                let o = ((j * n + i) * 6 + c) * 144;
                conv::pool_forward(
                    y,
                    24,
                    self.b1s[r],
                    &mut self.p1[o..o + 144],
                    &mut self.arg1[o..o + 144],
                );
            }
        }
    }

    /// The rest of the network for stacked sample `j` with weights `w`: conv2 → … → logits.
    pub fn tail_forward(&mut self, n: usize, j: usize, w: &[f32]) {
        self.conv2_forward(n, j, w);
        self.fc_forward(n, w);
    }

    /// conv2 + bias + ReLU + pool of stacked sample `j` into the flattened features.
    fn conv2_forward(&mut self, n: usize, j: usize, w: &[f32]) {
        let p1 = &self.p1[j * n * P1..(j + 1) * n * P1];
        let n2 = n * 64;
        let ld2 = padded(n2);
        conv::im2col_ld(C2, p1, n, &mut self.col2, ld2);
        let l = LAYERS[1];
        let ld = Ld { a: ld2, b: ld2 };
        conv::conv_gemm_ld(&w[l.w..l.b], 16, 150, &self.col2, n2, &mut self.y2, ld);
        for c in 0..16 {
            for i in 0..n {
                let y = &self.y2[c * ld2 + i * 64..c * ld2 + (i + 1) * 64];
                let o = (i * 16 + c) * 16;
                conv::pool_forward(
                    y,
                    8,
                    w[l.b + c],
                    &mut self.p2[o..o + 16],
                    &mut self.arg2[o..o + 16],
                );
            }
        }
    }

    /// fc1 → fc2 → fc3 with sampled weights `w`.
    fn fc_forward(&mut self, n: usize, w: &[f32]) {
        let [_, _, f1, f2, f3] = LAYERS;
        linear::forward(
            &self.p2,
            &w[f1.w..f1.b],
            &w[f1.b..f1.end],
            n,
            FEAT,
            &mut self.h1,
            true,
        );
        linear::forward(
            &self.h1,
            &w[f2.w..f2.b],
            &w[f2.b..f2.end],
            n,
            H1,
            &mut self.h2,
            true,
        );
        linear::forward(
            &self.h2,
            &w[f3.w..f3.b],
            &w[f3.b..f3.end],
            n,
            H2,
            &mut self.logits,
            false,
        );
    }

    /// Softmax cross-entropy of the current logits; writes `∂/∂logits · scale` for the backward.
    pub fn softmax_ce(&mut self, n: usize, labels: &[u8], scale: f32) -> CeOut {
        let back = self.back.as_mut().expect("backward workspace");
        let mut out = CeOut::default();
        for i in 0..n {
            let z = &self.logits[i * OUT..(i + 1) * OUT];
            let y = labels[i] as usize;
            let (lse, am) = log_sum_exp(z);
            out.ce_sum += (lse - z[y]) as f64;
            out.correct += (am == y) as usize;
            let d = &mut back.dlogits[i * OUT..(i + 1) * OUT];
            for c in 0..OUT {
                let p = (z[c] - lse).exp();
                d[c] = (p - (c == y) as u8 as f32) * scale;
            }
        }
        out
    }

    /// Backward of [`Workspace::tail_forward`] for sample `j` from the gradient written by
    /// [`Workspace::softmax_ce`]: fills that sample's gradients of conv2..fc3 and conv1's
    /// bias (into `g`, flat like the weights), and its block of conv1's output gradient.
    pub fn tail_backward(&mut self, n: usize, j: usize, w: &[f32], g: &mut [f32]) {
        self.fc_backward(n, w, g);
        self.conv_tail_backward(n, j, w, g);
    }

    /// fc3 → fc2 → fc1 backward with sampled weights `w`, down to `dp2`.
    fn fc_backward(&mut self, n: usize, w: &[f32], g: &mut [f32]) {
        let b = self.back.as_mut().expect("backward workspace");
        let [_, _, f1, f2, f3] = LAYERS;
        {
            let (gw, gb) = g[f3.w..f3.end].split_at_mut(f3.b - f3.w);
            linear::backward(
                &self.h2,
                &w[f3.w..f3.b],
                &b.dlogits,
                n,
                H2,
                OUT,
                gw,
                gb,
                Some(&mut b.dh2),
            );
        }
        linear::relu_mask(&self.h2[..n * H2], &mut b.dh2);
        {
            let (gw, gb) = g[f2.w..f2.end].split_at_mut(f2.b - f2.w);
            linear::backward(
                &self.h1,
                &w[f2.w..f2.b],
                &b.dh2,
                n,
                H1,
                H2,
                gw,
                gb,
                Some(&mut b.dh1),
            );
        }
        linear::relu_mask(&self.h1[..n * H1], &mut b.dh1);
        {
            let (gw, gb) = g[f1.w..f1.end].split_at_mut(f1.b - f1.w);
            linear::backward(
                &self.p2,
                &w[f1.w..f1.b],
                &b.dh1,
                n,
                FEAT,
                H1,
                gw,
                gb,
                Some(&mut b.dp2),
            );
        }
    }

    /// pool2 → conv2 → pool1 backward of sample `j` from `dp2`.
    fn conv_tail_backward(&mut self, n: usize, j: usize, w: &[f32], g: &mut [f32]) {
        let b = self.back.as_mut().expect("backward workspace");
        let [l1, l2, _, _, _] = LAYERS;
        // pool2 → conv2
        let n2 = n * 64;
        let ld2 = padded(n2);
        let ld = Ld { a: ld2, b: ld2 };
        for c in 0..16 {
            let mut db = 0.0f32;
            for i in 0..n {
                let o = (i * 16 + c) * 16;
                db += conv::pool_backward(
                    &b.dp2[o..o + 16],
                    &self.p2[o..o + 16],
                    &self.arg2[o..o + 16],
                    8,
                    &mut b.dy2[c * ld2 + i * 64..c * ld2 + (i + 1) * 64],
                );
            }
            g[l2.b + c] = db;
        }
        conv::conv_grad_w_ld(&b.dy2, 16, &self.col2, 150, n2, &mut g[l2.w..l2.b], ld);
        conv::conv_grad_col_ld(&w[l2.w..l2.b], 16, 150, &b.dy2, n2, &mut b.dcol2, ld);
        conv::col2im_ld(C2, &b.dcol2, n, &mut b.dp1, ld2);
        let ld1 = padded(n * 576);
        // pool1 of sample j → its rows of dy1
        for c in 0..6 {
            let r = j * 6 + c;
            let mut db = 0.0f32;
            for i in 0..n {
                let o = ((j * n + i) * 6 + c) * 144;
                let d = (i * 6 + c) * 144;
                db += conv::pool_backward(
                    &b.dp1[d..d + 144],
                    &self.p1[o..o + 144],
                    &self.arg1[o..o + 144],
                    24,
                    &mut b.dy1[r * ld1 + i * 576..r * ld1 + (i + 1) * 576],
                );
            }
            g[l1.b + c] = db;
        }
    }

    /// conv1's weight gradients for the `s` stacked samples, after every sample's
    /// [`Workspace::tail_backward`], into `grads[j]` for sample `j`.
    pub fn conv1_backward(&mut self, n: usize, s: usize, grads: &mut [Vec<f32>]) {
        let b = self.back.as_mut().expect("backward workspace");
        let n1 = n * 576;
        let ld1 = padded(n1);
        let ld = Ld { a: ld1, b: ld1 };
        conv::conv_grad_w_ld(&b.dy1, s * 6, &self.col1, 25, n1, &mut b.dw1s, ld);
        for j in 0..s {
            grads[j][..150].copy_from_slice(&b.dw1s[j * 150..(j + 1) * 150]);
        }
    }

    /// Forward and backward of `weights.len()` samples on the `n` images in `x`: returns the
    /// cross-entropy per sample and writes `∂L/∂w` of sample `j` into `grads[j]`.
    pub fn forward_backward(
        &mut self,
        n: usize,
        labels: &[u8],
        weights: &[&[f32]],
        scale: f32,
        grads: &mut [Vec<f32>],
    ) -> Vec<CeOut> {
        self.prepare_input(n);
        self.conv1(n, weights);
        let mut outs = Vec::with_capacity(weights.len());
        for (j, w) in weights.iter().enumerate() {
            self.tail_forward(n, j, w);
            outs.push(self.softmax_ce(n, labels, scale));
            self.tail_backward(n, j, w, &mut grads[j]);
        }
        self.conv1_backward(n, weights.len(), grads);
        outs
    }
}

/// `(ln Σ e^z, argmax z)`.
#[inline]
pub fn log_sum_exp(z: &[f32]) -> (f32, usize) {
    let mut am = 0;
    for c in 1..z.len() {
        if z[c] > z[am] {
            am = c;
        }
    }
    let m = z[am];
    let s: f32 = z.iter().map(|&v| (v - m).exp()).sum();
    (m + s.ln(), am)
}
