//! MNIST-C's 15 corruptions (Mu & Gilmer 2019), written from the paper's definitions and the
//! parameters of its published generator, each at five severities where the original has
//! them (one otherwise). [`Corruption::mnist_c_severity`] is the severity of the published
//! data set, the one `trainer shift` runs. Randomness comes from the caller's [`Rng`]
//! (one stream per image), so results are reproducible but not MNIST-C's own draws.
//! docs/shift.md lists each definition and where this code differs from the original.

use super::canny::canny;
use super::image::{gaussian, rotate, shift, warp, Edge, Image, SIDE};
use crate::nn::rng::Rng;

/// One MNIST-C corruption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Corruption {
    ShotNoise,
    ImpulseNoise,
    GlassBlur,
    MotionBlur,
    Shear,
    Scale,
    Rotate,
    Brightness,
    Translate,
    Stripe,
    Fog,
    Spatter,
    DottedLine,
    Zigzag,
    CannyEdges,
}

impl Corruption {
    /// The 15 corruptions, in MNIST-C's order.
    pub const ALL: [Corruption; 15] = [
        Corruption::ShotNoise,
        Corruption::ImpulseNoise,
        Corruption::GlassBlur,
        Corruption::MotionBlur,
        Corruption::Shear,
        Corruption::Scale,
        Corruption::Rotate,
        Corruption::Brightness,
        Corruption::Translate,
        Corruption::Stripe,
        Corruption::Fog,
        Corruption::Spatter,
        Corruption::DottedLine,
        Corruption::Zigzag,
        Corruption::CannyEdges,
    ];

    /// MNIST-C's name (`shot_noise`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::GlassBlur => "glass_blur",
            Corruption::MotionBlur => "motion_blur",
            Corruption::Shear => "shear",
            Corruption::Scale => "scale",
            Corruption::Rotate => "rotate",
            Corruption::Brightness => "brightness",
            Corruption::Translate => "translate",
            Corruption::Stripe => "stripe",
            Corruption::Fog => "fog",
            Corruption::Spatter => "spatter",
            Corruption::DottedLine => "dotted_line",
            Corruption::Zigzag => "zigzag",
            Corruption::CannyEdges => "canny_edges",
        }
    }

    /// The corruption called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Number of severities (1..=levels): 5, or 1 for the parameter-free ones.
    pub const fn levels(self) -> u8 {
        match self {
            Corruption::Stripe
            | Corruption::DottedLine
            | Corruption::Zigzag
            | Corruption::CannyEdges => 1,
            _ => 5,
        }
    }

    /// The severity MNIST-C's published data set uses (its generator's default).
    pub const fn mnist_c_severity(self) -> u8 {
        match self {
            Corruption::ShotNoise | Corruption::Brightness | Corruption::Fog => 5,
            Corruption::ImpulseNoise | Corruption::Spatter => 4,
            Corruption::Scale | Corruption::Translate => 3,
            Corruption::Shear | Corruption::Rotate => 2,
            _ => 1,
        }
    }

    /// Corrupts `img` at `severity` (clamped to `1..=levels`).
    pub fn apply(self, severity: u8, img: &Image, rng: &mut Rng) -> Image {
        let s = usize::from(severity.clamp(1, self.levels())) - 1;
        match self {
            Corruption::ShotNoise => shot_noise(img, [60.0, 25.0, 12.0, 5.0, 3.0][s], rng),
            Corruption::ImpulseNoise => impulse_noise(img, [0.03, 0.06, 0.09, 0.17, 0.27][s], rng),
            Corruption::GlassBlur => {
                let (sigma, delta, iterations) = [
                    (0.7, 1, 2),
                    (0.9, 2, 1),
                    (1.0, 2, 3),
                    (1.1, 3, 2),
                    (1.5, 4, 2),
                ][s];
                glass_blur(img, sigma, delta, iterations, rng)
            }
            Corruption::MotionBlur => {
                let (radius, sigma) = [(10, 3.0), (15, 5.0), (15, 8.0), (15, 12.0), (20, 15.0)][s];
                let angle = uniform(rng, -45.0, 45.0).to_radians();
                motion_blur(img, radius, sigma, angle)
            }
            Corruption::Shear => {
                let k = [0.2, 0.4, 0.6, 0.8, 1.0][s] * sign(rng);
                // scikit-image's AffineTransform(shear=k): x' = x − sin k·y, y' = cos k·y.
                warp(img, [[1.0, -k.sin()], [0.0, k.cos()]], [0.0, 0.0])
            }
            Corruption::Scale => {
                let f = [0.9, 0.8, 0.7, 0.6, 0.5][s];
                warp(img, [[1.0 / f, 0.0], [0.0, 1.0 / f]], [0.0, 0.0])
            }
            Corruption::Rotate => rotate(img, [0.2, 0.4, 0.6, 0.8, 1.0][s] * sign(rng)),
            Corruption::Brightness => brightness(img, [0.1, 0.2, 0.3, 0.4, 0.5][s]),
            Corruption::Translate => {
                let d = [1, 2, 3, 4, 5][s];
                let (sx, sy) = (sign(rng) as isize, sign(rng) as isize);
                // The inverse map samples the input at p + d: the content moves by −d.
                shift(img, -d * sx, -d * sy)
            }
            Corruption::Stripe => stripe(img),
            Corruption::Fog => {
                let (strength, decay) =
                    [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)][s];
                fog(img, strength, decay, rng)
            }
            Corruption::Spatter => {
                let (loc, scale, sigma, threshold, mask_sigma) = [
                    (0.65, 0.3, 4.0, 0.69, 0.6),
                    (0.65, 0.3, 3.0, 0.68, 0.6),
                    (0.65, 0.3, 2.0, 0.68, 0.5),
                    (0.65, 0.3, 1.0, 0.65, 1.5),
                    (0.67, 0.4, 1.0, 0.65, 1.5),
                ][s];
                spatter(img, loc, scale, sigma, threshold, mask_sigma, rng)
            }
            Corruption::DottedLine => dotted_line(img, rng),
            Corruption::Zigzag => zigzag(img, rng),
            Corruption::CannyEdges => canny(img, 1.0, 0.1, 0.2),
        }
    }
}

