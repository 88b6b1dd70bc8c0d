//! Tests of the training step and loop: Adam, gradients, determinism across threads, resuming.

use super::engine::Engine;
use super::*;
use crate::model::Lenet;
use crate::nn::bayes::{Prior, PRIOR};
use crate::nn::lenet::IN;
use crate::nn::rng::Rng;
use crate::testdata::mnist;

/// The whole ELBO (CE over a batch, 2 samples, KL mean over layers) with ε fixed: analytic
/// ∂/∂μ and ∂/∂ρ against central differences, on the largest gradients of every layer.
#[test]
fn elbo_gradients_match_finite_differences() {
    check_elbo_gradients(&TrainConfig::default());
}

/// The same with local reparameterisation and the closed-form KL (layer mean and sum), and
/// with the closed-form KL on sampled weights.
#[test]
fn elbo_gradients_match_finite_differences_with_options() {
    let lr = TrainConfig {
        local_reparam: true,
        kl: KlMode::Closed,
        ..TrainConfig::default()
    };
    check_elbo_gradients(&lr);
    check_elbo_gradients(&TrainConfig {
        kl_reduction: KlReduction::Sum,
        ..lr.clone()
    });
    check_elbo_gradients(&TrainConfig {
        kl: KlMode::Closed,
        ..TrainConfig::default()
    });
}

