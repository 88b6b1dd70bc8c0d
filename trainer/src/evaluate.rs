//! Batched Monte Carlo evaluation: each sample is one fresh draw of every weight, shared by the
//! whole image set; images run through in parallel chunks, samples stacked in conv1's GEMM.

use rayon::prelude::*;

use crate::model::Lenet;
use crate::nn::lenet::{log_sum_exp, Workspace, IN, OUT, PARAMS};
use crate::nn::rng::{purpose, Rng};

/// Images per parallel work item.
const CHUNK: usize = 64;
/// Samples stacked in one conv1 GEMM.
const GROUP: usize = 4;

/// Monte Carlo outputs per image.
#[derive(Clone, Debug, PartialEq)]
pub struct McOutputs {
    /// p̄: the mean over samples of the softmax vectors.
    pub probs: Vec<[f32; 10]>,
    /// Mean over samples of the entropy H[p_s] (nats); the MI is H[p̄] minus this.
    pub expected_entropy: Vec<f32>,
}

/// Normalised value of each pixel byte.
pub(crate) fn norm_lut() -> [f32; 256] {
    let mut lut = [0.0; 256];
    for (p, v) in lut.iter_mut().enumerate() {
        *v = tinyvi::arch::normalize(p as u8, tinyvi::arch::NORM_MEAN, tinyvi::arch::NORM_STD);
    }
    lut
}

/// `samples` weight draws `w = μ + softplus(ρ)·ε`, flat, sample after sample.
pub fn sample_weight_sets(model: &Lenet, samples: usize, seed: u64) -> Vec<f32> {
    let sigma = model.sigma();
    let mut sets = vec![0.0f32; samples * PARAMS];
    sets.par_chunks_mut(PARAMS).enumerate().for_each(|(s, w)| {
        Rng::stream(seed, &[purpose::EVAL_EPS, s as u64]).fill_normal(w);
        for i in 0..PARAMS {
            w[i] = model.mu[i] + sigma[i] * w[i];
        }
    });
    sets
}

/// Runs every image through each of the `k` flat weight sets in `sets` (in the current rayon
/// pool) and averages probabilities and entropies over the sets.
pub fn forward_weight_sets(sets: &[f32], k: usize, images: &[u8]) -> McOutputs {
    assert_eq!(sets.len(), k * PARAMS, "weight sets");
    assert_eq!(images.len() % IN, 0, "images must be n×784 bytes");
    let n = images.len() / IN;
    let mut probs = vec![[0.0f32; 10]; n];
    let mut ent = vec![0.0f32; n];
    let lut = norm_lut();
    let weights: Vec<&[f32]> = sets.chunks_exact(PARAMS).collect();
    let inv = 1.0 / k as f32;
    images
        .par_chunks(CHUNK * IN)
        .zip(probs.par_chunks_mut(CHUNK))
        .zip(ent.par_chunks_mut(CHUNK))
        .for_each_init(
            || Workspace::new(CHUNK, GROUP.min(k), false),
            |ws, ((imgs, pr), en)| {
                let m = pr.len();
                for (d, &p) in ws.x.iter_mut().zip(imgs) {
                    *d = lut[p as usize];
                }
                ws.prepare_input(m);
                for group in weights.chunks(GROUP) {
                    ws.conv1(m, group);
                    for (j, w) in group.iter().enumerate() {
                        ws.tail_forward(m, j, w);
                        for i in 0..m {
                            let z = &ws.logits[i * OUT..(i + 1) * OUT];
                            let (lse, _) = log_sum_exp(z);
                            let mut zp = 0.0f32;
                            for c in 0..OUT {
                                let p = (z[c] - lse).exp();
                                pr[i][c] += p;
                                zp += p * z[c];
                            }
                            en[i] += lse - zp;
                        }
                    }
                }
                for i in 0..m {
                    for p in &mut pr[i] {
                        *p *= inv;
                    }
                    en[i] = (en[i] * inv).max(0.0);
                }
            },
        );
    McOutputs {
        probs,
        expected_entropy: ent,
    }
}

/// Monte Carlo evaluation with `samples` fresh weight samples, each shared by all `images`
/// (`n × 784` u8), in the current rayon pool. Deterministic for a given `seed`, whatever the
/// thread count.
pub fn evaluate(model: &Lenet, images: &[u8], samples: usize, seed: u64) -> McOutputs {
    let sets = sample_weight_sets(model, samples, seed);
    forward_weight_sets(&sets, samples, images)
}

/// [`evaluate`] in a pool of `threads` threads (0 = all cores).
pub fn evaluate_with_threads(
    model: &Lenet,
    images: &[u8],
    samples: usize,
    seed: u64,
    threads: usize,
) -> Result<McOutputs, String> {
    crate::nn::parallel::with_threads(threads, || evaluate(model, images, samples, seed))
}