/// Uniform in `[lo, hi)`.
fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

/// −1 or +1 with probability ½ each.
fn sign(rng: &mut Rng) -> f64 {
    if rng.next_u64() >> 63 == 0 {
        -1.0
    } else {
        1.0
    }
}

/// Uniform integer in `lo..hi` (NumPy's `randint(lo, hi)`).
fn randint(rng: &mut Rng, lo: isize, hi: isize) -> isize {
    lo + rng.below((hi - lo) as usize) as isize
}

/// A Poisson draw of mean `lambda` (Knuth's product of uniforms; `lambda` ≤ 60 here).
fn poisson(rng: &mut Rng, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    let limit = (-lambda).exp();
    let (mut k, mut p) = (0u32, rng.next_f64());
    while p > limit {
        k += 1;
        p *= rng.next_f64();
    }
    f64::from(k)
}

/// Shot noise: each pixel becomes `Poisson(x·c)/c`, clipped to 1.
pub fn shot_noise(img: &Image, c: f64, rng: &mut Rng) -> Image {
    img.map(|x| (poisson(rng, x * c) / c).min(1.0))
}

/// Impulse (salt-and-pepper) noise: each pixel, with probability `amount`, becomes 0 or 1
/// with probability ½ each (scikit-image's `random_noise(mode="s&p")`).
pub fn impulse_noise(img: &Image, amount: f64, rng: &mut Rng) -> Image {
    img.map(|x| {
        let flip = rng.next_f64() <= amount;
        let salt = rng.next_f64() <= 0.5;
        match (flip, salt) {
            (true, true) => 1.0,
            (true, false) => 0.0,
            _ => x,
        }
    })
}

/// Glass blur: Gaussian blur, bytes, `iterations` sweeps that swap each interior pixel, with
/// probability ½, with one at an offset in `[−δ, δ)²`, then the blur again. The blur runs
/// down the columns only, as MNIST-C's call (`gaussian(…, multichannel=True)` on a 2-D image
/// takes the rows as channels) does.
pub fn glass_blur(
    img: &Image,
    sigma: f64,
    delta: isize,
    iterations: usize,
    rng: &mut Rng,
) -> Image {
    let blurred = gaussian(img, sigma, &[0], Edge::Nearest);
    // np.uint8(x·255): truncation.
    let mut x = blurred.map(|v| (v * 255.0).clamp(0.0, 255.0).floor());
    let n = SIDE as isize;
    for _ in 0..iterations {
        for h in (delta + 1..=n - delta).rev() {
            for w in (delta + 1..=n - delta).rev() {
                if rng.next_u64() >> 63 == 1 {
                    let dx = randint(rng, -delta, delta);
                    let dy = randint(rng, -delta, delta);
                    let (a, b) = ((h * n + w) as usize, ((h + dy) * n + w + dx) as usize);
                    x.swap(a, b);
                }
            }
        }
    }
    let x = x.map(|v| v / 255.0);
    gaussian(&x, sigma, &[0], Edge::Nearest).map(|v| v.clamp(0.0, 1.0))
}

