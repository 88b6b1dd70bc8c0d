//! The Canny edge detector as scikit-image's `feature.canny` (defaults: σ = 1, thresholds
//! 0.1 and 0.2 of the float range), for MNIST-C's `canny_edges`: the image becomes 1 on its
//! edges and 0 elsewhere.

use super::image::{gaussian, sobel, Edge, Image, SIDE};

/// Edge map of `img`: Gaussian smoothing (zero outside the image, normalised by the smoothed
/// all-ones mask), Sobel gradients, non-maximum suppression along the gradient with linear
/// interpolation between the two neighbours on each side, then hysteresis: pixels above
/// `low` that are 8-connected to one above `high`. The one-pixel border is never an edge.
pub fn canny(img: &Image, sigma: f64, low: f64, high: f64) -> Image {
    let n = SIDE;
    let ones = [1.0; SIDE * SIDE];
    let bleed = gaussian(&ones, sigma, &[0, 1], Edge::Zero);
    let smoothed_raw = gaussian(img, sigma, &[0, 1], Edge::Zero);
    let mut smoothed = [0.0; SIDE * SIDE];
    for i in 0..n * n {
        smoothed[i] = smoothed_raw[i] / (bleed[i] + f64::EPSILON);
    }
    let gi = sobel(&smoothed, 0); // along rows' index (down)
    let gj = sobel(&smoothed, 1); // along columns' index (right)
    let mag: Vec<f64> = (0..n * n).map(|k| gi[k].hypot(gj[k])).collect();
    let m = |r: usize, c: usize| mag[r * n + c];
    let mut maxima = vec![false; n * n];
    for r in 1..n - 1 {
        for c in 1..n - 1 {
            let k = r * n + c;
            if mag[k] <= 0.0 {
                continue;
            }
            let (i, j) = (gi[k], gj[k]);
            let (ai, aj) = (i.abs(), j.abs());
            let same = (i >= 0.0 && j >= 0.0) || (i <= 0.0 && j <= 0.0);
            let opposite = (i <= 0.0 && j >= 0.0) || (i >= 0.0 && j <= 0.0);
            // scikit-image assigns the four sectors in this order; a later one overwrites.
            let mut result = None;
            let test = |w: f64, p: [(usize, usize); 2], q: [(usize, usize); 2]| {
                let plus = m(p[1].0, p[1].1) * w + m(p[0].0, p[0].1) * (1.0 - w) <= mag[k];
                let minus = m(q[1].0, q[1].1) * w + m(q[0].0, q[0].1) * (1.0 - w) <= mag[k];
                plus && minus
            };
            if same && ai >= aj {
                result = Some(test(
                    aj / ai,
                    [(r + 1, c), (r + 1, c + 1)],
                    [(r - 1, c), (r - 1, c - 1)],
                ));
            }
            if same && ai <= aj {
                result = Some(test(
                    ai / aj,
                    [(r, c + 1), (r + 1, c + 1)],
                    [(r, c - 1), (r - 1, c - 1)],
                ));
            }
            if opposite && ai <= aj {
                result = Some(test(
                    ai / aj,
                    [(r, c + 1), (r - 1, c + 1)],
                    [(r, c - 1), (r + 1, c - 1)],
                ));
            }
            if opposite && ai >= aj {
                result = Some(test(
                    aj / ai,
                    [(r - 1, c), (r - 1, c + 1)],
                    [(r + 1, c), (r + 1, c - 1)],
                ));
            }
            maxima[k] = result.unwrap_or(false);
        }
    }
    let strong: Vec<bool> = (0..n * n).map(|k| maxima[k] && mag[k] >= high).collect();
    let weak: Vec<bool> = (0..n * n).map(|k| maxima[k] && mag[k] >= low).collect();
    // Hysteresis: flood the weak pixels 8-connected to a strong one.
    let mut edge = vec![false; n * n];
    let mut stack: Vec<usize> = (0..n * n).filter(|&k| strong[k]).collect();
    for &k in &stack {
        edge[k] = true;
    }
    while let Some(k) = stack.pop() {
        let (r, c) = ((k / n) as isize, (k % n) as isize);
        for dr in -1..=1 {
            for dc in -1..=1 {
                let (rr, cc) = (r + dr, c + dc);
                if rr < 0 || cc < 0 || rr >= n as isize || cc >= n as isize {
                    continue;
                }
                let q = rr as usize * n + cc as usize;
                if weak[q] && !edge[q] {
                    edge[q] = true;
                    stack.push(q);
                }
            }
        }
    }
    let mut out = [0.0; SIDE * SIDE];
    for (o, e) in out.iter_mut().zip(edge) {
        *o = if e { 1.0 } else { 0.0 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_has_edges_on_its_outline_only() {
        let mut img = [0.0; SIDE * SIDE];
        for r in 8..20 {
            for c in 8..20 {
                img[r * SIDE + c] = 1.0;
            }
        }
        let e = canny(&img, 1.0, 0.1, 0.2);
        let on = |r: usize, c: usize| e[r * SIDE + c] == 1.0;
        // Inside, far outside and the border: no edge.
        assert!(!on(14, 14) && !on(2, 2) && !on(0, 10));
        // The left and right sides of the square carry an edge near columns 7–8 and 19–20.
        assert!(on(14, 7) || on(14, 8));
        assert!(on(14, 19) || on(14, 20));
        let count = e.iter().filter(|&&v| v == 1.0).count();
        assert!((30..=80).contains(&count), "{count} edge pixels");
        // A blank image has none.
        assert!(canny(&[0.0; SIDE * SIDE], 1.0, 0.1, 0.2)
            .iter()
            .all(|&v| v == 0.0));
    }
}
