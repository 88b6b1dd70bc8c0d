//! Trainer ⇄ core: the model the trainer exports, read by the no_std core, computes what the
//! trainer computes: exactly (to f32 rounding) with the mean weights, and within Monte Carlo
//! error with sampled weights, in both sampling modes.

use tinyvi::arch::{CLASSES, IMAGE_LEN};
use tinyvi::infer::{Config, LeNet, Mode, Scratch};
use tinyvi::rng::image_seed;
use trainer::data::mnist::load_mnist;
use trainer::eval::monte_carlo::evaluate_with_threads;
use trainer::model::export::try_export;
use trainer::model::Lenet;
use trainer::train::{train, TrainConfig};

use tests::data_dir;

/// A LeNet trained for 20 steps on real MNIST, and 200 MNIST test images.
fn trained() -> (Lenet, Vec<u8>) {
    let (train_set, test) = load_mnist(&data_dir()).expect("MNIST (see README: Data)");
    let n = 2_560;
    let mut model = Lenet::init(11);
    let cfg = TrainConfig {
        seed: 11,
        threads: 2,
        ..TrainConfig::default()
    };
    train(
        &mut model,
        &train_set.images[..n * IMAGE_LEN],
        &train_set.labels[..n],
        &cfg,
        &mut |_| {},
    )
    .expect("training");
    (model, test.images[..200 * IMAGE_LEN].to_vec())
}

#[test]
fn mean_weights_forward_matches_the_trainer_within_1e_5() {
    let (model, images) = trained();
    let bytes = try_export(&model, None).unwrap();
    let decoded = tinyvi::Model::from_bytes(&bytes).unwrap();
    let net = LeNet::new(&decoded).unwrap();
    let expected = trainer::eval::monte_carlo::mean_forward(&model, &images);
    let mut scratch = Box::new(Scratch::new());
    let mut worst = 0.0f32;
    for (i, img) in images.chunks_exact(IMAGE_LEN).enumerate() {
        let config = Config {
            samples: 1,
            seed: 0,
            mode: Mode::Mean,
            threshold: None,
        };
        let p = net.predict(img, &config, &mut scratch).unwrap();
        for (a, b) in p.probs.iter().zip(&expected[i]) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= 1e-5, "largest |Δp| = {worst}");
}