/// Motion blur as ImageMagick's `-motion-blur radius×sigma+angle`: each pixel is the
/// weighted sum of the `2·radius + 1` pixels at offsets `round(i·(cos a, sin a))`,
/// `i = 0..2·radius`, weights `exp(−i²/2σ²)` normalised; pixels past the edge repeat the
/// edge. Rounded to bytes, as the PNG round trip in MNIST-C does.
pub fn motion_blur(img: &Image, radius: usize, sigma: f64, angle: f64) -> Image {
    let width = 2 * radius + 1;
    let mut k: Vec<f64> = (0..width)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let (sin, cos) = angle.sin_cos();
    let offsets: Vec<(isize, isize)> = (0..width)
        .map(|i| {
            let i = i as f64;
            (
                (i * cos - 0.5).ceil() as isize,
                (i * sin - 0.5).ceil() as isize,
            )
        })
        .collect();
    let n = SIDE as isize;
    let mut out = [0.0; SIDE * SIDE];
    for y in 0..n {
        for x in 0..n {
            let mut s = 0.0;
            for (w, &(ox, oy)) in k.iter().zip(&offsets) {
                let (xx, yy) = ((x + ox).clamp(0, n - 1), (y + oy).clamp(0, n - 1));
                s += w * img[(yy * n + xx) as usize];
            }
            out[(y * n + x) as usize] = (s * 255.0).round() / 255.0;
        }
    }
    out
}

/// Brightness: `+c` on the HSV value of a grey pixel, which is `min(x + c, 1)`.
pub fn brightness(img: &Image, c: f64) -> Image {
    img.map(|x| (x + c).min(1.0))
}

/// Stripe: columns 0–6 and 21–27 inverted (`1 − x`).
pub fn stripe(img: &Image) -> Image {
    let mut out = *img;
    for r in 0..SIDE {
        for c in (0..7).chain(21..SIDE) {
            out[r * SIDE + c] = 1.0 - img[r * SIDE + c];
        }
    }
    out
}

/// A 256×256 plasma fractal (diamond-square) scaled to `[0, 1]`: at each step, new points
/// are the mean of their 4 neighbours (wrapping around) plus `w·U(−w, w)`, `w` starting at
/// 100 and divided by `decay` per step (MNIST-C's `plasma_fractal`).
pub fn plasma_fractal(decay: f64, rng: &mut Rng) -> Vec<f64> {
    const N: usize = 256;
    let mut map = vec![0.0f64; N * N];
    let mut step = N;
    let mut wibble = 100.0f64;
    let at = |i: usize, j: usize| (i % N) * N + (j % N);
    while step >= 2 {
        let half = step / 2;
        // Squares: centre = mean of the 4 corners + noise.
        for i in (0..N).step_by(step) {
            for j in (0..N).step_by(step) {
                let s = map[at(i, j)]
                    + map[at(i + step, j)]
                    + map[at(i, j + step)]
                    + map[at(i + step, j + step)];
                map[at(i + half, j + half)] = s / 4.0 + wibble * uniform(rng, -wibble, wibble);
            }
        }
        // Diamonds: edge midpoints = mean of the 2 corners and 2 centres beside them + noise.
        for i in (0..N).step_by(step) {
            for j in (0..N).step_by(step) {
                // Top edge midpoint (i, j + half): corners (i, j), (i, j + step); centres
                // (i + half, j + half) and (i − half, j + half).
                let s = map[at(i + half, j + half)]
                    + map[at(i + N - half, j + half)]
                    + map[at(i, j)]
                    + map[at(i, j + step)];
                map[at(i, j + half)] = s / 4.0 + wibble * uniform(rng, -wibble, wibble);
            }
        }
        for i in (0..N).step_by(step) {
            for j in (0..N).step_by(step) {
                // Left edge midpoint (i + half, j): corners (i, j), (i + step, j); centres
                // (i + half, j + half) and (i + half, j − half).
                let s = map[at(i + half, j + half)]
                    + map[at(i + half, j + N - half)]
                    + map[at(i, j)]
                    + map[at(i + step, j)];
                map[at(i + half, j)] = s / 4.0 + wibble * uniform(rng, -wibble, wibble);
            }
        }
        step = half;
        wibble /= decay;
    }
    let lo = map.iter().copied().fold(f64::INFINITY, f64::min);
    map.iter_mut().for_each(|v| *v -= lo);
    let hi = map.iter().copied().fold(0.0f64, f64::max);
    if hi > 0.0 {
        map.iter_mut().for_each(|v| *v /= hi);
    }
    map
}

