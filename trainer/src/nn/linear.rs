//! Fully connected layer on a batch: `y[n][out] = x[n][in] · Wᵀ + b`, `W: [out][in]`.

use super::gemm::{gemm, View};

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
