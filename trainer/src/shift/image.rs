//! 28×28 images as `f64` in `[0, 1]` (pixel byte / 255), and the filters the shifts are built
//! from: bilinear warps about the centre, Gaussian filters, Sobel derivatives.

use tinyvi::arch::IMAGE_LEN;

/// Side of an MNIST image.
pub const SIDE: usize = 28;
/// The image centre in pixel coordinates (pixel `k` covers `[k − ½, k + ½]`): 13.5.
pub const CENTRE: f64 = (SIDE as f64 - 1.0) / 2.0;

/// One image, row after row, values in `[0, 1]` (a generator may leave the range; the
/// conversion back to bytes clips).
pub type Image = [f64; IMAGE_LEN];

/// Pixel bytes → `[0, 1]`.
pub fn from_bytes(px: &[u8]) -> Image {
    let mut img = [0.0; IMAGE_LEN];
    for (d, &p) in img.iter_mut().zip(px) {
        *d = f64::from(p) / 255.0;
    }
    img
}

/// `[0, 1]` → pixel bytes: clipped to `[0, 1]`, times 255, rounded to the nearest byte.
pub fn to_bytes(img: &Image, out: &mut [u8]) {
    for (d, &v) in out.iter_mut().zip(img.iter()) {
        *d = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
}

/// The value at row `r`, column `c`, 0 outside the image.
#[inline]
fn at_or_zero(img: &Image, r: isize, c: isize) -> f64 {
    if (0..SIDE as isize).contains(&r) && (0..SIDE as isize).contains(&c) {
        img[r as usize * SIDE + c as usize]
    } else {
        0.0
    }
}

/// Bilinear interpolation at column `x`, row `y`; each of the four neighbours outside the
/// image counts as 0 (scikit-image's `order=1, mode="constant", cval=0`).
pub fn bilinear(img: &Image, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (c, r) = (x0 as isize, y0 as isize);
    (1.0 - fy) * ((1.0 - fx) * at_or_zero(img, r, c) + fx * at_or_zero(img, r, c + 1))
        + fy * ((1.0 - fx) * at_or_zero(img, r + 1, c) + fx * at_or_zero(img, r + 1, c + 1))
}

/// Warps about the centre by an inverse map: output pixel `p = (x, y)` (column, row) takes
/// the bilinear value of the input at `L·(p − centre) + centre + t`, zero outside.
/// `l = [[a, b], [d, e]]` acts on `(x, y)`.
pub fn warp(img: &Image, l: [[f64; 2]; 2], t: [f64; 2]) -> Image {
    let mut out = [0.0; IMAGE_LEN];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (dx, dy) = (x as f64 - CENTRE, y as f64 - CENTRE);
            let sx = l[0][0] * dx + l[0][1] * dy + CENTRE + t[0];
            let sy = l[1][0] * dx + l[1][1] * dy + CENTRE + t[1];
            out[y * SIDE + x] = bilinear(img, sx, sy);
        }
    }
    out
}

/// Rotation by `radians` counter-clockwise as displayed (rows grow downwards) about the
/// centre, bilinear, zero fill: output `p` samples the input at `R(θ)·(p − c) + c` with
/// `R = [[cos θ, −sin θ], [sin θ, cos θ]]` in (column, row) coordinates.
pub fn rotate(img: &Image, radians: f64) -> Image {
    let (s, c) = radians.sin_cos();
    warp(img, [[c, -s], [s, c]], [0.0, 0.0])
}

/// Moves the content `dx` columns right and `dy` rows down (negative: left, up); pixels
/// shifted in are 0. Exact (no interpolation).
pub fn shift(img: &Image, dx: isize, dy: isize) -> Image {
    let mut out = [0.0; IMAGE_LEN];
    for y in 0..SIDE as isize {
        for x in 0..SIDE as isize {
            out[y as usize * SIDE + x as usize] = at_or_zero(img, y - dy, x - dx);
        }
    }
    out
}

/// How a filter reads past the edge (scipy.ndimage's modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// The nearest edge pixel (`aaa|abcd|ddd`).
    Nearest,
    /// Zero (`000|abcd|000`).
    Zero,
    /// Mirrored about the edge, edge pixel repeated (`cba|abcd|dcb`).
    Reflect,
}

fn edge_index(i: isize, n: isize, edge: Edge) -> Option<usize> {
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match edge {
        Edge::Nearest => Some(i.clamp(0, n - 1) as usize),
        Edge::Zero => None,
        Edge::Reflect => {
            let period = 2 * n;
            let m = i.rem_euclid(period);
            Some(if m < n { m } else { period - 1 - m } as usize)
        }
    }
}

/// Correlates every row (`axis = 1`) or column (`axis = 0`) with `weights` (centred, odd
/// length), as `scipy.ndimage.correlate1d`.
pub fn correlate1d(img: &Image, weights: &[f64], axis: usize, edge: Edge) -> Image {
    let half = (weights.len() / 2) as isize;
    let n = SIDE as isize;
    let mut out = [0.0; IMAGE_LEN];
    for r in 0..SIDE {
        for c in 0..SIDE {
            let mut s = 0.0;
            for (k, &w) in weights.iter().enumerate() {
                let o = k as isize - half;
                let (rr, cc) = if axis == 0 {
                    (edge_index(r as isize + o, n, edge), Some(c))
                } else {
                    (Some(r), edge_index(c as isize + o, n, edge))
                };
                if let (Some(rr), Some(cc)) = (rr, cc) {
                    s += w * img[rr * SIDE + cc];
                }
            }
            out[r * SIDE + c] = s;
        }
    }
    out
}

/// The Gaussian kernel of `scipy.ndimage.gaussian_filter1d`: radius `⌊4σ + ½⌋`, weights
/// `exp(−x²/2σ²)` normalised to sum 1.
pub fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as isize;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|v| v / sum).collect()
}

/// Gaussian filter of standard deviation `sigma` pixels along the given axes (0 = down the
/// columns, 1 = along the rows).
pub fn gaussian(img: &Image, sigma: f64, axes: &[usize], edge: Edge) -> Image {
    let k = gaussian_kernel(sigma);
    let mut out = *img;
    for &axis in axes {
        out = correlate1d(&out, &k, axis, edge);
    }
    out
}

/// `scipy.ndimage.sobel(img, axis)`: the derivative `[−1, 0, 1]` along `axis`, smoothed by
/// `[1, 2, 1]` along the other, mirrored edges.
pub fn sobel(img: &Image, axis: usize) -> Image {
    let d = correlate1d(img, &[-1.0, 0.0, 1.0], axis, Edge::Reflect);
    correlate1d(&d, &[1.0, 2.0, 1.0], 1 - axis, Edge::Reflect)
}

/// Root mean square difference of two byte images (in pixel-value units, 0–255).
pub fn rms_distance(a: &[u8], b: &[u8]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum();
    (s / a.len().max(1) as f64).sqrt()
}
