//! Tests of the training step and loop: Adam, gradients, determinism across threads, resuming.

use super::engine::Engine;
use super::*;
use crate::model::Lenet;
use crate::nn::bayes::{Prior, PRIOR};
use crate::nn::lenet::IN;
use crate::nn::rng::Rng;

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
