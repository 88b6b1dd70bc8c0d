//! Evaluation throughput: 16 samples over 4,000 images, min CPU time of 3 runs, one thread.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    f.get(11)
        .zip(f.get(12))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

fn main() {
    let model = trainer::model::Lenet::init(0);
    let imgs: Vec<u8> = (0..4000 * 784).map(|i| ((i * 7919) % 256) as u8).collect();
    let t = (0..3)
        .map(|_| {
            let t = cpu_seconds();
            trainer::evaluate::evaluate_with_threads(&model, &imgs, 16, 0, 1).unwrap();
            cpu_seconds() - t
        })
        .fold(f64::MAX, f64::min);
    println!(
        "eval 16 × 4000: {t:.3} s → 16 × 20000 ≈ {:.2} s on one core",
        t * 5.0
    );
}
