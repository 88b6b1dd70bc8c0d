//! Safe, bounds-checked f32 GEMM on strided row/column views, through `matrixmultiply`
//! (runtime AVX/FMA dispatch, so no `-C target-cpu` is needed).

/// A strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// Backing data.
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> View<'a> {
    /// Row-major `rows × cols` (row stride `cols`).
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn trans(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            rs: 1,
            cs: cols,
        }
    }
}

fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs + 1
}

/// `C = A·B + beta·C` with `A: m×k`, `B: k×n`, `C: m×n` row-major with row stride `ldc`.
///
/// # Panics
/// If a view does not cover its shape (a programming error).
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, k: usize, n: usize, a: View, b: View, beta: f32, c: &mut [f32], ldc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(span(m, n, ldc, 1) <= c.len(), "gemm: C too small");
    if k == 0 {
        for i in 0..m {
            for x in &mut c[i * ldc..i * ldc + n] {
                *x *= beta;
            }
        }
        return;
    }
    assert!(span(m, k, a.rs, a.cs) <= a.data.len(), "gemm: A too small");
    assert!(span(k, n, b.rs, b.cs) <= b.data.len(), "gemm: B too small");
    // SAFETY: the asserts above guarantee every index the kernel touches, i*rs + j*cs for
    // i < rows and j < cols, lies inside the corresponding slice; C is uniquely borrowed and
    // does not alias A or B (Rust borrow rules).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_with_transposes() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect(); // n×k
        let mut c = vec![1.0f32; m * n];
        gemm(
            m,
            k,
            n,
            View::rows(&a, k),
            View::trans(&bt, k),
            0.5,
            &mut c,
            n,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 0.5 + (0..k).map(|t| a[i * k + t] * bt[j * k + t]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-5);
            }
        }
    }
}
