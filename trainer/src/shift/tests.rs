//! Tests of the shift generators: identities, exact moves, monotone severities, determinism.

use super::image::{self, rms_distance, SIDE};
use super::*;

/// The first `n` MNIST test images.
fn images(n: usize) -> Vec<u8> {
    let (_, test) = crate::data::workspace::mnist();
    test.images[..n * IMAGE_LEN].to_vec()
}

fn mean_rms(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len() / IMAGE_LEN;
    (0..n)
        .map(|i| {
            rms_distance(
                &a[i * IMAGE_LEN..][..IMAGE_LEN],
                &b[i * IMAGE_LEN..][..IMAGE_LEN],
            )
        })
        .sum::<f64>()
        / n as f64
}

#[test]
fn rotation_by_zero_is_the_identity_and_four_quarter_turns_come_back() {
    let x = images(50);
    assert_eq!(generate(Condition::Rotate(0), &x, 0, 0), x);
    assert_eq!(generate(Condition::Translate(0), &x, 0, 0), x);
    assert_eq!(generate(Condition::Clean, &x, 0, 0), x);
    let mut y = x.clone();
    for _ in 0..4 {
        y = generate(Condition::Rotate(90), &y, 0, 0);
    }
    let worst = x.iter().zip(&y).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "four 90° turns differ by {worst}");
    // One quarter turn really moves the image (digits are not symmetric), and 90° maps the
    // pixel grid onto itself: (row r, column c) → (27 − c, r) up to rounding.
    let q = generate(Condition::Rotate(90), &x[..IMAGE_LEN], 0, 0);
    assert!(rms_distance(&q, &x[..IMAGE_LEN]) > 10.0);
    for r in 0..SIDE {
        for c in 0..SIDE {
            let want = x[r * SIDE + c];
            let got = q[(SIDE - 1 - c) * SIDE + r];
            assert!(want.abs_diff(got) <= 1, "({r},{c}): {want} vs {got}");
        }
    }
    // 180° twice is the identity too; 45° twice is close to 90° (interpolation blurs).
    let h = generate(
        Condition::Rotate(180),
        &generate(Condition::Rotate(180), &x, 0, 0),
        0,
        0,
    );
    assert!(x.iter().zip(&h).all(|(a, b)| a.abs_diff(*b) <= 1));
    let e = generate(
        Condition::Rotate(45),
        &generate(Condition::Rotate(45), &x, 0, 0),
        0,
        0,
    );
    let full = generate(Condition::Rotate(90), &x, 0, 0);
    assert!(mean_rms(&e, &full) < 0.5 * mean_rms(&x, &full));
}

#[test]
fn translation_moves_right_exactly_with_zero_fill() {
    let x = images(10);
    for k in [2usize, 6, 14] {
        let y = generate(Condition::Translate(k as u32), &x, 0, 0);
        for i in 0..10 {
            for r in 0..SIDE {
                for c in 0..SIDE {
                    let got = y[i * IMAGE_LEN + r * SIDE + c];
                    let want = if c >= k {
                        x[i * IMAGE_LEN + r * SIDE + c - k]
                    } else {
                        0
                    };
                    assert_eq!(got, want);
                }
            }
        }
    }
}

#[test]
fn severities_are_monotone_in_distance_from_the_clean_image() {
    let x = images(100);
    let mut failures = Vec::new();
    // Fog and spatter are left out: MNIST-C's levels of them are not ordered by strength
    // (fog 3 and 4 differ only in the fractal's roughness; spatter 4 and 5 use a finer,
    // lower-threshold field than 1–3), and its data set uses one level of each (5 and 4).
    let ordered =
        |c: &Corruption| c.levels() > 1 && !matches!(c, Corruption::Fog | Corruption::Spatter);
    for c in Corruption::ALL.into_iter().filter(ordered) {
        let d: Vec<f64> = (1..=c.levels())
            .map(|s| mean_rms(&generate(Condition::Corrupt(c, s), &x, 0, 7), &x))
            .collect();
        assert!(d[0] > 0.0, "{} severity 1 changes nothing", c.name());
        for (s, w) in d.windows(2).enumerate() {
            // MNIST-C's glass blur trades more blur for fewer shuffle sweeps from severity 1
            // (σ 0.7, 2 sweeps) to 2 (σ 0.9, 1 sweep): the distance stays within 1%.
            let slack = if c == Corruption::GlassBlur && s == 0 {
                0.01 * w[0]
            } else {
                0.0
            };
            if w[1] + slack < w[0] {
                failures.push(format!("{} {}→{}: {d:?}", c.name(), s + 1, s + 2));
            }
        }
    }
    assert!(failures.is_empty(), "not monotone: {failures:#?}");
    for c in [Corruption::Fog, Corruption::Spatter] {
        for s in 1..=c.levels() {
            let d = mean_rms(&generate(Condition::Corrupt(c, s), &x, 0, 7), &x);
            assert!(d > 10.0, "{} {s}: {d}", c.name());
        }
    }
    // The rotations and translations of the suite too.
    let rot: Vec<f64> = ROTATIONS[..7]
        .iter()
        .map(|&a| mean_rms(&generate(Condition::Rotate(a), &x, 0, 0), &x))
        .collect();
    assert!(rot.windows(2).all(|w| w[1] > w[0]), "{rot:?}");
    // Past 6 pixels part of the digit leaves the frame and the distance falls again.
    let tr: Vec<f64> = TRANSLATIONS[..4]
        .iter()
        .map(|&p| mean_rms(&generate(Condition::Translate(p), &x, 0, 0), &x))
        .collect();
    assert!(tr.windows(2).all(|w| w[1] > w[0]), "{tr:?}");
}

