//! Training runs on the first MNIST images: determinism across thread counts, the loss going
//! down, bit-exact resuming from any checkpoint, and a NaN gradient stopping before the update.

use trainer::model::Lenet;
use trainer::train::{
    train, train_resumable, Checkpoints, KlMode, KlReduction, LrSchedule, StepInfo, TrainConfig,
    TrainError, TrainState,
};

/// `(images n×784, labels n)`: the first `n` MNIST training images.
fn mnist(n: usize) -> (Vec<u8>, Vec<u8>) {
    let (train, _) = trainer::data::workspace::mnist();
    (train.images[..n * 784].to_vec(), train.labels[..n].to_vec())
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
    let (x, y) = mnist(n);
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

/// 3 epochs of 16 steps on 1,024 images: the cross-entropy falls by a quarter from its start
/// (above ln 10 ≈ 2.3) and the last 8 steps classify over 30% of their batches right.
fn assert_learns(steps: &[StepInfo]) {
    assert_eq!(steps.len(), 48);
    let first = steps[0].ce;
    let last: f32 = steps[40..].iter().map(|s| s.ce).sum::<f32>() / 8.0;
    let acc: f32 = steps[40..].iter().map(|s| s.batch_accuracy).sum::<f32>() / 8.0;
    assert!(first > 2.0, "first CE {first}");
    assert!(last < 0.75 * first, "CE {first} → {last}");
    assert!(acc > 0.3, "accuracy {acc}");
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
    assert_learns(&steps);
    assert!(steps
        .iter()
        .all(|s| (s.loss - s.ce - s.kl / 60000.0).abs() < 1e-4 * (1.0 + s.loss.abs())));
}

#[test]
fn small_training_run_lowers_the_loss() {
    let (_, steps) = small_run(0, 1024, 3);
    assert_learns(&steps);
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
    let (x, y) = mnist(300);
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
    let (x, y) = mnist(300);
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
