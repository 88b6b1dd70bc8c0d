//! Register-blocked kernels for the convolutions' GEMM shapes (few rows, short reduction,
//! very many columns), where a general GEMM spends more time packing than multiplying.
//! Plain loops over fixed-size arrays that the compiler vectorises; compiled three times
//! (AVX-512, AVX2+FMA, baseline) and picked at run time, so no `-C target-cpu` is needed.
//! Every path sums in a fixed order: results never depend on threads.

/// Which compiled version of the kernels runs. `Avx512` and `Avx2` give the same bits: both
/// use fused multiply-adds and every output sums its terms in the same order with the same
/// lane width, only the vector width of the instructions differs. `Portable` multiplies and
/// adds separately (no FMA), so its results differ in the last bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// AVX-512F with FMA, 512-bit vectors.
    Avx512,
    /// AVX2 with FMA, 256-bit vectors.
    Avx2,
    /// Baseline x86-64 (or any other architecture): no FMA.
    Portable,
}

/// The environment variable that forces a kernel path: `avx512`, `avx2` or `portable`.
pub const KERNELS_ENV: &str = "TINYVI_KERNELS";

/// Why a forced kernel path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelPathError {
    /// The variable holds no known path name.
    #[error("{KERNELS_ENV}={0:?} is not a kernel path (expected avx512, avx2 or portable)")]
    Unknown(String),
    /// The CPU lacks the instructions of the forced path.
    #[error("{KERNELS_ENV}={} needs {}, which this CPU lacks", .0.name(), .0.needs())]
    Unavailable(KernelPath),
}

impl KernelPath {
    /// Every path, fastest first.
    pub const ALL: [KernelPath; 3] = [KernelPath::Avx512, KernelPath::Avx2, KernelPath::Portable];

    /// The name used by [`KERNELS_ENV`] and printed by `trainer bench`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Avx512 => "avx512",
            KernelPath::Avx2 => "avx2",
            KernelPath::Portable => "portable",
        }
    }

    /// The CPU features the path needs.
    pub fn needs(self) -> &'static str {
        match self {
            KernelPath::Avx512 => "AVX-512F and FMA",
            KernelPath::Avx2 => "AVX2 and FMA",
            KernelPath::Portable => "nothing",
        }
    }

    /// The path named `name`, if any.
    pub fn parse(name: &str) -> Option<KernelPath> {
        KernelPath::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                KernelPath::Avx512 => has!("avx512f") && has!("avx2") && has!("fma"),
                KernelPath::Avx2 => has!("avx2") && has!("fma"),
                KernelPath::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == KernelPath::Portable
        }
    }

    /// The fastest path this CPU can run.
    pub fn best() -> KernelPath {
        KernelPath::ALL
            .into_iter()
            .find(|p| p.available())
            .unwrap_or(KernelPath::Portable)
    }

    /// The path [`KERNELS_ENV`] forces, or [`KernelPath::best`] when it is unset or empty.
    ///
    /// # Errors
    /// An unknown name, or a path this CPU cannot run.
    pub fn from_env() -> Result<KernelPath, KernelPathError> {
        match std::env::var(KERNELS_ENV) {
            Ok(name) if !name.is_empty() => {
                let path = KernelPath::parse(&name).ok_or(KernelPathError::Unknown(name))?;
                if path.available() {
                    Ok(path)
                } else {
                    Err(KernelPathError::Unavailable(path))
                }
            }
            _ => Ok(KernelPath::best()),
        }
    }
}

static PATH: std::sync::OnceLock<KernelPath> = std::sync::OnceLock::new();

/// Fixes the kernel path for this process from [`KERNELS_ENV`] (see [`KernelPath::from_env`]);
/// later calls return the path chosen first. Binaries call it at start so that a bad value is
/// an error message, not a panic in the middle of a run.
///
/// # Errors
/// As [`KernelPath::from_env`], on the first call.
pub fn init() -> Result<KernelPath, KernelPathError> {
    if let Some(&p) = PATH.get() {
        return Ok(p);
    }
    let p = KernelPath::from_env()?;
    Ok(*PATH.get_or_init(|| p))
}