#[test]
fn generators_are_deterministic_per_image_and_seed() {
    let x = images(40);
    for c in suite() {
        let a = generate(c, &x, 0, 3);
        assert_eq!(a.len(), x.len());
        // Same seed, any thread count: the same bytes.
        let b = crate::nn::parallel::with_threads(1, || generate(c, &x, 0, 3)).unwrap();
        assert_eq!(a, b, "{c}");
        // An image does not depend on the others around it.
        let part = generate(c, &x[10 * IMAGE_LEN..20 * IMAGE_LEN], 10, 3);
        assert_eq!(part, a[10 * IMAGE_LEN..20 * IMAGE_LEN], "{c}");
        // Random generators change with the seed; fixed ones do not.
        let other = generate(c, &x, 0, 4);
        let random = matches!(
            c,
            Condition::Corrupt(
                Corruption::ShotNoise
                    | Corruption::ImpulseNoise
                    | Corruption::GlassBlur
                    | Corruption::MotionBlur
                    | Corruption::Shear
                    | Corruption::Rotate
                    | Corruption::Translate
                    | Corruption::Fog
                    | Corruption::Spatter
                    | Corruption::DottedLine
                    | Corruption::Zigzag,
                _
            ) | Condition::Ood(Ood::Uniform | Ood::Gaussian | Ood::Permuted)
        );
        assert_eq!(a != other, random, "{c}");
        // Everything but the identities changes the images.
        if !matches!(c, Condition::Clean | Condition::Fashion) {
            assert_ne!(a, x, "{c}");
        }
    }
}

#[test]
fn conditions_print_and_parse_back() {
    let all = suite();
    assert_eq!(all.len(), 1 + 12 + 7 + 15 + 4 + 1);
    for c in &all {
        assert_eq!(Condition::parse(&c.to_string()), Ok(*c));
    }
    assert_eq!(
        Condition::parse("mnistc:fog"),
        Ok(Condition::Corrupt(Corruption::Fog, 5))
    );
    assert_eq!(
        Condition::parse("mnistc:fog:2"),
        Ok(Condition::Corrupt(Corruption::Fog, 2))
    );
    for bad in [
        "rotate",
        "rotate:x",
        "mnistc:fog:6",
        "mnistc:stripe:2",
        "ood:notmnist",
        "blur:3",
    ] {
        assert!(Condition::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn ood_sets_have_the_stated_pixels() {
    let x = images(20);
    let inv = generate(Condition::Ood(Ood::Inverted), &x, 0, 0);
    assert!(x.iter().zip(&inv).all(|(a, b)| *a == 255 - *b));
    let perm = generate(Condition::Ood(Ood::Permuted), &x, 0, 0);
    for i in 0..20 {
        let (mut a, mut b) = (
            x[i * IMAGE_LEN..][..IMAGE_LEN].to_vec(),
            perm[i * IMAGE_LEN..][..IMAGE_LEN].to_vec(),
        );
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "same intensities, other places");
    }
    let uni = generate(Condition::Ood(Ood::Uniform), &x, 0, 0);
    let mean = uni.iter().map(|&v| f64::from(v)).sum::<f64>() / uni.len() as f64;
    assert!((mean - 127.5).abs() < 2.0, "{mean}");
    let g = generate(Condition::Ood(Ood::Gaussian), &x, 0, 0);
    let mean = g.iter().map(|&v| f64::from(v)).sum::<f64>() / g.len() as f64 / 255.0;
    // N(0.1307, 0.3081²) clipped to [0, 1] has mean ≈ 0.206.
    assert!((mean - 0.206).abs() < 0.01, "{mean}");
}

#[test]
fn affine_corruptions_keep_the_centre() {
    // A single bright pixel block at the centre stays at the centre under shear, scale and
    // MNIST-C's rotation; translate moves it by 3 pixels in each direction.
    let mut img = [0.0; IMAGE_LEN];
    for r in 13..15 {
        for c in 13..15 {
            img[r * SIDE + c] = 1.0;
        }
    }
    let centroid = |m: &image::Image| {
        let s: f64 = m.iter().sum();
        let (mut cr, mut cc) = (0.0, 0.0);
        for r in 0..SIDE {
            for c in 0..SIDE {
                cr += r as f64 * m[r * SIDE + c];
                cc += c as f64 * m[r * SIDE + c];
            }
        }
        (cr / s, cc / s)
    };
    let mut rng = crate::nn::rng::Rng::new(1);
    for c in [Corruption::Shear, Corruption::Scale, Corruption::Rotate] {
        let (r, col) = centroid(&c.apply(c.mnist_c_severity(), &img, &mut rng));
        assert!(
            (r - 13.5).abs() < 0.1 && (col - 13.5).abs() < 0.1,
            "{c:?}: {r} {col}"
        );
    }
    let (r, col) = centroid(&Corruption::Translate.apply(3, &img, &mut rng));
    assert!(((r - 13.5).abs() - 3.0).abs() < 1e-9 && ((col - 13.5).abs() - 3.0).abs() < 1e-9);
}
