//! Local reparameterisation of the fully connected layers: fc1..fc3 take their means and
//! variances and one ε per image and output unit, two GEMMs forward (mean and variance) and
//! four backward, on the workspace's buffers; the conv layers keep the sampled weights.

use super::*;

/// The fully connected layers' distribution for local reparameterisation: flat `μ` and
/// `σ²` laid out as [`LAYERS`] (only the fc ranges are read), and the pre-activation noise of
/// one sample, `[n·120 | n·84 | n·10]` (blocks of fc1, fc2, fc3, row-major per image).
#[derive(Clone, Copy)]
pub struct LocalReparam<'a> {
    /// Posterior means.
    pub mu: &'a [f32],
    /// Posterior variances σ².
    pub var: &'a [f32],
    /// ε per image and output unit.
    pub eps: &'a [f32],
}

impl LocalReparam<'_> {
    /// ε of the three layers for `n` images.
    fn split(&self, n: usize) -> [&[f32]; 3] {
        let (e1, rest) = self.eps[..n * FC_UNITS].split_at(n * H1);
        let (e2, e3) = rest.split_at(n * H2);
        [e1, e2, e3]
    }

    fn layer(&self, l: LayerRange) -> (linear::Pair<'_>, linear::Pair<'_>) {
        (
            (&self.mu[l.w..l.b], &self.var[l.w..l.b]),
            (&self.mu[l.b..l.end], &self.var[l.b..l.end]),
        )
    }
}

impl Workspace {
    /// [`Workspace::tail_forward`] with the fully connected layers locally reparameterised
    /// (their part of `w` is not read).
    pub fn tail_forward_lr(&mut self, n: usize, j: usize, w: &[f32], lr: &LocalReparam) {
        self.conv2_forward(n, j, w);
        let [_, _, f1, f2, f3] = LAYERS;
        let [e1, e2, e3] = lr.split(n);
        let (w1, b1) = lr.layer(f1);
        linear::lr_forward(
            &self.p2,
            w1,
            b1,
            n,
            FEAT,
            e1,
            &mut self.h1,
            &mut self.sd1,
            &mut self.sq,
            true,
        );
        let (w2, b2) = lr.layer(f2);
        linear::lr_forward(
            &self.h1,
            w2,
            b2,
            n,
            H1,
            e2,
            &mut self.h2,
            &mut self.sd2,
            &mut self.sq,
            true,
        );
        let (w3, b3) = lr.layer(f3);
        linear::lr_forward(
            &self.h2,
            w3,
            b3,
            n,
            H2,
            e3,
            &mut self.logits,
            &mut self.sd3,
            &mut self.sq,
            false,
        );
    }

    /// [`Workspace::tail_backward`] after [`Workspace::tail_forward_lr`]: the fc layers'
    /// `∂L/∂μ` go into `g` and their `∂L/∂σ²` into `gvar` (both flat like the weights; only the
    /// fc ranges of `gvar` are written); the conv layers' `∂L/∂w` into `g` as usual.
    pub fn tail_backward_lr(
        &mut self,
        n: usize,
        j: usize,
        w: &[f32],
        lr: &LocalReparam,
        g: &mut [f32],
        gvar: &mut [f32],
    ) {
        let b = self.back.as_mut().expect("backward workspace");
        let [_, _, f1, f2, f3] = LAYERS;
        let [e1, e2, e3] = lr.split(n);
        {
            let (gw, gb) = g[f3.w..f3.end].split_at_mut(f3.b - f3.w);
            let (vw, vb) = gvar[f3.w..f3.end].split_at_mut(f3.b - f3.w);
            linear::lr_backward(
                &self.h2,
                lr.layer(f3).0,
                &self.sd3,
                e3,
                &b.dlogits,
                n,
                H2,
                OUT,
                (gw, gb),
                (vw, vb),
                (&mut b.dv, &mut self.sq, &mut b.tmp),
                Some(&mut b.dh2),
            );
        }
        linear::relu_mask(&self.h2[..n * H2], &mut b.dh2);
        {
            let (gw, gb) = g[f2.w..f2.end].split_at_mut(f2.b - f2.w);
            let (vw, vb) = gvar[f2.w..f2.end].split_at_mut(f2.b - f2.w);
            linear::lr_backward(
                &self.h1,
                lr.layer(f2).0,
                &self.sd2,
                e2,
                &b.dh2,
                n,
                H1,
                H2,
                (gw, gb),
                (vw, vb),
                (&mut b.dv, &mut self.sq, &mut b.tmp),
                Some(&mut b.dh1),
            );
        }
        linear::relu_mask(&self.h1[..n * H1], &mut b.dh1);
        {
            let (gw, gb) = g[f1.w..f1.end].split_at_mut(f1.b - f1.w);
            let (vw, vb) = gvar[f1.w..f1.end].split_at_mut(f1.b - f1.w);
            linear::lr_backward(
                &self.p2,
                lr.layer(f1).0,
                &self.sd1,
                e1,
                &b.dh1,
                n,
                FEAT,
                H1,
                (gw, gb),
                (vw, vb),
                (&mut b.dv, &mut self.sq, &mut b.tmp),
                Some(&mut b.dp2),
            );
        }
        self.conv_tail_backward(n, j, w, g);
    }

    /// [`Workspace::forward_backward`] with the fc layers locally reparameterised: `lr[j]` is
    /// sample `j`'s; the fc layers' `∂L/∂μ` go into `grads[j]`, their `∂L/∂σ²` into `gvars[j]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward_lr(
        &mut self,
        n: usize,
        labels: &[u8],
        weights: &[&[f32]],
        lr: &[LocalReparam],
        scale: f32,
        grads: &mut [Vec<f32>],
        gvars: &mut [Vec<f32>],
    ) -> Vec<CeOut> {
        self.prepare_input(n);
        self.conv1(n, weights);
        let mut outs = Vec::with_capacity(weights.len());
        for (j, w) in weights.iter().enumerate() {
            self.tail_forward_lr(n, j, w, &lr[j]);
            outs.push(self.softmax_ce(n, labels, scale));
            self.tail_backward_lr(n, j, w, &lr[j], &mut grads[j], &mut gvars[j]);
        }
        self.conv1_backward(n, weights.len(), grads);
        outs
    }
}
