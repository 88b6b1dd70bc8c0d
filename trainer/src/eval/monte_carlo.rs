//! Batched Monte Carlo evaluation: each sample is one fresh draw of every weight, shared by the
//! whole image set; images run through in parallel chunks, samples stacked in conv1's GEMM.

use rayon::prelude::*;

use crate::model::Lenet;
use crate::nn::lenet::{log_sum_exp, Workspace, IN, OUT, PARAMS};
use crate::nn::rng::{purpose, Rng};

/// Images per parallel work item.
const CHUNK: usize = 32;
/// Samples stacked in one conv1 GEMM.
const GROUP: usize = 2;

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
///
/// # Panics
/// If `images.len()` is not a multiple of 784 or `sets` does not hold `k` weight sets.
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
                forward_chunk(ws, &lut, imgs, &weights, |_, i, z| {
                    let (lse, _) = log_sum_exp(z);
                    let mut zp = 0.0f32;
                    for c in 0..OUT {
                        let p = (z[c] - lse).exp();
                        pr[i][c] += p;
                        zp += p * z[c];
                    }
                    en[i] += lse - zp;
                });
                for i in 0..pr.len() {
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

/// The logits of every image under each of `samples` weight samples drawn as [`evaluate`]
/// draws them (same `seed`, same sets), laid out `[image][sample][class]`, in the current
/// rayon pool. Temperature scaling ([`crate::model::temperature`]) needs them; `samples = 0` is taken
/// as 1.
///
/// # Panics
/// If `images.len()` is not a multiple of 784.
pub fn mc_logits(model: &Lenet, images: &[u8], samples: usize, seed: u64) -> Vec<f32> {
    let k = samples.max(1);
    let sets = sample_weight_sets(model, k, seed);
    assert_eq!(images.len() % IN, 0, "images must be n×784 bytes");
    let n = images.len() / IN;
    let mut logits = vec![0.0f32; n * k * OUT];
    let lut = norm_lut();
    let weights: Vec<&[f32]> = sets.chunks_exact(PARAMS).collect();
    images
        .par_chunks(CHUNK * IN)
        .zip(logits.par_chunks_mut(CHUNK * k * OUT))
        .for_each_init(
            || Workspace::new(CHUNK, GROUP.min(k), false),
            |ws, (imgs, out)| {
                forward_chunk(ws, &lut, imgs, &weights, |s, i, z| {
                    out[(i * k + s) * OUT..][..OUT].copy_from_slice(z);
                });
            },
        );
    logits
}

/// Runs one chunk of images (at most [`CHUNK`]) through every weight set, samples stacked
/// [`GROUP`] at a time in conv1's GEMM, and hands each image's logits to
/// `on_logits(sample, image, logits)`, sample by sample in order.
fn forward_chunk(
    ws: &mut Workspace,
    lut: &[f32; 256],
    imgs: &[u8],
    weights: &[&[f32]],
    mut on_logits: impl FnMut(usize, usize, &[f32]),
) {
    let m = imgs.len() / IN;
    for (d, &p) in ws.x.iter_mut().zip(imgs) {
        *d = lut[p as usize];
    }
    ws.prepare_input(m);
    for (g, group) in weights.chunks(GROUP).enumerate() {
        ws.conv1(m, group);
        for (j, w) in group.iter().enumerate() {
            ws.tail_forward(m, j, w);
            for i in 0..m {
                on_logits(g * GROUP + j, i, &ws.logits[i * OUT..(i + 1) * OUT]);
            }
        }
    }
}

/// Monte Carlo evaluation with `samples` fresh weight samples, each shared by all `images`
/// (`n × 784` u8), in the current rayon pool. Deterministic for a given `seed`, whatever the
/// thread count. `samples = 0` is taken as 1.
///
/// # Panics
/// If `images.len()` is not a multiple of 784.
pub fn evaluate(model: &Lenet, images: &[u8], samples: usize, seed: u64) -> McOutputs {
    let samples = samples.max(1);
    let sets = sample_weight_sets(model, samples, seed);
    forward_weight_sets(&sets, samples, images)
}

/// Softmax probabilities of `images` (`n × 784` u8) with `model`'s mean weights μ, in the
/// current rayon pool.
///
/// # Panics
/// If `images.len()` is not a multiple of 784.
pub fn mean_forward(model: &Lenet, images: &[u8]) -> Vec<[f32; 10]> {
    forward_weight_sets(&model.mu, 1, images).probs
}

/// [`evaluate`] in a pool of `threads` threads (0 = all cores).
pub fn evaluate_with_threads(
    model: &Lenet,
    images: &[u8],
    samples: usize,
    seed: u64,
    threads: usize,
) -> Result<McOutputs, crate::nn::parallel::ThreadPoolError> {
    crate::nn::parallel::with_threads(threads, || evaluate(model, images, samples, seed))
}
