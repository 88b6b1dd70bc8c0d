//! The engine of one training step: weight sampling with the KL, and the ELBO gradients of a
//! batch computed over fixed shards, with the buffers every step reuses.

use std::sync::Mutex;

use rayon::prelude::*;

use super::config::{KlMode, KlReduction, TrainConfig};
use crate::model::Lenet;
use crate::nn::bayes::{self, Prior, PRIOR};
use crate::nn::lenet::{layer_of, LocalReparam, Workspace, FC_START, FC_UNITS, IN, PARAMS};
use crate::nn::rng::{purpose, Rng};

/// Images per shard of a batch (the unit of parallel work).
pub const SHARD: usize = 16;
/// Parameters per chunk of the element-wise phases.
pub(crate) const CHUNK: usize = 4096;

/// Buffers reused by every step.
pub(crate) struct Engine {
    s: usize,
    pub(crate) sigma: Vec<f32>,
    ln_sigma: Vec<f32>,
    dsigma: Vec<f32>,
    /// σ², used by the locally reparameterised fc layers only.
    var: Vec<f32>,
    /// ε per sample, `[s][PARAMS]`.
    pub(crate) eps: Vec<f32>,
    /// Sampled weights per sample, `[s][PARAMS]` (the fc part stays unused under local
    /// reparameterisation).
    pub(crate) w: Vec<f32>,
    pub(crate) gmu: Vec<f32>,
    pub(crate) grho: Vec<f32>,
    /// Per shard, per sample: `∂L/∂w` of the shard's images (fixed shards: a deterministic sum);
    /// `∂L/∂μ` for the locally reparameterised fc layers.
    shard_grads: Vec<Vec<Vec<f32>>>,
    /// Per shard, per sample: `∂L/∂σ²` of the locally reparameterised fc layers (empty when off).
    shard_gvars: Vec<Vec<Vec<f32>>>,
    /// Per shard, per sample: the fc pre-activation noise, `SHARD · FC_UNITS` values (empty when
    /// off), drawn from streams of (seed, step, sample, shard).
    lr_eps: Vec<Vec<Vec<f32>>>,
    /// Scratch buffers, one per worker thread (kept warm in that core's cache).
    scratch: Vec<Mutex<Workspace>>,
    prior: Prior,
    local_reparam: bool,
    kl: KlMode,
    reduction: KlReduction,
}

/// Losses of one step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepLoss {
    pub ce: f64,
    pub kl: f64,
    pub correct: usize,
}

impl Engine {
    pub(crate) fn new(s: usize, batch: usize, threads: usize) -> Self {
        let shards = batch.div_ceil(SHARD);
        Engine {
            s,
            sigma: vec![0.0; PARAMS],
            ln_sigma: vec![0.0; PARAMS],
            dsigma: vec![0.0; PARAMS],
            var: vec![],
            eps: vec![0.0; s * PARAMS],
            w: vec![0.0; s * PARAMS],
            gmu: vec![0.0; PARAMS],
            grho: vec![0.0; PARAMS],
            shard_grads: vec![vec![vec![0.0; PARAMS]; s]; shards],
            shard_gvars: vec![vec![]; shards],
            lr_eps: vec![vec![]; shards],
            scratch: (0..threads.max(1))
                .map(|_| Mutex::new(Workspace::new(SHARD, s, true)))
                .collect(),
            prior: PRIOR,
            local_reparam: false,
            kl: KlMode::Mc,
            reduction: KlReduction::LayerMean,
        }
    }

    /// The engine for `cfg`'s local reparameterisation and KL options.
    pub(crate) fn with_options(mut self, cfg: &TrainConfig) -> Self {
        self.local_reparam = cfg.local_reparam;
        self.kl = cfg.kl;
        self.reduction = cfg.kl_reduction;
        if cfg.local_reparam {
            let s = self.s;
            self.var = vec![0.0; PARAMS];
            for g in &mut self.shard_gvars {
                *g = vec![vec![0.0; PARAMS]; s];
            }
            for e in &mut self.lr_eps {
                *e = vec![vec![0.0; SHARD * FC_UNITS]; s];
            }
        }
        self
    }