/// The kernel path of this process (chosen by [`init`] on first use).
///
/// # Panics
/// If [`KERNELS_ENV`] is invalid and [`init`] was not called first to report it.
pub fn path() -> KernelPath {
    match init() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, acc: f32) -> f32 {
    if FMA {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

/// `y[rows][ncols] = w[rows][kdim] · x[kdim][ncols]`, rows in blocks of `RB`, columns of `JB`
/// (then of 16, then one by one). Each loaded `x` vector serves `RB` rows and each broadcast
/// weight `JB/16` vectors, so loads stay well below the multiply-adds.
#[inline(always)]
fn wx_impl<const JB: usize, const RB: usize, const FMA: bool>(
    w: &[f32],
    rows: usize,
    kdim: usize,
    x: &[f32],
    ncols: usize,
    y: &mut [f32],
    ld: Ld,
) {
    // Column blocks outermost: a block of `x` (kdim × JB) stays in L1 while every row block
    // uses it, so `x` streams from memory once.
    let mut j0 = 0;
    while j0 + JB <= ncols {
        for r0 in (0..rows).step_by(RB) {
            let wb = &w[r0 * kdim..(r0 + RB) * kdim];
            wx_block::<JB, RB, FMA>(wb, kdim, x, y, ld, r0, j0);
        }
        j0 += JB;
    }
    while j0 + 16 <= ncols {
        for r0 in (0..rows).step_by(RB) {
            let wb = &w[r0 * kdim..(r0 + RB) * kdim];
            wx_block::<16, RB, FMA>(wb, kdim, x, y, ld, r0, j0);
        }
        j0 += 16;
    }
    for r in 0..rows {
        for j in j0..ncols {
            let mut s = 0.0f32;
            for k in 0..kdim {
                s = madd::<FMA>(w[r * kdim + k], x[k * ld.a + j], s);
            }
            y[r * ld.b + j] = s;
        }
    }
}

#[inline(always)]
fn wx_block<const JB: usize, const RB: usize, const FMA: bool>(
    wb: &[f32],
    kdim: usize,
    x: &[f32],
    y: &mut [f32],
    ld: Ld,
    r0: usize,
    j0: usize,
) {
    let mut acc = [[0.0f32; JB]; RB];
    for k in 0..kdim {
        let c: &[f32; JB] = x[k * ld.a + j0..k * ld.a + j0 + JB].try_into().unwrap();
        for r in 0..RB {
            let wv = wb[r * kdim + k];
            for j in 0..JB {
                acc[r][j] = madd::<FMA>(wv, c[j], acc[r][j]);
            }
        }
    }
    for r in 0..RB {
        y[(r0 + r) * ld.b + j0..(r0 + r) * ld.b + j0 + JB].copy_from_slice(&acc[r]);
    }
}

/// `dw[rows][kdim] = d[rows][ncols] · x[kdim][ncols]ᵀ`, blocks of `RB` rows × `KB` columns of
/// `dw`, lane-parallel partial sums of width `JB` reduced in a fixed order. Each loaded `d`
/// vector serves `KB` products and each loaded `x` vector `RB`. The blocking never changes
/// the arithmetic: every `dw` entry sums its lanes over `j` in order, then [`reduce`]s them,
/// then adds the tail columns one by one.
#[inline(always)]
fn dxt_impl<const JB: usize, const RB: usize, const KB: usize, const FMA: bool>(
    d: &[f32],
    rows: usize,
    x: &[f32],
    kdim: usize,
    ncols: usize,
    dw: &mut [f32],
    ld: Ld,
) {
    // Columns in chunks of `CJ` (1024 measured best of 128..2048 on the conv shapes), row
    // blocks innermost: a chunk of `d` stays in cache while the `x` rows stream past it once.
    // The lane sums live in `lanes` between chunks (stored and reloaded exactly, so the
    // chunking does not change the sums).
    const CJ: usize = 1024;
    let full = ncols / JB * JB;
    let mut lanes = vec![[0.0f32; JB]; rows * kdim];
    for c0 in (0..full).step_by(CJ) {
        let c1 = (c0 + CJ).min(full);
        for k0 in (0..kdim).step_by(KB) {
            for r0 in (0..rows).step_by(RB) {
                let mut acc = [[[0.0f32; JB]; KB]; RB];
                for r in 0..RB {
                    for k in 0..KB {
                        acc[r][k] = lanes[(r0 + r) * kdim + k0 + k];
                    }
                }
                let mut j0 = c0;
                while j0 < c1 {
                    let mut a = [[0.0f32; JB]; RB];
                    for r in 0..RB {
                        let o = (r0 + r) * ld.a + j0;
                        a[r] = d[o..o + JB].try_into().unwrap();
                    }
                    for k in 0..KB {
                        let o = (k0 + k) * ld.b + j0;
                        let c: &[f32; JB] = x[o..o + JB].try_into().unwrap();
                        for r in 0..RB {
                            for j in 0..JB {
                                acc[r][k][j] = madd::<FMA>(a[r][j], c[j], acc[r][k][j]);
                            }
                        }
                    }
                    j0 += JB;
                }
                for r in 0..RB {
                    for k in 0..KB {
                        lanes[(r0 + r) * kdim + k0 + k] = acc[r][k];
                    }
                }
            }
        }
    }
    for r in 0..rows {
        for k in 0..kdim {
            let mut s = reduce::<JB>(lanes[r * kdim + k]);
            for j in full..ncols {
                s = madd::<FMA>(d[r * ld.a + j], x[k * ld.b + j], s);
            }
            dw[r * kdim + k] = s;
        }
    }
}

/// [`dxt_impl`] with the widest row block that divides `rows` (`kdim % 5 == 0`, `rows` even
/// or a multiple of 3).
#[inline(always)]
fn dxt_pick<const JB: usize, const FMA: bool>(
    d: &[f32],
    rows: usize,
    x: &[f32],
    kdim: usize,
    ncols: usize,
    dw: &mut [f32],
    ld: Ld,
) {
    if rows % 4 == 0 && kdim % 6 == 0 {
        dxt_impl::<JB, 4, 6, FMA>(d, rows, x, kdim, ncols, dw, ld)
    } else if rows % 4 == 0 {
        dxt_impl::<JB, 4, 5, FMA>(d, rows, x, kdim, ncols, dw, ld)
    } else if rows % 3 == 0 {
        dxt_impl::<JB, 3, 5, FMA>(d, rows, x, kdim, ncols, dw, ld)
    } else {
        dxt_impl::<JB, 2, 5, FMA>(d, rows, x, kdim, ncols, dw, ld)
    }
}

/// Pairwise sum of the lanes, in a fixed order.
#[inline(always)]
fn reduce<const JB: usize>(mut lanes: [f32; JB]) -> f32 {
    let mut width = JB;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            lanes[j] += lanes[j + width];
        }
    }
    lanes[0]
}

