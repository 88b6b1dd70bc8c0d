//! Fully connected layer on a batch: `y[n][out] = x[n][in] · Wᵀ + b`, `W: [out][in]`.

use super::gemm::{gemm, View};

/// A (weights, biases) or (means, variances) pair of slices.
pub type Pair<'a> = (&'a [f32], &'a [f32]);

/// Forward: `y = x·Wᵀ + b`, then ReLU when `relu`.
pub fn forward(x: &[f32], w: &[f32], b: &[f32], n: usize, fin: usize, y: &mut [f32], relu: bool) {
    let fout = b.len();
    gemm(
        n,
        fin,
        fout,
        View::rows(x, fin),
        View::trans(w, fin),
        0.0,
        y,
        fout,
    );
    for row in y[..n * fout].chunks_exact_mut(fout) {
        for (v, &bb) in row.iter_mut().zip(b) {
            let t = *v + bb;
            *v = if relu && t <= 0.0 { 0.0 } else { t };
        }
    }
}

/// Backward. `dy` is the gradient w.r.t. the layer's output *after* the ReLU mask has been
/// applied by the caller. Writes (overwrites) `dw: [out][in]`, `db: [out]` and, when given,
/// `dx: [n][in]`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    fin: usize,
    fout: usize,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    gemm(
        fout,
        n,
        fin,
        View::trans(dy, fout),
        View::rows(x, fin),
        0.0,
        dw,
        fin,
    );
    db[..fout].fill(0.0);
    for row in dy[..n * fout].chunks_exact(fout) {
        for (d, &g) in db.iter_mut().zip(row) {
            *d += g;
        }
    }
    if let Some(dx) = dx {
        gemm(
            n,
            fout,
            fin,
            View::rows(dy, fout),
            View::rows(w, fin),
            0.0,
            dx,
            fin,
        );
    }
}

/// Zeroes `dy` where the ReLU output `y` is not positive.
pub fn relu_mask(y: &[f32], dy: &mut [f32]) {
    for (d, &v) in dy.iter_mut().zip(y) {
        if v <= 0.0 {
            *d = 0.0;
        }
    }
}

/// Forward of a fully connected layer under local reparameterisation: per example `i` and
/// output unit `o`, `mean = x·μ_Wᵀ + μ_b`, `var = x²·σ²_Wᵀ + σ²_b`, and
/// `y = mean + √var·ε[i][o]` (then ReLU when `relu`). Writes `sd = √var` (kept for the
/// backward) and uses `sq: [n][fin]` as scratch for `x²`. Two GEMMs, no allocation.
#[allow(clippy::too_many_arguments)]
pub fn lr_forward(
    x: &[f32],
    (mu_w, var_w): Pair,
    (mu_b, var_b): Pair,
    n: usize,
    fin: usize,
    eps: &[f32],
    y: &mut [f32],
    sd: &mut [f32],
    sq: &mut [f32],
    relu: bool,
) {
    let fout = mu_b.len();
    for (s, &v) in sq[..n * fin].iter_mut().zip(&x[..n * fin]) {
        *s = v * v;
    }
    gemm(
        n,
        fin,
        fout,
        View::rows(x, fin),
        View::trans(mu_w, fin),
        0.0,
        y,
        fout,
    );
    gemm(
        n,
        fin,
        fout,
        View::rows(sq, fin),
        View::trans(var_w, fin),
        0.0,
        sd,
        fout,
    );
    for ((yr, sr), er) in y[..n * fout]
        .chunks_exact_mut(fout)
        .zip(sd[..n * fout].chunks_exact_mut(fout))
        .zip(eps[..n * fout].chunks_exact(fout))
    {
        for o in 0..fout {
            // var ≥ σ²_b > 0 unless it underflows; max(0) keeps rounding from making a NaN.
            let s = (sr[o] + var_b[o]).max(0.0).sqrt();
            sr[o] = s;
            let t = yr[o] + mu_b[o] + s * er[o];
            yr[o] = if relu && t <= 0.0 { 0.0 } else { t };
        }
    }
}

/// Backward of [`lr_forward`]. `dy` is the gradient w.r.t. the output after the ReLU mask.
/// Overwrites `dmu = (∂L/∂μ_W [out][in], ∂L/∂μ_b [out])`, `dvar = (∂L/∂σ²_W, ∂L/∂σ²_b)` and,
/// when given, `dx`:
/// `∂L/∂var = dy·ε/(2√var)` (0 where √var is 0), `∂L/∂μ_W = dyᵀ·x`, `∂L/∂σ²_W = (∂L/∂var)ᵀ·x²`,
/// `∂L/∂x = dy·μ_W + 2x ⊙ ((∂L/∂var)·σ²_W)`. `dv: [n][out]` and `sq`, `tmp: [n][in]` are
/// scratch.
#[allow(clippy::too_many_arguments)]
pub fn lr_backward(
    x: &[f32],
    (mu_w, var_w): Pair,
    sd: &[f32],
    eps: &[f32],
    dy: &[f32],
    n: usize,
    fin: usize,
    fout: usize,
    dmu: (&mut [f32], &mut [f32]),
    dvar: (&mut [f32], &mut [f32]),
    (dv, sq, tmp): (&mut [f32], &mut [f32], &mut [f32]),
    dx: Option<&mut [f32]>,
) {
    for i in 0..n * fout {
        let s = sd[i];
        dv[i] = if s > 0.0 {
            dy[i] * eps[i] / (2.0 * s)
        } else {
            0.0
        };
    }
    for (s, &v) in sq[..n * fin].iter_mut().zip(&x[..n * fin]) {
        *s = v * v;
    }
    backward(x, mu_w, dy, n, fin, fout, dmu.0, dmu.1, None);
    backward(sq, var_w, dv, n, fin, fout, dvar.0, dvar.1, None);
    if let Some(dx) = dx {
        gemm(
            n,
            fout,
            fin,
            View::rows(dy, fout),
            View::rows(mu_w, fin),
            0.0,
            dx,
            fin,
        );
        gemm(
            n,
            fout,
            fin,
            View::rows(dv, fout),
            View::rows(var_w, fin),
            0.0,
            tmp,
            fin,
        );
        for i in 0..n * fin {
            dx[i] += 2.0 * x[i] * tmp[i];
        }
    }
}