/// The core's Monte Carlo predictive (per image, its own seed per image) against the trainer's
/// evaluation (one weight sample shared by all images, per Monte Carlo sample) of a model made
/// more uncertain (σ ≈ 0.05 everywhere) so that sampling matters. S = 400 samples each.
///
/// Two checks, each with a stated false-alarm rate (the seeds are fixed, so a pass stays a
/// pass):
/// - Per image and class, Δ = p̄_core − p̄_trainer. Each p̄_c is a mean of S draws of a value in
///   [0, 1] with mean m, whose variance is at most m(1 − m) (Bhatia–Davis), so Δ has a standard
///   error of at most √(2/S · m(1 − m)); fail beyond 5 of them (+1e-6 for f32 rounding). With
///   2,000 comparisons: false alarm < 2,000 × 5.7e-7 ≈ 1e-3. (The sample variance is not used
///   here: for classes that win only in rare samples it underestimates the tail.)
/// - The sensitive one: per class, and for the label's probability, the mean over the 200 images.
///   Averaging 200 images makes the normal approximation and the variance estimates sound: the
///   core's images are independent (variance Σ sd²/S/200²), the trainer's samples are
///   independent (variance of the per-sample image means / S). Fail beyond 4.5 standard errors:
///   11 comparisons, false alarm ≈ 11 × 6.8e-6 ≈ 7e-5. This check fails for a model whose σ is
///   a third smaller than the one the trainer evaluates (checked by hand when it was written).
fn sampled_modes_agree(mode: Mode) {
    let (mut model, images) = trained();
    let (_, test) = load_mnist(&data_dir()).unwrap();
    let labels = &test.labels[..images.len() / IMAGE_LEN];
    model.rho.iter_mut().for_each(|r| *r = -3.0);
    let samples = 400;
    let n = labels.len();
    // The trainer, one weight sample at a time: per_sample[s][i] = p_s for image i.
    let per_sample: Vec<Vec<[f32; CLASSES]>> = (0..samples as u64)
        .map(|s| {
            evaluate_with_threads(&model, &images, 1, 1_000 + s, 2)
                .unwrap()
                .probs
        })
        .collect();
    let theirs: Vec<[f64; CLASSES]> = (0..n)
        .map(|i| {
            let mut m = [0.0; CLASSES];
            for p in &per_sample {
                for c in 0..CLASSES {
                    m[c] += f64::from(p[i][c]) / samples as f64;
                }
            }
            m
        })
        .collect();

    let bytes = try_export(&model, None).unwrap();
    let decoded = tinyvi::Model::from_bytes(&bytes).unwrap();
    let net = LeNet::new(&decoded).unwrap();
    let mut scratch = Box::new(Scratch::new());
    let mut disagreements = 0;
    // Index CLASSES of these is the label's probability.
    let mut core_mean = [0.0f64; CLASSES + 1];
    let mut core_var = [0.0f64; CLASSES + 1];
    for (i, img) in images.chunks_exact(IMAGE_LEN).enumerate() {
        let config = Config {
            samples: samples as u32,
            seed: image_seed(99, i as u32),
            mode,
            threshold: None,
        };
        let p = net.predict(img, &config, &mut scratch).unwrap();
        for (&mine, &their) in p.probs.iter().zip(&theirs[i]) {
            let m = (f64::from(mine) + their) / 2.0;
            let se = (2.0 / samples as f64 * m * (1.0 - m)).max(0.0).sqrt();
            if (f64::from(mine) - their).abs() > 5.0 * se + 1e-6 {
                disagreements += 1;
            }
        }
        let y = labels[i] as usize;
        for (k, c) in (0..CLASSES).chain([y]).enumerate() {
            core_mean[k] += f64::from(p.probs[c]) / n as f64;
            core_var[k] += (f64::from(p.std[c])).powi(2) / samples as f64 / (n * n) as f64;
        }
    }
    assert_eq!(disagreements, 0, "{mode:?}: images beyond 5 bounded SE");

    for k in 0..=CLASSES {
        let stat = |p: &[[f32; CLASSES]]| -> f64 {
            (0..n)
                .map(|i| f64::from(p[i][if k < CLASSES { k } else { labels[i] as usize }]))
                .sum::<f64>()
                / n as f64
        };
        let per_s: Vec<f64> = per_sample.iter().map(|p| stat(p)).collect();
        let mean = per_s.iter().sum::<f64>() / samples as f64;
        let var = per_s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (samples as f64 - 1.0);
        let se = (core_var[k] + var / samples as f64).sqrt();
        let z = (core_mean[k] - mean) / se;
        let what = if k < CLASSES {
            format!("class {k}")
        } else {
            "label".to_string()
        };
        assert!(
            z.abs() <= 4.5,
            "{mode:?}, mean p̄ of {what}: core {:.5}, trainer {mean:.5}, z = {z:.2}",
            core_mean[k]
        );
    }
    // Sampling really matters at this σ (else the test would prove nothing).
    let spread = theirs
        .iter()
        .zip(trainer::eval::monte_carlo::mean_forward(&model, &images))
        .map(|(p, q)| {
            (0..CLASSES)
                .map(|c| (p[c] - f64::from(q[c])).abs())
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    assert!(spread > 0.01, "σ too small to test sampling: {spread}");
}

#[test]
fn weights_mode_agrees_with_the_trainer_within_monte_carlo_error() {
    sampled_modes_agree(Mode::Weights);
}

#[test]
fn local_reparam_mode_agrees_with_the_trainer_within_monte_carlo_error() {
    sampled_modes_agree(Mode::LocalReparam);
}