macro_rules! wx_blocks {
    ($fma:literal, $w:ident, $rows:ident, $kdim:ident, $x:ident, $ncols:ident, $y:ident, $ld:ident, [$(($rb:literal, $jb:literal)),*]) => {{
        $(
            if $rows % $rb == 0 {
                wx_impl::<$jb, $rb, $fma>($w, $rows, $kdim, $x, $ncols, $y, $ld);
                return true;
            }
        )*
        false
    }};
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;

    /// # Safety
    /// The CPU must support AVX-512F and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn wx_avx512(
        w: &[f32],
        rows: usize,
        kdim: usize,
        x: &[f32],
        ncols: usize,
        y: &mut [f32],
        ld: Ld,
    ) -> bool {
        wx_blocks!(
            true,
            w,
            rows,
            kdim,
            x,
            ncols,
            y,
            ld,
            [(6, 64), (4, 64), (8, 32)]
        )
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn wx_avx2(
        w: &[f32],
        rows: usize,
        kdim: usize,
        x: &[f32],
        ncols: usize,
        y: &mut [f32],
        ld: Ld,
    ) -> bool {
        wx_blocks!(true, w, rows, kdim, x, ncols, y, ld, [(6, 16), (4, 16)])
    }

    /// # Safety
    /// The CPU must support AVX-512F and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn dxt_avx512(
        d: &[f32],
        rows: usize,
        x: &[f32],
        kdim: usize,
        ncols: usize,
        dw: &mut [f32],
        ld: Ld,
    ) {
        dxt_pick::<16, true>(d, rows, x, kdim, ncols, dw, ld)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dxt_avx2(
        d: &[f32],
        rows: usize,
        x: &[f32],
        kdim: usize,
        ncols: usize,
        dw: &mut [f32],
        ld: Ld,
    ) {
        // The AVX-512 path's 16 lanes, as two 256-bit vectors each: the same sums in the same
        // order. Smaller blocks than `dxt_pick`'s keep the accumulators in the 16 registers.
        if rows % 2 == 0 && kdim % 3 == 0 {
            dxt_impl::<16, 2, 3, true>(d, rows, x, kdim, ncols, dw, ld)
        } else {
            dxt_impl::<16, 1, 5, true>(d, rows, x, kdim, ncols, dw, ld)
        }
    }
}

