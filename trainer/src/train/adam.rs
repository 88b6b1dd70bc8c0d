//! Adam as PyTorch writes it, sequential for tests and chunked in parallel for training.

use rayon::prelude::*;

use super::engine::CHUNK;

/// Adam as PyTorch writes it (bias-corrected, no weight decay, no amsgrad).
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// Steps taken.
    pub t: u32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    /// Adam for `n` parameters with PyTorch's defaults besides `lr`.
    pub fn new(n: usize, lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// Starts a step: advances `t` and returns its (step size, 1/√(bias correction 2)).
    fn begin(&mut self) -> (f32, f32) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        (self.lr / bc1, bc2.sqrt())
    }

    /// Updates `p` (a slice of the parameters starting at `offset`) with gradient `g`.
    fn apply(&self, k: (f32, f32), p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (step, bc2_sqrt) = k;
        for i in 0..p.len() {
            m[i] = self.beta1 * m[i] + (1.0 - self.beta1) * g[i];
            v[i] = self.beta2 * v[i] + (1.0 - self.beta2) * g[i] * g[i];
            let denom = v[i].sqrt() / bc2_sqrt + self.eps;
            p[i] -= step * m[i] / denom;
        }
    }

    /// Steps taken and moment estimates (for a checkpoint).
    pub fn state(&self) -> AdamState {
        AdamState {
            t: self.t,
            m: self.m.clone(),
            v: self.v.clone(),
        }
    }

    /// Adam with learning rate `lr` (PyTorch's other defaults) continuing from `state`.
    pub fn restore(lr: f32, state: AdamState) -> Self {
        Adam {
            t: state.t,
            m: state.m,
            v: state.v,
            ..Adam::new(0, lr)
        }
    }

    /// One step on all parameters (sequential; the trainer uses the chunked path).
    pub fn step(&mut self, p: &mut [f32], g: &[f32]) {
        let k = self.begin();
        let (mut m, mut v) = (std::mem::take(&mut self.m), std::mem::take(&mut self.v));
        self.apply(k, p, g, &mut m, &mut v);
        self.m = m;
        self.v = v;
    }
}

/// Adam's state besides its hyper-parameters: steps taken, first and second moments.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamState {
    /// Steps taken.
    pub t: u32,
    /// First-moment estimates, one per parameter.
    pub m: Vec<f32>,
    /// Second-moment estimates, one per parameter.
    pub v: Vec<f32>,
}

/// Adam on fixed chunks in parallel.
pub(crate) fn apply_adam(adam: &mut Adam, p: &mut [f32], g: &[f32]) {
    let k = adam.begin();
    let (mut m, mut v) = (std::mem::take(&mut adam.m), std::mem::take(&mut adam.v));
    let a = &*adam;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, ((p, m), v))| a.apply(k, p, &g[c * CHUNK..c * CHUNK + p.len()], m, v));
    adam.m = m;
    adam.v = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_matches_hand_computed_steps() {
        // PyTorch's formula in f64 by hand, lr 0.1, three steps.
        let mut adam = Adam::new(2, 0.1);
        let mut p = [1.0f32, -2.0];
        let want = [
            [0.900_000_002, -1.900_000_01],
            [0.936_610_354, -1.936_610_360],
            [0.947_377_474, -1.964_910_267],
        ];
        for (g, w) in [[0.5f32, -0.1], [-1.0, 0.2], [0.3, 0.0]].iter().zip(want) {
            adam.step(&mut p, g);
            assert!(
                (p[0] as f64 - w[0]).abs() < 1e-6 && (p[1] as f64 - w[1]).abs() < 1e-6,
                "{p:?} vs {w:?}"
            );
        }
        assert_eq!(adam.t, 3);
    }
}
