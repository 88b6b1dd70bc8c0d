//! Convolution (square kernel, stride 1, no padding) by im2col + GEMM, and fused
//! ReLU + 2×2 max-pooling with stored argmax indices.
//!
//! Layouts: an input batch is `[n][c][h][w]`; the column matrix is
//! `[c·k·k][n·oh·ow]` (row = (channel, ky, kx), column = (image, oy, ox)); the GEMM output is
//! channel-major `[cout][n·oh·ow]`.

use super::kernels::{self, Ld};

/// Shape of one convolution.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side.
    pub k: usize,
    /// Input side (square).
    pub h: usize,
}

impl ConvShape {
    /// Output side.
    pub const fn oh(&self) -> usize {
        self.h - self.k + 1
    }
    /// Rows of the column matrix.
    pub const fn kdim(&self) -> usize {
        self.cin * self.k * self.k
    }
    /// Output positions per image.
    pub const fn positions(&self) -> usize {
        self.oh() * self.oh()
    }
}

/// Builds the column matrix of `n` images `x: [n][cin][h][h]` into `col`.
pub fn im2col(s: ConvShape, x: &[f32], n: usize, col: &mut [f32]) {
    im2col_ld(s, x, n, col, n * s.positions());
}

/// [`im2col`] with the column matrix's rows `ld ≥ n·oh·ow` apart.
pub fn im2col_ld(s: ConvShape, x: &[f32], n: usize, col: &mut [f32], ld: usize) {
    assert!(ld >= n * s.positions());
    match s.oh() {
        24 => im2col_impl::<24>(s, x, n, col, ld),
        8 => im2col_impl::<8>(s, x, n, col, ld),
        _ => im2col_impl::<0>(s, x, n, col, ld),
    }
}

/// [`im2col`] with the output side known at compile time (`OH`, or 0 for any).
// Rows are 8 or 24 values: an inlined loop beats a `memcpy` call.
#[allow(clippy::manual_memcpy)]
#[inline(always)]
fn im2col_impl<const OH: usize>(s: ConvShape, x: &[f32], n: usize, col: &mut [f32], ld: usize) {
    let (h, k) = (s.h, s.k);
    let oh = if OH > 0 { OH } else { s.oh() };
    let ncols = n * oh * oh;
    for c in 0..s.cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = (c * k + ky) * k + kx;
                let dst = &mut col[row * ld..row * ld + ncols];
                for i in 0..n {
                    let plane = &x[(i * s.cin + c) * h * h..(i * s.cin + c + 1) * h * h];
                    for oy in 0..oh {
                        let src = &plane[(oy + ky) * h + kx..(oy + ky) * h + kx + oh];
                        let d = &mut dst[(i * oh + oy) * oh..(i * oh + oy + 1) * oh];
                        for j in 0..oh {
                            d[j] = src[j];
                        }
                    }
                }
            }
        }
    }
}

/// Adjoint of [`im2col`]: `dx = Σ` of the column gradients at their input positions
/// (overwrites `dx: [n][cin][h][h]`).
pub fn col2im(s: ConvShape, dcol: &[f32], n: usize, dx: &mut [f32]) {
    col2im_ld(s, dcol, n, dx, n * s.positions());
}

/// [`col2im`] with the column gradient's rows `ld ≥ n·oh·ow` apart.
pub fn col2im_ld(s: ConvShape, dcol: &[f32], n: usize, dx: &mut [f32], ld: usize) {
    assert!(ld >= n * s.positions());
    match s.oh() {
        24 => col2im_impl::<24>(s, dcol, n, dx, ld),
        8 => col2im_impl::<8>(s, dcol, n, dx, ld),
        _ => col2im_impl::<0>(s, dcol, n, dx, ld),
    }
}

#[inline(always)]
fn col2im_impl<const OH: usize>(s: ConvShape, dcol: &[f32], n: usize, dx: &mut [f32], ld: usize) {
    let (h, k) = (s.h, s.k);
    let oh = if OH > 0 { OH } else { s.oh() };
    let ncols = n * oh * oh;
    dx[..n * s.cin * h * h].fill(0.0);
    for c in 0..s.cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = (c * k + ky) * k + kx;
                let src = &dcol[row * ld..row * ld + ncols];
                for i in 0..n {
                    let plane = &mut dx[(i * s.cin + c) * h * h..(i * s.cin + c + 1) * h * h];
                    for oy in 0..oh {
                        let d = &mut plane[(oy + ky) * h + kx..(oy + ky) * h + kx + oh];
                        let g = &src[(i * oh + oy) * oh..(i * oh + oy + 1) * oh];
                        for j in 0..oh {
                            d[j] += g[j];
                        }
                    }
                }
            }
        }
    }
}