/// A zeroed f32 buffer whose first element sits on a 64-byte boundary (a cache line and an
/// AVX-512 vector), so the kernels' vector loads never straddle two lines.
#[derive(Clone, Debug)]
pub struct Aligned {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl Aligned {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let buf = vec![0.0f32; len + 16];
        let off = buf.as_ptr().align_offset(64).min(16);
        Aligned { buf, off, len }
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Row strides of a kernel's two column-indexed matrices: `a` for the first (`x` in [`wx_ld`],
/// `d` in [`dxt_ld`]), `b` for the second (`y` in [`wx_ld`], `x` in [`dxt_ld`]). Padding a
/// stride away from a multiple of 4 KiB keeps the rows from aliasing in the caches; it never
/// changes the arithmetic.
#[derive(Clone, Copy, Debug)]
pub struct Ld {
    /// Row stride of the first matrix.
    pub a: usize,
    /// Row stride of the second matrix.
    pub b: usize,
}

/// `y[rows][ncols] = w[rows][kdim] · x[kdim][ncols]` (overwrites `y`).
///
/// # Panics
/// If a slice is too short.
pub fn wx(w: &[f32], rows: usize, kdim: usize, x: &[f32], ncols: usize, y: &mut [f32]) {
    wx_ld(w, rows, kdim, x, ncols, y, Ld { a: ncols, b: ncols });
}

/// [`wx`] with `x` rows `ld.a` apart and `y` rows `ld.b` apart (both ≥ `ncols`).
///
/// # Panics
/// If a slice is too short or a stride below `ncols`.
pub fn wx_ld(w: &[f32], rows: usize, kdim: usize, x: &[f32], ncols: usize, y: &mut [f32], ld: Ld) {
    assert!(ld.a >= ncols && ld.b >= ncols);
    assert!(w.len() >= rows * kdim);
    assert!(kdim == 0 || x.len() >= (kdim - 1) * ld.a + ncols);
    assert!(rows == 0 || y.len() >= (rows - 1) * ld.b + ncols);
    #[cfg(target_arch = "x86_64")]
    {
        let done = match path() {
            // SAFETY: `path()` returns a path only when this CPU has the features it enables.
            KernelPath::Avx512 => unsafe { simd::wx_avx512(w, rows, kdim, x, ncols, y, ld) },
            // SAFETY: as above.
            KernelPath::Avx2 => unsafe { simd::wx_avx2(w, rows, kdim, x, ncols, y, ld) },
            KernelPath::Portable => false,
        };
        if done {
            return;
        }
    }
    let done = (|| wx_blocks!(false, w, rows, kdim, x, ncols, y, ld, [(6, 8), (4, 8)]))();
    if !done {
        // Odd shapes (tests, tiny layers): plain loops.
        for r in 0..rows {
            for j in 0..ncols {
                y[r * ld.b + j] = (0..kdim).fold(0.0, |s, k| s + w[r * kdim + k] * x[k * ld.a + j]);
            }
        }
    }
}

/// `dw[rows][kdim] = d[rows][ncols] · x[kdim][ncols]ᵀ` (overwrites `dw`).
///
/// # Panics
/// If a slice is too short.
pub fn dxt(d: &[f32], rows: usize, x: &[f32], kdim: usize, ncols: usize, dw: &mut [f32]) {
    dxt_ld(d, rows, x, kdim, ncols, dw, Ld { a: ncols, b: ncols });
}

/// [`dxt`] with `d` rows `ld.a` apart and `x` rows `ld.b` apart (both ≥ `ncols`).
///
/// # Panics
/// If a slice is too short or a stride below `ncols`.
pub fn dxt_ld(
    d: &[f32],
    rows: usize,
    x: &[f32],
    kdim: usize,
    ncols: usize,
    dw: &mut [f32],
    ld: Ld,
) {
    assert!(ld.a >= ncols && ld.b >= ncols);
    assert!(rows == 0 || d.len() >= (rows - 1) * ld.a + ncols);
    assert!(kdim == 0 || x.len() >= (kdim - 1) * ld.b + ncols);
    assert!(dw.len() >= rows * kdim);
    if (rows % 2 != 0 && rows % 3 != 0) || kdim % 5 != 0 {
        for r in 0..rows {
            for k in 0..kdim {
                dw[r * kdim + k] =
                    (0..ncols).fold(0.0, |s, j| s + d[r * ld.a + j] * x[k * ld.b + j]);
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    match path() {
        // SAFETY: `path()` returns a path only when this CPU has the features it enables.
        KernelPath::Avx512 => return unsafe { simd::dxt_avx512(d, rows, x, kdim, ncols, dw, ld) },
        // SAFETY: as above.
        KernelPath::Avx2 => return unsafe { simd::dxt_avx2(d, rows, x, kdim, ncols, dw, ld) },
        KernelPath::Portable => {}
    }
    dxt_pick::<4, false>(d, rows, x, kdim, ncols, dw, ld)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, k: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * k).sin() * 3.0).round() / 4.0)
            .collect()
    }

