//! `trainer bench`: throughput figures on the real data, each the median of several timed
//! repetitions after a warm-up (min and max shown). Nothing here asserts a time: the machines
//! are shared and noisy, so compare figures of one run.

use std::time::Instant;

use rayon::prelude::*;
use tinyvi::infer::{Config, LeNet, Mode, Scratch};
use tinyvi::rng::image_seed;

use crate::cli::BenchArgs;
use crate::data::mnist::load_mnist;
use crate::error::{Result, TrainerError};
use crate::evaluate::evaluate;
use crate::model::Lenet;
use crate::pipeline::thread_pool;
use crate::train::{train, TrainConfig};

/// Multiply-adds of one LeNet forward pass on one image (conv1 86,400 + conv2 153,600 +
/// fc1 30,720 + fc2 10,080 + fc3 840).
pub const FORWARD_MACS: f64 = 281_640.0;
/// FLOPs of one training image-sample: forward, plus a backward of twice its cost.
pub const TRAIN_FLOPS_PER_IMAGE_SAMPLE: f64 = 3.0 * 2.0 * FORWARD_MACS;

/// Median, min and max of some timings, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Median.
    pub median: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
}

impl Timing {
    /// Summarises `seconds` (at least one value).
    pub fn of(mut seconds: Vec<f64>) -> Timing {
        seconds.sort_by(f64::total_cmp);
        let n = seconds.len();
        let median = if n % 2 == 1 {
            seconds[n / 2]
        } else {
            (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0
        };
        Timing {
            median,
            min: seconds[0],
            max: seconds[n - 1],
        }
    }
}

/// Runs `f` once to warm up, then `reps` times, timing each.
fn time(reps: usize, mut f: impl FnMut()) -> Timing {
    f();
    Timing::of(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Prints one figure: a rate computed from the median time, with the spread of the rate.
fn line(what: &str, work: f64, unit: &str, t: Timing) {
    outln!(
        "{what:<44} {:>12.1} {unit}/s  (median of runs; min {:.1}, max {:.1}; {:.3} s per run)",
        work / t.median,
        work / t.max,
        work / t.min,
        t.median
    );
}

/// Measured f32 GEMM throughput of this machine with `threads` threads, in GFLOP/s: each
/// thread multiplies its own 384×384 by 384×384 matrices with matrixmultiply.
pub fn gemm_peak(threads: usize, reps: usize) -> Result<Timing> {
    const N: usize = 384;
    let pool = thread_pool(Some(threads))?;
    let a = vec![0.5f32; N * N];
    let b = vec![0.25f32; N * N];
    let mut cs = vec![vec![0.0f32; N * N]; threads];
    let t = time(reps, || {
        pool.install(|| {
            cs.par_iter_mut().for_each(|c| {
                for _ in 0..8 {
                    crate::nn::gemm::gemm(
                        N,
                        N,
                        N,
                        crate::nn::gemm::View::rows(&a, N),
                        crate::nn::gemm::View::rows(&b, N),
                        0.0,
                        c,
                        N,
                    );
                }
            })
        })
    });
    Ok(t)
}

/// The CPU's brand string (from CPUID), or the architecture's name where there is none.
pub fn cpu_model() -> String {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    if let Some(brand) = raw_cpuid::CpuId::new().get_processor_brand_string() {
        return brand.as_str().trim().to_string();
    }
    format!("unknown {} CPU", std::env::consts::ARCH)
}

/// `trainer bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let reps = 5;
    let (train_set, test) = load_mnist(&args.data)?;
    let pool = thread_pool(args.threads)?;
    let threads = pool.current_num_threads();
    outln!(
        "tinyvi bench: {threads} threads, seed {}, {reps} timed runs after a warm-up; rates from the median run",
        args.seed
    );
    outln!(
        "CPU: {}; training kernels: {} (TINYVI_KERNELS={{avx512,avx2,portable}} forces a path)",
        cpu_model(),
        crate::nn::kernels::path().name()
    );

    // (d) GEMM peak, for the training fraction.
    let gemm = gemm_peak(threads, reps)?;
    let gemm_flops = threads as f64 * 8.0 * 2.0 * 384f64.powi(3);
    line(
        "f32 GEMM peak (matrixmultiply, 384³)",
        gemm_flops / 1e9,
        "GFLOP",
        gemm,
    );

    // (a) Training: 100 steps of the seed recipe.
    let steps = 100;
    let cfg = TrainConfig {
        seed: args.seed,
        threads,
        ..TrainConfig::default()
    };
    let n = (steps * cfg.batch_size).min(train_set.len());
    let images = &train_set.images[..n * tinyvi::arch::IMAGE_LEN];
    let labels = &train_set.labels[..n];
    let t_train = time(reps, || {
        let mut model = Lenet::init(args.seed);
        let _ = train(&mut model, images, labels, &cfg, &mut |_| {});
    });
    let image_samples = (n * cfg.train_samples) as f64;
    line(
        "training (batch 128, 3 samples)",
        image_samples,
        "image·sample",
        t_train,
    );
    let epoch = t_train.median * train_set.len() as f64 / n as f64;
    let achieved = image_samples * TRAIN_FLOPS_PER_IMAGE_SAMPLE / t_train.median / 1e9;
    let peak = gemm_flops / 1e9 / gemm.median;
    outln!(
        "{:<44} {epoch:>12.2} s per 60,000-image epoch; {achieved:.1} GFLOP/s = {:.0}% of the GEMM peak",
        "",
        100.0 * achieved / peak
    );

    // (b) Evaluation: 16 samples × 20,000 images (MNIST test twice: same shapes as + Fashion).
    let mut both = test.images.clone();
    both.extend_from_slice(&test.images);
    let model = {
        let mut m = Lenet::init(args.seed);
        let _ = train(&mut m, images, labels, &cfg, &mut |_| {});
        m
    };
    let t_eval = time(reps, || {
        pool.install(|| {
            let _ = evaluate(&model, &both, 16, args.seed);
        })
    });
    line(
        "evaluation (16 samples, 20,000 images)",
        20_000.0,
        "image",
        t_eval,
    );

    // (c) The no_std core on one thread, 16 samples per image, each mode.
    let bytes = crate::export::try_export(&model, None)
        .map_err(|e| TrainerError::invalid("export", e.to_string()))?;
    let decoded = tinyvi::Model::from_bytes(&bytes)
        .map_err(|e| TrainerError::invalid("export", e.to_string()))?;
    let net = LeNet::new(&decoded).map_err(|e| TrainerError::invalid("export", e.to_string()))?;
    let mut scratch = Box::new(Scratch::new());
    for mode in Mode::ALL {
        let count = match mode {
            Mode::Mean => 2_000,
            Mode::LocalReparam => 500,
            Mode::Weights => 200,
        };
        let t = time(reps, || {
            for i in 0..count {
                let config = Config {
                    samples: 16,
                    seed: image_seed(args.seed, i as u32),
                    mode,
                    threshold: None,
                };
                let _ = net.predict(test.image(i), &config, &mut scratch);
            }
        });
        line(
            &format!("core, 1 thread, 16 samples, {}", mode.name()),
            count as f64,
            "image",
            t,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_is_median_min_max() {
        let t = Timing::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((t.median, t.min, t.max), (2.0, 1.0, 3.0));
        let t = Timing::of(vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!((t.median, t.min, t.max), (2.5, 1.0, 4.0));
    }

    #[test]
    fn lenet_forward_macs_match_the_shapes() {
        let conv1 = 24 * 24 * 6 * 25;
        let conv2 = 8 * 8 * 16 * 6 * 25;
        let fc = 256 * 120 + 120 * 84 + 84 * 10;
        assert_eq!((conv1 + conv2 + fc) as f64, FORWARD_MACS);
    }
}
