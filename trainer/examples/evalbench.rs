//! Evaluation throughput: 16 samples over 4,000 images, min CPU time of 3 runs, one thread.

mod common;

use common::cpu_seconds;

fn main() {
    let model = trainer::model::Lenet::init(0);
    let imgs: Vec<u8> = (0..4000 * 784).map(|i| ((i * 7919) % 256) as u8).collect();
    let t = (0..3)
        .map(|_| {
            let t = cpu_seconds();
            trainer::eval::monte_carlo::evaluate_with_threads(&model, &imgs, 16, 0, 1).unwrap();
            cpu_seconds() - t
        })
        .fold(f64::MAX, f64::min);
    println!(
        "eval 16 × 4000: {t:.3} s → 16 × 20000 ≈ {:.2} s on one core",
        t * 5.0
    );
}