    /// σ terms of the current ρ, then fresh ε (from `seed`, `step`) unless `keep_eps`, and the
    /// weight samples; returns Σ_s KL_s (each reduced over the layers) for the Monte Carlo KL,
    /// the KL itself for the closed form.
    pub(crate) fn sample(&mut self, model: &Lenet, seed: u64, step: u64, keep_eps: bool) -> f64 {
        let (sigma, ln_sigma, dsigma) = (&mut self.sigma, &mut self.ln_sigma, &mut self.dsigma);
        sigma
            .par_chunks_mut(CHUNK)
            .zip(ln_sigma.par_chunks_mut(CHUNK))
            .zip(dsigma.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, ((s, l), d))| {
                bayes::sigma_terms(&model.rho[c * CHUNK..c * CHUNK + s.len()], s, l, d);
            });
        if self.kl == KlMode::Closed {
            return self.sample_closed(model, seed, step, keep_eps);
        }
        let per_sample = PARAMS.div_ceil(CHUNK);
        let (sigma, ln_sigma, prior) = (&self.sigma, &self.ln_sigma, &self.prior);
        let parts: Vec<f64> = sample_chunks(&mut self.eps, &mut self.w)
            .map(|(s, c, e, w)| {
                if !keep_eps {
                    Rng::stream(seed, &[purpose::TRAIN_EPS, step, s as u64, c as u64])
                        .fill_normal(e);
                }
                let r = c * CHUNK..c * CHUNK + e.len();
                bayes::sample(&model.mu[r.clone()], &sigma[r.clone()], e, w);
                bayes::kl_sum(&ln_sigma[r], e, w, prior)
            })
            .collect();
        debug_assert_eq!(parts.len(), self.s * per_sample);
        parts.iter().sum::<f64>() / self.reduction.divisor() as f64
    }

    /// [`Engine::sample`] for the closed-form KL: samples the weights (only the conv layers'
    /// under local reparameterisation, plus σ² and the fc noise) and returns the KL.
    fn sample_closed(&mut self, model: &Lenet, seed: u64, step: u64, keep_eps: bool) -> f64 {
        let limit = if self.local_reparam { FC_START } else { PARAMS };
        let sigma = &self.sigma;
        sample_chunks(&mut self.eps, &mut self.w).for_each(|(s, c, e, w)| {
            let lo = c * CHUNK;
            if lo >= limit {
                return;
            }
            let len = e.len().min(limit - lo);
            let (e, w) = (&mut e[..len], &mut w[..len]);
            if !keep_eps {
                Rng::stream(seed, &[purpose::TRAIN_EPS, step, s as u64, c as u64]).fill_normal(e);
            }
            bayes::sample(&model.mu[lo..lo + len], &sigma[lo..lo + len], e, w);
        });
        if self.local_reparam {
            self.var
                .par_chunks_mut(CHUNK)
                .zip(sigma.par_chunks(CHUNK))
                .for_each(|(v, s)| {
                    for (v, &s) in v.iter_mut().zip(s) {
                        *v = s * s;
                    }
                });
            if !keep_eps {
                self.lr_eps
                    .par_iter_mut()
                    .enumerate()
                    .flat_map(|(k, per)| {
                        per.par_iter_mut().enumerate().map(move |(j, e)| (k, j, e))
                    })
                    .for_each(|(k, j, e)| {
                        Rng::stream(seed, &[purpose::TRAIN_LR_EPS, step, j as u64, k as u64])
                            .fill_normal(e);
                    });
            }
        }
        let (ln_sigma, prior) = (&self.ln_sigma, &self.prior);
        let parts: Vec<f64> = model
            .mu
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, m)| {
                let r = c * CHUNK..c * CHUNK + m.len();
                bayes::closed_kl_sum(m, &sigma[r.clone()], &ln_sigma[r], prior)
            })
            .collect();
        parts.iter().sum::<f64>() / self.reduction.divisor() as f64
    }

    /// Forward + backward of the batch (normalised images produced by `fill`) and the μ, ρ
    /// gradients of the ELBO into `gmu`, `grho`. `kl_sum` is [`Engine::sample`]'s result for
    /// the same `model`.
    pub(crate) fn gradients(
        &mut self,
        model: &Lenet,
        n: usize,
        labels: &[u8],
        kl_weight: f32,
        kl_sum: f64,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> StepLoss {
        let s = self.s;
        let scale = 1.0 / (n * s) as f32;
        let weights: Vec<&[f32]> = self.w.chunks_exact(PARAMS).collect();
        let nshards = n.div_ceil(SHARD);
        let scratch = &self.scratch;
        let local_reparam = self.local_reparam;
        let (var, lr_eps) = (&self.var, &self.lr_eps);
        let outs: Vec<(f64, usize)> = self.shard_grads[..nshards]
            .par_iter_mut()
            .zip(self.shard_gvars[..nshards].par_iter_mut())
            .enumerate()
            .map(|(k, (grads, gvars))| {
                let t = rayon::current_thread_index().unwrap_or(0) % scratch.len();
                let mut ws = scratch[t].lock().unwrap_or_else(|e| e.into_inner());
                let lo = k * SHARD;
                let m = SHARD.min(n - lo);
                for i in 0..m {
                    fill(lo + i, &mut ws.x[i * IN..(i + 1) * IN]);
                }
                let labels = &labels[lo..lo + m];
                let ce = if local_reparam {
                    let lrs: Vec<LocalReparam> = lr_eps[k]
                        .iter()
                        .map(|e| LocalReparam {
                            mu: &model.mu,
                            var,
                            eps: e,
                        })
                        .collect();
                    ws.forward_backward_lr(m, labels, &weights, &lrs, scale, grads, gvars)
                } else {
                    ws.forward_backward(m, labels, &weights, scale, grads)
                };
                (
                    ce.iter().map(|c| c.ce_sum).sum(),
                    ce.iter().map(|c| c.correct).sum(),
                )
            })
            .collect();
        let c = kl_weight / (self.reduction.divisor() * s) as f32;
        let c_closed = kl_weight / self.reduction.divisor() as f32;
        let closed = self.kl == KlMode::Closed;
        let shards = &self.shard_grads[..nshards];
        let gvars = &self.shard_gvars[..nshards];
        let (sigma, dsigma, eps, w, prior) =
            (&self.sigma, &self.dsigma, &self.eps, &self.w, &self.prior);
        self.gmu
            .par_chunks_mut(CHUNK)
            .zip(self.grho.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(ci, (gm, gr))| {
                let lo = ci * CHUNK;
                let len = gm.len();
                gm.fill(0.0);
                gr.fill(0.0);
                let mut g = [0.0f32; CHUNK];
                let g = &mut g[..len];
                // Local reparameterisation: [split, len) of this chunk is fc (∂/∂μ, ∂/∂σ²).
                let split = if local_reparam {
                    FC_START.clamp(lo, lo + len) - lo
                } else {
                    len
                };
                let mut gv = [0.0f32; CHUNK];
                let gv = &mut gv[split..len];
                for j in 0..s {
                    g.copy_from_slice(&shards[0][j][lo..lo + len]);
                    for sg in &shards[1..] {
                        for (a, &b) in g.iter_mut().zip(&sg[j][lo..lo + len]) {
                            *a += b;
                        }
                    }
                    let r = j * PARAMS + lo..j * PARAMS + lo + len;
                    if !closed {
                        bayes::accumulate_grads(
                            &sigma[lo..lo + len],
                            &dsigma[lo..lo + len],
                            &eps[r.clone()],
                            &w[r],
                            g,
                            c,
                            prior,
                            gm,
                            gr,
                        );
                        continue;
                    }
                    let e = &eps[j * PARAMS + lo..j * PARAMS + lo + split];
                    let (gm0, gm1) = gm.split_at_mut(split);
                    let (gr0, gr1) = gr.split_at_mut(split);
                    bayes::accumulate_data_grads(&dsigma[lo..lo + split], e, &g[..split], gm0, gr0);
                    if split < len {
                        let f = lo + split..lo + len;
                        gv.copy_from_slice(&gvars[0][j][f.clone()]);
                        for sv in &gvars[1..] {
                            for (a, &b) in gv.iter_mut().zip(&sv[j][f.clone()]) {
                                *a += b;
                            }
                        }
                        bayes::accumulate_var_grads(
                            &sigma[f.clone()],
                            &dsigma[f],
                            &g[split..],
                            gv,
                            gm1,
                            gr1,
                        );
                    }
                }
                if closed {
                    let r = lo..lo + len;
                    bayes::accumulate_closed_kl_grads(
                        &model.mu[r.clone()],
                        &sigma[r.clone()],
                        &dsigma[r],
                        c_closed,
                        prior,
                        gm,
                        gr,
                    );
                }
            });
        let ce: f64 = outs.iter().map(|o| o.0).sum();
        let correct = outs.iter().map(|o| o.1).sum();
        StepLoss {
            ce: ce / (n * s) as f64,
            kl: if closed { kl_sum } else { kl_sum / s as f64 },
            correct,
        }
    }

    /// The first non-finite gradient, as (what, layer).
    pub(crate) fn check(&self) -> Option<(&'static str, &'static str)> {
        let bad = |v: &[f32]| v.par_iter().position_first(|g| !g.is_finite());
        if let Some(i) = bad(&self.gmu) {
            return Some(("μ gradient", layer_of(i).name));
        }
        bad(&self.grho).map(|i| ("ρ gradient", layer_of(i).name))
    }

    /// The first layer whose sampled weights are not finite.
    pub(crate) fn nonfinite_weights(&self) -> Option<&'static str> {
        let i = self.w.par_iter().position_first(|w| !w.is_finite())?;
        Some(layer_of(i % PARAMS).name)
    }
}

/// The noise and weight vectors of every sample, cut into fixed parameter chunks: items
/// `(sample, chunk, ε, w)`, the unit of the parallel sampling (independent of thread count).
fn sample_chunks<'a>(
    eps: &'a mut [f32],
    w: &'a mut [f32],
) -> impl ParallelIterator<Item = (usize, usize, &'a mut [f32], &'a mut [f32])> {
    eps.par_chunks_mut(PARAMS)
        .zip(w.par_chunks_mut(PARAMS))
        .enumerate()
        .flat_map(|(s, (e, w))| {
            e.par_chunks_mut(CHUNK)
                .zip(w.par_chunks_mut(CHUNK))
                .enumerate()
                .map(move |(c, (e, w))| (s, c, e, w))
        })
}