    #[test]
    fn kernels_match_naive_products_on_every_path() {
        for (rows, kdim, ncols) in [
            (18, 25, 16 * 576),
            (16, 150, 100),
            (6, 25, 37),
            (150, 16, 64),
            (3, 7, 20),
            (24, 25, 40),
            (16, 150, 64),
        ] {
            let w = data(rows * kdim, 0.7);
            let x = data(kdim * ncols, 0.3);
            let d = data(rows * ncols, 0.9);
            let mut y = vec![f32::NAN; rows * ncols];
            wx(&w, rows, kdim, &x, ncols, &mut y);
            let mut y8 = vec![f32::NAN; rows * ncols];
            if rows % 6 == 0 {
                wx_impl::<8, 6, false>(
                    &w,
                    rows,
                    kdim,
                    &x,
                    ncols,
                    &mut y8,
                    Ld { a: ncols, b: ncols },
                );
            } else if rows % 4 == 0 {
                wx_impl::<8, 4, false>(
                    &w,
                    rows,
                    kdim,
                    &x,
                    ncols,
                    &mut y8,
                    Ld { a: ncols, b: ncols },
                );
            } else {
                y8.copy_from_slice(&y);
            }
            for r in 0..rows {
                for j in 0..ncols {
                    let want: f32 = (0..kdim).map(|k| w[r * kdim + k] * x[k * ncols + j]).sum();
                    // Values are multiples of 1/16 with small sums: exact in f32.
                    assert_eq!(y[r * ncols + j], want);
                    assert_eq!(y8[r * ncols + j], want);
                }
            }
            {
                let mut dw = vec![f32::NAN; rows * kdim];
                dxt(&d, rows, &x, kdim, ncols, &mut dw);
                let mut dw4 = dw.clone();
                if kdim % 5 == 0 && rows % 2 == 0 {
                    dxt_impl::<4, 2, 5, false>(
                        &d,
                        rows,
                        &x,
                        kdim,
                        ncols,
                        &mut dw4,
                        Ld { a: ncols, b: ncols },
                    );
                }
                for r in 0..rows {
                    for k in 0..kdim {
                        let want: f64 = (0..ncols)
                            .map(|j| d[r * ncols + j] as f64 * x[k * ncols + j] as f64)
                            .sum();
                        assert!(
                            (dw[r * kdim + k] as f64 - want).abs() < 1e-3,
                            "{} vs {want}",
                            dw[r * kdim + k]
                        );
                        assert!((dw4[r * kdim + k] as f64 - want).abs() < 1e-3);
                    }
                }
            }
        }
    }

    #[test]
    fn padded_strides_give_the_same_bits() {
        let (rows, kdim, ncols, pad) = (6, 25, 200, 24);
        let ld = ncols + pad;
        let w = data(rows * kdim, 0.7);
        let x = data(kdim * ncols, 0.3);
        let mut xp = vec![f32::NAN; kdim * ld];
        for k in 0..kdim {
            xp[k * ld..k * ld + ncols].copy_from_slice(&x[k * ncols..(k + 1) * ncols]);
        }
        let mut y = vec![0.0; rows * ncols];
        wx(&w, rows, kdim, &x, ncols, &mut y);
        let mut yp = vec![f32::NAN; rows * ld];
        wx_ld(&w, rows, kdim, &xp, ncols, &mut yp, Ld { a: ld, b: ld });
        let mut dw = vec![0.0; rows * kdim];
        dxt(&y, rows, &x, kdim, ncols, &mut dw);
        let mut dwp = vec![0.0; rows * kdim];
        dxt_ld(&yp, rows, &xp, kdim, ncols, &mut dwp, Ld { a: ld, b: ld });
        for r in 0..rows {
            assert_eq!(y[r * ncols..(r + 1) * ncols], yp[r * ld..r * ld + ncols]);
            // The padding itself is never written.
            assert!(yp[r * ld + ncols..(r + 1) * ld].iter().all(|v| v.is_nan()));
        }
        assert_eq!(dw, dwp);
    }