/// `y[rows][ncols] = W[rows][kdim] · col[kdim][ncols]` (no bias: the pooling adds it).
pub fn conv_gemm(w: &[f32], rows: usize, kdim: usize, col: &[f32], ncols: usize, y: &mut [f32]) {
    kernels::wx(w, rows, kdim, col, ncols, y);
}

/// [`conv_gemm`] with `col` rows `ld.a` and `y` rows `ld.b` apart.
pub fn conv_gemm_ld(
    w: &[f32],
    rows: usize,
    kdim: usize,
    col: &[f32],
    ncols: usize,
    y: &mut [f32],
    ld: Ld,
) {
    kernels::wx_ld(w, rows, kdim, col, ncols, y, ld);
}

/// [`conv_grad_w`] with `dy` rows `ld.a` and `col` rows `ld.b` apart.
pub fn conv_grad_w_ld(
    dy: &[f32],
    rows: usize,
    col: &[f32],
    kdim: usize,
    ncols: usize,
    dw: &mut [f32],
    ld: Ld,
) {
    kernels::dxt_ld(dy, rows, col, kdim, ncols, dw, ld);
}

/// `dW[rows][kdim] = dY[rows][ncols] · colᵀ` (overwrites).
pub fn conv_grad_w(
    dy: &[f32],
    rows: usize,
    col: &[f32],
    kdim: usize,
    ncols: usize,
    dw: &mut [f32],
) {
    kernels::dxt(dy, rows, col, kdim, ncols, dw);
}

/// `dcol[kdim][ncols] = Wᵀ · dY` (overwrites).
pub fn conv_grad_col(
    w: &[f32],
    rows: usize,
    kdim: usize,
    dy: &[f32],
    ncols: usize,
    dcol: &mut [f32],
) {
    conv_grad_col_ld(w, rows, kdim, dy, ncols, dcol, Ld { a: ncols, b: ncols });
}

/// [`conv_grad_col`] with `dy` rows `ld.a` and `dcol` rows `ld.b` apart.
pub fn conv_grad_col_ld(
    w: &[f32],
    rows: usize,
    kdim: usize,
    dy: &[f32],
    ncols: usize,
    dcol: &mut [f32],
    ld: Ld,
) {
    let mut wt = vec![0.0f32; kdim * rows];
    for r in 0..rows {
        for k in 0..kdim {
            wt[k * rows + r] = w[r * kdim + k];
        }
    }
    kernels::wx_ld(&wt, kdim, rows, dy, ncols, dcol, ld);
}

/// Fused bias + ReLU + 2×2/2 max-pool of one `side × side` plane: `out = max(0, max(y) + b)`,
/// `arg` = index (0..4) of the max in its window (the first one on ties).
#[inline]
pub fn pool_forward(y: &[f32], side: usize, bias: f32, out: &mut [f32], arg: &mut [u8]) {
    let ph = side / 2;
    for py in 0..ph {
        let r0 = &y[2 * py * side..2 * py * side + side];
        let r1 = &y[(2 * py + 1) * side..(2 * py + 1) * side + side];
        let o = &mut out[py * ph..py * ph + ph];
        let a = &mut arg[py * ph..py * ph + ph];
        for px in 0..ph {
            let (v0, v1, v2, v3) = (r0[2 * px], r0[2 * px + 1], r1[2 * px], r1[2 * px + 1]);
            let (m01, a01) = if v1 > v0 { (v1, 1u8) } else { (v0, 0u8) };
            let (m23, a23) = if v3 > v2 { (v3, 3u8) } else { (v2, 2u8) };
            let (m, am) = if m23 > m01 { (m23, a23) } else { (m01, a01) };
            let t = m + bias;
            o[px] = if t > 0.0 { t } else { 0.0 };
            a[px] = am;
        }
    }
}

/// Backward of [`pool_forward`] for one plane: writes every entry of `dy` (the gradient at the
/// pre-activation conv output) and returns the bias gradient `Σ dout·[out > 0]`.
#[inline]
pub fn pool_backward(dout: &[f32], out: &[f32], arg: &[u8], side: usize, dy: &mut [f32]) -> f32 {
    let ph = side / 2;
    let mut db = 0.0f32;
    for py in 0..ph {
        for px in 0..ph {
            let o = py * ph + px;
            let g = if out[o] > 0.0 { dout[o] } else { 0.0 };
            db += g;
            let a = arg[o] as usize;
            let base = 2 * py * side + 2 * px;
            dy[base] = if a == 0 { g } else { 0.0 };
            dy[base + 1] = if a == 1 { g } else { 0.0 };
            dy[base + side] = if a == 2 { g } else { 0.0 };
            dy[base + side + 1] = if a == 3 { g } else { 0.0 };
        }
    }
    db
}
