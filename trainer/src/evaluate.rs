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
/// rayon pool. Temperature scaling ([`crate::calibrate`]) needs them; `samples = 0` is taken
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::lenet::LAYERS;

    /// A plain f64 LeNet forward, loop by loop, as DESIGN §2 states it.
    fn reference_probs(w: &[f32], img: &[u8]) -> [f64; 10] {
        let x: Vec<f64> = img
            .iter()
            .map(|&p| ((p as f64 / 255.0) - 0.1307) / 0.3081)
            .collect();
        let conv_pool = |x: &[f64], cin: usize, side: usize, l: usize| -> Vec<f64> {
            let r = LAYERS[l];
            let cout = r.end - r.b;
            let o = side - 4;
            let mut out = vec![0.0; cout * (o / 2) * (o / 2)];
            for co in 0..cout {
                let mut y = vec![0.0; o * o];
                for oy in 0..o {
                    for ox in 0..o {
                        let mut s = w[r.b + co] as f64;
                        for ci in 0..cin {
                            for ky in 0..5 {
                                for kx in 0..5 {
                                    s += w[r.w + ((co * cin + ci) * 5 + ky) * 5 + kx] as f64
                                        * x[(ci * side + oy + ky) * side + ox + kx];
                                }
                            }
                        }
                        y[oy * o + ox] = s.max(0.0);
                    }
                }
                for py in 0..o / 2 {
                    for px in 0..o / 2 {
                        let m = [0, 1, o, o + 1]
                            .iter()
                            .map(|d| y[2 * py * o + 2 * px + d])
                            .fold(f64::MIN, f64::max);
                        out[(co * (o / 2) + py) * (o / 2) + px] = m;
                    }
                }
            }
            out
        };
        let dense = |x: &[f64], l: usize, relu: bool| -> Vec<f64> {
            let r = LAYERS[l];
            let fin = x.len();
            (0..r.end - r.b)
                .map(|j| {
                    let s = w[r.b + j] as f64
                        + (0..fin)
                            .map(|i| w[r.w + j * fin + i] as f64 * x[i])
                            .sum::<f64>();
                    if relu {
                        s.max(0.0)
                    } else {
                        s
                    }
                })
                .collect()
        };
        let h = conv_pool(&x, 1, 28, 0);
        let h = conv_pool(&h, 6, 12, 1);
        let h = dense(&dense(&dense(&h, 2, true), 3, true), 4, false);
        let m = h.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = h.iter().map(|v| (v - m).exp()).sum();
        std::array::from_fn(|c| (h[c] - m).exp() / z)
    }

    fn some_images(n: usize) -> Vec<u8> {
        crate::testdata::mnist("t10k", n).0
    }

    #[test]
    fn mean_forward_matches_a_plain_reference() {
        let mut model = Lenet::init(2);
        for m in &mut model.mu {
            *m *= 2.0;
        }
        let imgs = some_images(70); // more than one chunk, a partial one
        let got = model.mean_forward(&imgs);
        assert_eq!(got.len(), 70);
        for i in [0, 33, 64, 69] {
            let want = reference_probs(&model.mu, &imgs[i * 784..(i + 1) * 784]);
            for c in 0..10 {
                assert!(
                    (got[i][c] as f64 - want[c]).abs() < 1e-5,
                    "image {i} class {c}: {} vs {}",
                    got[i][c],
                    want[c]
                );
            }
        }
    }

    #[test]
    fn monte_carlo_outputs_are_consistent_and_deterministic() {
        let mut model = Lenet::init(1);
        let imgs = some_images(40);
        // σ → 0: every sample is the mean model.
        model.rho.iter_mut().for_each(|r| *r = -40.0);
        let mc = evaluate(&model, &imgs, 5, 3);
        let mean = model.mean_forward(&imgs);
        for (p, q) in mc.probs.iter().zip(&mean) {
            let h: f32 = -q.iter().map(|&v| v * v.ln()).sum::<f32>();
            assert!(p.iter().zip(q).all(|(a, b)| (a - b).abs() < 1e-6));
            let i = mc.probs.iter().position(|x| x == p).unwrap();
            assert!((mc.expected_entropy[i] - h).abs() < 1e-5);
        }
        // Real noise: p̄ sums to 1, MI = H[p̄] − E H[p_s] ≥ 0 and some image has MI > 0.
        model.rho.iter_mut().for_each(|r| *r = -2.0);
        let a = evaluate_with_threads(&model, &imgs, 6, 9, 1).unwrap();
        let b = evaluate_with_threads(&model, &imgs, 6, 9, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, evaluate_with_threads(&model, &imgs, 6, 10, 2).unwrap());
        let mut max_mi = 0.0f32;
        for (p, &eh) in a.probs.iter().zip(&a.expected_entropy) {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let h: f32 = -p
                .iter()
                .map(|&v| if v > 0.0 { v * v.ln() } else { 0.0 })
                .sum::<f32>();
            assert!(h - eh > -1e-5, "MI {h} − {eh} < 0");
            max_mi = max_mi.max(h - eh);
        }
        assert!(max_mi > 1e-3);
        // An image's result does not depend on the rest of the set.
        let single = evaluate(&model, &imgs[39 * 784..], 6, 9);
        assert!(single.probs[0]
            .iter()
            .zip(&a.probs[39])
            .all(|(x, y)| (x - y).abs() < 1e-6));
    }
}