/// Fog: `x + strength·fractal` over the top-left 28×28 of a plasma fractal, scaled by
/// `max x / (max x + strength)`, clipped.
pub fn fog(img: &Image, strength: f64, decay: f64, rng: &mut Rng) -> Image {
    let fractal = plasma_fractal(decay, rng);
    let max = img.iter().copied().fold(0.0f64, f64::max);
    let mut out = [0.0; SIDE * SIDE];
    for r in 0..SIDE {
        for c in 0..SIDE {
            let v = img[r * SIDE + c] + strength * fractal[r * 256 + c];
            out[r * SIDE + c] = (v * max / (max + strength)).clamp(0.0, 1.0);
        }
    }
    out
}

/// Spatter ("mud"): a Gaussian field `N(loc, scale²)` blurred by `sigma`, thresholded, its
/// mask blurred by `mask_sigma` and kept where ≥ 0.8; there the image fades to grey 63/255.
pub fn spatter(
    img: &Image,
    loc: f64,
    scale: f64,
    sigma: f64,
    threshold: f64,
    mask_sigma: f64,
    rng: &mut Rng,
) -> Image {
    let mut liquid = [0.0; SIDE * SIDE];
    for v in liquid.iter_mut() {
        *v = loc + scale * f64::from(rng.normal());
    }
    let liquid = gaussian(&liquid, sigma, &[0, 1], Edge::Nearest);
    let mask = liquid.map(|v| if v > threshold { 1.0 } else { 0.0 });
    let m =
        gaussian(&mask, mask_sigma, &[0, 1], Edge::Nearest).map(|v| if v < 0.8 { 0.0 } else { v });
    let mut out = [0.0; SIDE * SIDE];
    for i in 0..SIDE * SIDE {
        out[i] = (img[i] * (1.0 - m[i]) + 63.0 / 255.0 * m[i]).clamp(0.0, 1.0);
    }
    out
}

/// MNIST-C's line: intensity `1 + ln(1 − d/2.3)` (clipped to `[0, 1]`) at vertical distance
/// `d` from the line through `(c0, r0)` and `(c1, r1)`, between columns `⌊c0⌋` and `⌈c1⌉`.
pub fn line_from_points(c0: f64, r0: f64, c1: f64, r1: f64) -> Image {
    let mut out = [0.0; SIDE * SIDE];
    if c1 == c0 {
        return out;
    }
    let m = (r1 - r0) / (c1 - c0);
    let (left, right) = (c0.floor() as isize, c1.ceil() as isize);
    for r in 0..SIDE {
        for c in 0..SIDE {
            let ci = c as isize;
            if ci < left || ci >= right {
                continue;
            }
            let f = m * (c as f64 - c0) + r0;
            let d = (r as f64 - f).abs().clamp(0.0, 2.3 - 1e-10);
            out[r * SIDE + c] = ((1.0 - d / 2.3).ln() + 1.0).clamp(0.0, 1.0);
        }
    }
    out
}

/// Dotted line: a line from column 0 to 27 between random rows, with every other pair of
/// columns (0–1, 4–5, …) blanked, added to the image.
pub fn dotted_line(img: &Image, rng: &mut Rng) -> Image {
    let r0 = randint(rng, 0, 27) as f64;
    let r1 = randint(rng, 0, 27) as f64;
    let mut line = line_from_points(0.0, r0, 27.0, r1);
    for r in 0..SIDE {
        for c in 0..SIDE {
            if (c / 2) % 2 == 0 {
                line[r * SIDE + c] = 0.0;
            }
        }
    }
    let mut out = *img;
    for (o, l) in out.iter_mut().zip(line) {
        *o = (*o + l).clamp(0.0, 1.0);
    }
    out
}

