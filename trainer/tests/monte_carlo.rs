//! The Monte Carlo evaluation on MNIST test images: the mean-weight forward against a plain f64
//! reference, and the sampled outputs' consistency and determinism across thread counts.

use trainer::eval::monte_carlo::{evaluate, evaluate_with_threads, mean_forward};
use trainer::model::Lenet;
use trainer::nn::lenet::LAYERS;

/// A plain f64 LeNet forward, loop by loop, as docs/design.md (Model) states it.
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

/// The first `n` MNIST test images.
fn some_images(n: usize) -> Vec<u8> {
    let (_, test) = trainer::data::workspace::mnist();
    test.images[..n * 784].to_vec()
}

#[test]
fn mean_forward_matches_a_plain_reference() {
    let mut model = Lenet::init(2);
    for m in &mut model.mu {
        *m *= 2.0;
    }
    let imgs = some_images(70); // more than one chunk, a partial one
    let got = mean_forward(&model, &imgs);
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
    let mean = mean_forward(&model, &imgs);
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