fn check_elbo_gradients(cfg: &TrainConfig) {
    let mut model = Lenet::init(3);
    for m in &mut model.mu {
        *m *= 3.0;
    }
    for r in &mut model.rho {
        *r += 5.0; // σ ≈ 0.13: the noise matters
    }
    let n = 20; // two shards: the shard sum is checked too
    let mut x = vec![0.0f32; n * IN];
    Rng::new(4).fill_normal(&mut x);
    let labels: Vec<u8> = (0..n as u8).map(|i| i % 10).collect();
    let fill = |i: usize, out: &mut [f32]| out.copy_from_slice(&x[i * IN..(i + 1) * IN]);
    let klw = 0.05; // large enough that the KL's gradients count
    let mut e = Engine::new(2, n, rayon::current_num_threads()).with_options(cfg);
    let kl = e.sample(&model, 9, 0, false);
    e.gradients(&model, n, &labels, klw, kl, &fill);
    let (gmu, grho) = (e.gmu.clone(), e.grho.clone());
    let mut loss = |m: &Lenet| -> f64 {
        let kl = e.sample(m, 9, 0, true);
        let l = e.gradients(m, n, &labels, klw, kl, &fill);
        l.ce + klw as f64 * l.kl
    };
    let mut checked = 0;
    for l in crate::nn::lenet::LAYERS {
        for (which, g) in [("mu", &gmu), ("rho", &grho)] {
            let mut idx: Vec<usize> = (l.w..l.end).collect();
            idx.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
            let mut picks = idx[..2].to_vec();
            picks.push(
                (l.b..l.end)
                    .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
                    .unwrap(),
            );
            for i in picks {
                // f32 rounding favours a large step, ReLU kinks a small one: accept the
                // analytic value when one of four steps agrees with it.
                let an = g[i] as f64;
                let fds: Vec<f64> = [1e-2f32, 3e-3, 1e-3, 3e-4]
                    .iter()
                    .map(|&h| {
                        let (mut a, mut b) = (model.clone(), model.clone());
                        let (pa, pb) = if which == "mu" {
                            (&mut a.mu, &mut b.mu)
                        } else {
                            (&mut a.rho, &mut b.rho)
                        };
                        pa[i] += h;
                        pb[i] -= h;
                        (loss(&a) - loss(&b)) / (2.0 * h as f64)
                    })
                    .collect();
                assert!(
                    fds.iter()
                        .any(|fd| (an - fd).abs() <= 0.01 * fd.abs() + 5e-4),
                    "{cfg:?}: {} {which}[{i}]: analytic {an} vs finite differences {fds:?}",
                    l.name
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 30);
}

fn small_run(threads: usize, n: usize, epochs: usize) -> (Lenet, Vec<StepInfo>) {
    small_run_with(threads, n, epochs, &TrainConfig::default())
}

fn small_run_with(
    threads: usize,
    n: usize,
    epochs: usize,
    base: &TrainConfig,
) -> (Lenet, Vec<StepInfo>) {
    let (x, y) = mnist("train", n).expect("MNIST in /work/data or $TINYVI_DATA");
    let cfg = TrainConfig {
        epochs,
        batch_size: 64,
        seed: 5,
        threads,
        ..base.clone()
    };
    let mut model = Lenet::init(cfg.seed);
    let mut steps = vec![];
    train(&mut model, &x, &y, &cfg, &mut |s| steps.push(s)).unwrap();
    (model, steps)
}

#[test]
fn same_seed_same_parameters_for_one_or_two_threads() {
    let (a, sa) = small_run(1, 300, 1);
    let (b, sb) = small_run(2, 300, 1);
    assert_eq!(sa.len(), 5); // 4 full batches and the partial one of 44
    assert_eq!(sa, sb);
    assert!(
        a.mu == b.mu && a.rho == b.rho,
        "parameters differ between 1 and 2 threads"
    );
    assert_ne!(a.mu, Lenet::init(5).mu);
}

/// Local reparameterisation (one sample, closed KL): the same parameters and steps for 1 and
/// 2 threads, and different from the default recipe's.
#[test]
fn local_reparam_is_the_same_for_one_or_two_threads() {
    let cfg = TrainConfig {
        local_reparam: true,
        kl: KlMode::Closed,
        train_samples: 1,
        lr_schedule: LrSchedule::OneCycle,
        kl_anneal_epochs: 1,
        ..TrainConfig::default()
    };
    let (a, sa) = small_run_with(1, 300, 2, &cfg);
    let (b, sb) = small_run_with(2, 300, 2, &cfg);
    assert_eq!(sa.len(), 10);
    assert_eq!(sa, sb);
    assert!(a == b, "parameters differ between 1 and 2 threads");
    let (d, _) = small_run(2, 300, 2);
    assert_ne!(a.mu, d.mu);
    // The KL is the closed form (annealed from 0: the first step's loss is its CE).
    assert_eq!(sa[0].loss, sa[0].ce);
    assert!(sa.iter().all(|s| s.kl > 0.0 && s.loss.is_finite()));
}

/// A short run with local reparameterisation, closed KL summed and weighted 1/60000 (as on
/// the full set), and one-cycle learns as well as the default.
#[test]
fn local_reparam_training_lowers_the_loss() {
    let cfg = TrainConfig {
        local_reparam: true,
        kl: KlMode::Closed,
        kl_reduction: KlReduction::Sum,
        kl_weight: 1.0 / 60000.0,
        lr: 3e-3,
        train_samples: 1,
        lr_schedule: LrSchedule::OneCycle,
        ..TrainConfig::default()
    };
    let (_, steps) = small_run_with(0, 1024, 3, &cfg);
    assert_eq!(steps.len(), 48);
    let first = steps[0].ce;
    let last: f32 = steps[40..].iter().map(|s| s.ce).sum::<f32>() / 8.0;
    let acc: f32 = steps[40..].iter().map(|s| s.batch_accuracy).sum::<f32>() / 8.0;
    assert!(first > 2.0, "first CE {first}");
    assert!(last < 0.75 * first, "CE {first} → {last}");
    assert!(acc > 0.3, "accuracy {acc}");
    assert!(steps
        .iter()
        .all(|s| (s.loss - s.ce - s.kl / 60000.0).abs() < 1e-4 * (1.0 + s.loss.abs())));
}

#[test]
fn lr_schedules_at_known_steps() {
    let lr = 3e-3f32;
    let near = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-6 * b.abs() + 1e-12;
    for t in [0, 7, 99, 1000] {
        assert_eq!(LrSchedule::Constant.at(lr, t, 100), lr);
    }
    let l = lr as f64;
    let cos = |t, total| LrSchedule::Cosine.at(lr, t, total);
    assert!(near(cos(0, 100), l));
    assert!(near(cos(25, 100), l * 0.5 * (1.0 + 0.5f64.sqrt())));
    assert!(near(cos(50, 100), l * 0.5));
    assert!(near(
        cos(99, 100),
        l * 0.5 * (1.0 + (std::f64::consts::PI * 0.99).cos())
    ));
    let one = |t| LrSchedule::OneCycle.at(lr, t, 100);
    assert!(near(one(0), l / 25.0));
    assert!(near(one(15), l / 25.0 + (l - l / 25.0) * 0.5));
    assert!(near(one(30), l));
    assert!(near(one(65), l / 1e4 + (l - l / 1e4) * 0.5));
    assert!(near(one(100), l / 1e4));
    let v: Vec<f32> = (0..100).map(one).collect();
    assert!(v[..31].windows(2).all(|w| w[0] < w[1]), "warm-up rises");
    assert!(v[30..].windows(2).all(|w| w[0] > w[1]), "then falls");
}

#[test]
fn kl_weight_anneals_linearly_per_step() {
    let cfg = TrainConfig {
        kl_weight: 0.02,
        kl_anneal_epochs: 2,
        ..TrainConfig::default()
    };
    assert_eq!(cfg.kl_weight_at(0, 10), 0.0);
    assert!((cfg.kl_weight_at(5, 10) - 0.005).abs() < 1e-9);
    assert!((cfg.kl_weight_at(19, 10) - 0.019).abs() < 1e-9);
    assert_eq!(cfg.kl_weight_at(20, 10), 0.02);
    assert_eq!(cfg.kl_weight_at(500, 10), 0.02);
    let off = TrainConfig::default();
    assert_eq!(off.kl_weight_at(0, 10), off.kl_weight);
}

#[test]
fn inconsistent_options_are_refused() {
    let mut m = Lenet::init(0);
    let cfg = TrainConfig {
        local_reparam: true,
        ..TrainConfig::default()
    };
    let e = train(&mut m, &[0; 784], &[1], &cfg, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("--kl closed"), "{e}");
    let closed = TrainConfig {
        kl: KlMode::Closed,
        ..TrainConfig::default()
    };
    assert!(closed.check_options(&PRIOR).is_ok());
    let mixture = Prior { pi: 0.5, ..PRIOR };
    let e = closed.check_options(&mixture).unwrap_err();
    assert!(e.to_string().contains("mixture"), "{e}");
    assert!(TrainConfig::default().check_options(&mixture).is_ok());
    assert_eq!(KlMode::resolve(None, true), KlMode::Closed);
    assert_eq!(KlMode::resolve(None, false), KlMode::Mc);
    assert_eq!(KlMode::resolve(Some(KlMode::Mc), true), KlMode::Mc);
}

#[test]
fn small_training_run_lowers_the_loss() {
    let (_, steps) = small_run(0, 1024, 3);
    assert_eq!(steps.len(), 48);
    let first = steps[0].ce;
    let last: f32 = steps[40..].iter().map(|s| s.ce).sum::<f32>() / 8.0;
    let acc: f32 = steps[40..].iter().map(|s| s.batch_accuracy).sum::<f32>() / 8.0;
    assert!(first > 2.0, "first CE {first}");
    assert!(last < 0.75 * first, "CE {first} → {last}");
    assert!(acc > 0.3, "accuracy {acc}");
    assert!(steps
        .iter()
        .all(|s| s.kl > 0.0 && (s.loss - s.ce - s.kl / 50_000.0).abs() < 1e-4));
}

/// Every saved state (mid-epoch every 2 steps, and at each epoch's end), resumed in a fresh
/// run, ends with the parameters and step losses of the uninterrupted run, bit for bit.
#[test]
fn resuming_from_any_checkpoint_is_bit_exact() {
    check_resume_bit_exact(&TrainConfig::default());
}

/// The same with a learning-rate schedule, KL annealing, local reparameterisation and the
/// closed-form KL summed (and with the schedule alone on the default ELBO).
#[test]
fn resuming_with_schedules_and_options_is_bit_exact() {
    check_resume_bit_exact(&TrainConfig {
        local_reparam: true,
        kl: KlMode::Closed,
        kl_reduction: KlReduction::Sum,
        kl_weight: 1.0 / 300.0,
        kl_anneal_epochs: 1,
        lr_schedule: LrSchedule::OneCycle,
        train_samples: 2,
        ..TrainConfig::default()
    });
    check_resume_bit_exact(&TrainConfig {
        lr_schedule: LrSchedule::Cosine,
        ..TrainConfig::default()
    });
}

fn check_resume_bit_exact(base: &TrainConfig) {
    let (x, y) = mnist("train", 300).expect("MNIST in /work/data or $TINYVI_DATA");
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        seed: 11,
        threads: 2,
        ..base.clone()
    };
    let mut saved: Vec<(Lenet, TrainState)> = vec![];
    let mut save = |m: &Lenet, s: &TrainState| {
        saved.push((m.clone(), s.clone()));
        Ok(())
    };
    let mut full = Lenet::init(cfg.seed);
    let mut losses = vec![];
    let ck = Checkpoints {
        resume: None,
        every_steps: 2,
        save: &mut save,
        inject_nan: None,
    };
    let whole = train_resumable(&mut full, &x, &y, &cfg, ck, &mut |s| losses.push(s.loss)).unwrap();
    let at: Vec<(usize, usize)> = saved.iter().map(|(_, s)| (s.epoch, s.step)).collect();
    assert_eq!(at, [(0, 2), (0, 4), (1, 0), (1, 2), (1, 4), (2, 0)]);
    for (model, state) in saved {
        let g = state.global_step;
        let mut m = model;
        let mut rest = vec![];
        let mut nothing = |_: &Lenet, _: &TrainState| Ok(());
        let ck = Checkpoints {
            resume: Some(state),
            every_steps: 0,
            save: &mut nothing,
            inject_nan: None,
        };
        let cfg1 = TrainConfig {
            threads: 1,
            ..cfg.clone()
        };
        let sum = train_resumable(&mut m, &x, &y, &cfg1, ck, &mut |s| rest.push(s.loss)).unwrap();
        assert_eq!(rest, losses[g..], "losses after resuming at step {g}");
        assert!(m == full, "parameters differ after resuming at step {g}");
        assert_eq!(sum.last_epoch_loss, whole.last_epoch_loss);
        assert_eq!(sum.steps, whole.steps);
    }
}

/// A NaN gradient stops training at its step, names its layer, leaves the parameters as
/// after the previous step, and no later state is saved.
#[test]
fn a_nan_gradient_stops_before_the_update() {
    let (x, y) = mnist("train", 300).expect("MNIST in /work/data or $TINYVI_DATA");
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        seed: 2,
        ..TrainConfig::default()
    };
    let run = |inject: (usize, usize)| {
        let mut saved = vec![];
        let mut save = |_: &Lenet, s: &TrainState| {
            saved.push(s.global_step);
            Ok(())
        };
        let mut m = Lenet::init(cfg.seed);
        let mut steps = 0;
        let ck = Checkpoints {
            resume: None,
            every_steps: 0,
            save: &mut save,
            inject_nan: Some(inject),
        };
        let e = train_resumable(&mut m, &x, &y, &cfg, ck, &mut |_| steps += 1).unwrap_err();
        (e, m, steps, saved)
    };
    let (e, m, steps, saved) = run((7, 2));
    assert!(
        matches!(
            e,
            TrainError::NonFinite {
                step: 7,
                what: "ρ gradient",
                layer: Some("fc1")
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "training diverged at step 7: non-finite ρ gradient in layer fc1"
    );
    assert_eq!(steps, 7);
    assert_eq!(saved, [5], "only the end of epoch 1 was saved");
    let (e0, _, _, _) = run((7, 0));
    assert!(e0.to_string().ends_with("in layer conv1"), "{e0}");
    // The parameters are those after 7 good steps of a clean run.
    let mut after7 = None;
    let mut save = |m: &Lenet, s: &TrainState| {
        if s.global_step == 7 {
            after7 = Some(m.clone());
        }
        Ok(())
    };
    let mut clean = Lenet::init(cfg.seed);
    let ck = Checkpoints {
        resume: None,
        every_steps: 1,
        save: &mut save,
        inject_nan: None,
    };
    train_resumable(&mut clean, &x, &y, &cfg, ck, &mut |_| {}).unwrap();
    assert!(
        after7.as_ref() == Some(&m),
        "the parameters changed at the failing step"
    );
    assert!(m.mu.iter().chain(&m.rho).all(|v| v.is_finite()));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut m = Lenet::init(0);
    let cfg = TrainConfig::default();
    let e = train(&mut m, &[0; 784 * 2], &[1], &cfg, &mut |_| {}).unwrap_err();
    assert!(matches!(e, TrainError::Invalid(_)));
    let e = train(&mut m, &[0; 784], &[10], &cfg, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("label 10"));
    let mut bad = Lenet::init(0);
    bad.rho[40_000] = f32::NAN;
    let e = train(&mut bad, &[0; 784], &[1], &cfg, &mut |_| {}).unwrap_err();
    assert!(matches!(e, TrainError::NonFinite { step: 0, .. }), "{e}");
}