/// Zigzag: a zigzag of segment length 2 and amplitude 2 from column 2 to 25, starting at a
/// random row and tilted towards another within −5..5 rows, drawn segment by segment with
/// [`line_from_points`] (MNIST-C's construction, including its last-segment formula).
pub fn zigzag(img: &Image, rng: &mut Rng) -> Image {
    let (a, b) = (2.0f64, 2.0f64);
    let (c0, c1) = (2.0f64, 25.0f64);
    let r0 = randint(rng, 0, 27) as f64;
    let r1 = r0 + randint(rng, -5, 5) as f64;
    let theta = ((r1 - r0) / (c1 - c0)).atan();
    let d = (c1 - c0) / theta.cos();
    let mut points = vec![(0.0f64, 0.0f64)];
    let count = ((d - a) / (2.0 * a)).floor() as i64 + 1;
    let mut r_i = 0.0;
    for i in 0..count.max(0) {
        let c_i = (2 * i + 1) as f64 * a;
        r_i = if i % 2 == 0 { b } else { -b };
        points.push((c_i, r_i));
    }
    let max_c = 2.0 * a * (d / (2.0 * a)).floor();
    if d != max_c {
        points.push((d, r_i / (2.0 * (d - max_c))));
    }
    let (sin, cos) = theta.sin_cos();
    let pts: Vec<(f64, f64)> = points
        .iter()
        .map(|&(c, r)| (cos * c - sin * r + c0, sin * c + cos * r + r0))
        .collect();
    let mut out = *img;
    for w in pts.windows(2) {
        let line = line_from_points(w[0].0, w[0].1, w[1].0, w[1].1);
        for (o, l) in out.iter_mut().zip(line) {
            *o = (*o + l).clamp(0.0, 1.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_severities_are_in_range() {
        for c in Corruption::ALL {
            assert_eq!(Corruption::from_name(c.name()), Some(c));
            assert!((1..=c.levels()).contains(&c.mnist_c_severity()), "{c:?}");
        }
        assert_eq!(Corruption::from_name("gaussian_noise"), None);
    }

    #[test]
    fn brightness_and_stripe_by_hand() {
        let mut img = [0.0; SIDE * SIDE];
        img[3] = 0.8;
        img[14] = 0.2;
        let b = brightness(&img, 0.5);
        assert_eq!((b[0], b[3]), (0.5, 1.0));
        assert!((b[14] - 0.7).abs() < 1e-12);
        let s = stripe(&img);
        let s = s.map(|v| (v * 10.0).round() / 10.0);
        assert_eq!((s[0], s[3], s[14], s[27]), (1.0, 0.2, 0.2, 1.0));
    }

    #[test]
    fn line_is_full_on_it_and_fades_off_it() {
        let l = line_from_points(0.0, 10.0, 27.0, 10.0);
        assert_eq!(l[10 * SIDE + 5], 1.0);
        assert!(l[11 * SIDE + 5] > 0.0 && l[11 * SIDE + 5] < 1.0);
        assert_eq!(l[13 * SIDE + 5], 0.0);
        // Column 27 is past ⌈c1⌉ − 1 = 26.
        assert_eq!(l[10 * SIDE + 27], 0.0);
    }

    #[test]
    fn plasma_fractal_spans_zero_to_one() {
        let f = plasma_fractal(1.4, &mut Rng::new(3));
        let lo = f.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = f.iter().copied().fold(0.0f64, f64::max);
        assert_eq!((lo, hi), (0.0, 1.0));
        // Smooth at small scales: neighbours differ much less than the range.
        let mean_step: f64 = (0..255).map(|j| (f[j] - f[j + 1]).abs()).sum::<f64>() / 255.0;
        assert!(mean_step < 0.1, "{mean_step}");
    }

    #[test]
    fn motion_blur_of_a_constant_is_the_constant() {
        let img = [0.4; SIDE * SIDE];
        let out = motion_blur(&img, 10, 3.0, 0.3);
        assert!(out.iter().all(|&v| (v - 0.4).abs() < 0.5 / 255.0 + 1e-12));
    }
}