    #[test]
    fn kernel_path_names_round_trip() {
        for p in KernelPath::ALL {
            assert_eq!(KernelPath::parse(p.name()), Some(p));
        }
        assert_eq!(KernelPath::parse("sse"), None);
        assert!(KernelPath::Portable.available());
        assert!(KernelPath::best().available());
        assert_eq!(
            KernelPathError::Unknown("sse".into()).to_string(),
            "TINYVI_KERNELS=\"sse\" is not a kernel path (expected avx512, avx2 or portable)"
        );
        assert_eq!(
            KernelPathError::Unavailable(KernelPath::Avx512).to_string(),
            "TINYVI_KERNELS=avx512 needs AVX-512F and FMA, which this CPU lacks"
        );
    }

    /// The AVX-512 and AVX2 kernels give the same bits on values whose products round (the
    /// training shapes, padded strides included). Needs a CPU with both; on one without, the
    /// test says so on stderr and checks nothing (the whole-run test in
    /// `trainer/tests/kernel_paths.rs` compares against the published model instead).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_and_avx2_kernels_give_the_same_bits() {
        if !(KernelPath::Avx512.available() && KernelPath::Avx2.available()) {
            eprintln!("avx512 vs avx2: not run (this CPU lacks AVX-512F)");
            return;
        }
        let noise = |n: usize, k: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * k).sin() * 1.7 + 0.01).collect()
        };
        for (rows, kdim, ncols, ld) in [
            (18, 25, 16 * 576, 16 * 576 + 16),
            (16, 150, 16 * 64, 16 * 64),
            (6, 25, 1000, 1003),
            (150, 16, 1024, 1040),
            (12, 30, 16 * 70 + 5, 16 * 70 + 5),
        ] {
            let ld = Ld { a: ld, b: ld };
            let w = noise(rows * kdim, 0.7);
            let x = noise(kdim * ld.a, 0.31);
            let d = noise(rows * ld.a, 0.93);
            let (mut y512, mut y2) = (vec![0.0; rows * ld.b], vec![1.0; rows * ld.b]);
            let (mut dw512, mut dw2) = (vec![0.0f32; rows * kdim], vec![0.0f32; rows * kdim]);
            // SAFETY: both feature sets were detected above.
            unsafe {
                let a = simd::wx_avx512(&w, rows, kdim, &x, ncols, &mut y512, ld);
                let b = simd::wx_avx2(&w, rows, kdim, &x, ncols, &mut y2, ld);
                assert_eq!(a, b, "both paths take the shape or neither does");
                if a {
                    for r in 0..rows {
                        let o = r * ld.b;
                        assert!(
                            y512[o..o + ncols] == y2[o..o + ncols],
                            "wx {rows}x{kdim} row {r}"
                        );
                    }
                }
                // The shapes `dxt_ld` hands to the vector kernels.
                if kdim % 5 == 0 && (rows % 2 == 0 || rows % 3 == 0) {
                    simd::dxt_avx512(&d, rows, &x, kdim, ncols, &mut dw512, ld);
                    simd::dxt_avx2(&d, rows, &x, kdim, ncols, &mut dw2, ld);
                }
            }
            let differ = dw512
                .iter()
                .zip(&dw2)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(
                differ, None,
                "dxt {rows}x{kdim}x{ncols}: first differing entry"
            );
        }
    }

    #[test]
    fn row_blocking_never_changes_the_bits() {
        let (rows, kdim, ncols) = (12, 30, 16 * 70 + 5);
        let ld = Ld { a: ncols, b: ncols };
        let d = data(rows * ncols, 0.37);
        let x = data(kdim * ncols, 0.113);
        let mut want = vec![0.0; rows * kdim];
        dxt_impl::<16, 2, 5, false>(&d, rows, &x, kdim, ncols, &mut want, ld);
        let mut got = vec![0.0; rows * kdim];
        dxt_impl::<16, 3, 5, false>(&d, rows, &x, kdim, ncols, &mut got, ld);
        assert_eq!(got, want);
        dxt_impl::<16, 4, 5, false>(&d, rows, &x, kdim, ncols, &mut got, ld);
        assert_eq!(got, want);
        dxt_impl::<16, 4, 6, false>(&d, rows, &x, kdim, ncols, &mut got, ld);
        assert_eq!(got, want);
    }
}
