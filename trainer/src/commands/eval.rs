//! `trainer eval`: the metrics of an exported model, computed through the no_std core.

use std::time::Instant;

use rayon::prelude::*;
use tinyvi::arch::CLASSES;
use tinyvi::infer::{Config, LeNet, Mode, Scratch};
use tinyvi::rng::image_seed;

use super::{compute_metrics, print_written, write_reports, Evaluated, TestSets};
use crate::cli::{EvalArgs, EvalMode};
use crate::data::idx::Dataset;
use crate::error::{Result, TrainerError};
use crate::eval::monte_carlo::McOutputs;
use crate::nn::parallel::thread_pool;
use crate::report;

/// `trainer eval`: the metrics of an exported model, computed through the no_std core.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).map_err(|e| TrainerError::read(&args.model, e))?;
    let model = tinyvi::Model::from_bytes(&bytes)
        .map_err(|e| TrainerError::data(&args.model, e.to_string()))?;
    let net = LeNet::new(&model).map_err(|e| TrainerError::data(&args.model, e.to_string()))?;
    report::create_out_dir(&args.out)?;
    let tests = TestSets::load(&args.data)?;
    let mode = core_mode(args.mode);
    let pool = thread_pool(args.threads)?;
    outln!(
        "evaluating {} through the tinyvi core: {} mode, {} samples, seed {}, {} threads",
        args.model.display(),
        mode.name(),
        args.samples,
        args.seed,
        pool.current_num_threads()
    );
    let started = Instant::now();
    let evaluated = pool.install(|| -> Result<Evaluated> {
        Ok(Evaluated {
            mnist: predict_all(&net, &tests.mnist, mode, args.samples, args.seed, 0)?,
            fashion: match &tests.fashion {
                Some(f) => Some(predict_all(
                    &net,
                    f,
                    mode,
                    args.samples,
                    args.seed,
                    tests.mnist.len(),
                )?),
                None => None,
            },
        })
    })?;
    let eval_seconds = started.elapsed().as_secs_f64();
    outln!("evaluated in {eval_seconds:.2} s");
    let mut m = compute_metrics(&tests, &evaluated)?;
    m.seed = args.seed;
    m.eval_samples = args.samples;
    m.eval_seconds = eval_seconds;
    write_reports(&args.out, &tests, &evaluated, &m)?;
    report::print_metrics_table(&m);
    print_written(&args.out, false);
    Ok(())
}

/// The core's sampling mode for a CLI mode.
pub fn core_mode(mode: EvalMode) -> Mode {
    match mode {
        EvalMode::Weights => Mode::Weights,
        EvalMode::LocalReparam => Mode::LocalReparam,
        EvalMode::Mean => Mode::Mean,
    }
}

/// Predicts every image of `set` with the core, in parallel; image `i` uses the seed
/// `image_seed(seed, first_index + i)`, so the result does not depend on the thread count.
pub fn predict_all(
    net: &LeNet<'_>,
    set: &Dataset,
    mode: Mode,
    samples: usize,
    seed: u64,
    first_index: usize,
) -> Result<McOutputs> {
    let samples =
        u32::try_from(samples).map_err(|_| TrainerError::invalid("--samples", "too large"))?;
    let results: Vec<(usize, [f32; CLASSES], f32)> = (0..set.len())
        .into_par_iter()
        .map_init(
            || Box::new(Scratch::new()),
            |scratch, i| {
                let config = Config {
                    samples,
                    seed: image_seed(seed, (first_index + i) as u32),
                    mode,
                    threshold: None,
                };
                net.predict(set.image(i), &config, scratch)
                    .map(|p| (i, p.probs, p.expected_entropy))
            },
        )
        .collect::<std::result::Result<_, tinyvi::Error>>()
        .map_err(|e| TrainerError::invalid("inference", e.to_string()))?;
    let mut out = McOutputs {
        probs: vec![[0.0; CLASSES]; set.len()],
        expected_entropy: vec![0.0; set.len()],
    };
    for (i, p, h) in results {
        out.probs[i] = p;
        out.expected_entropy[i] = h;
    }
    Ok(out)
}
