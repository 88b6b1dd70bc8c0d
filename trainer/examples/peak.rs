//! f32 GEMM peak of one core through matrixmultiply (512³, best of 20).
use std::time::Instant;
use trainer::nn::gemm::{gemm, View};
fn main() {
    let n = 512;
    let a: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.1).sin()).collect();
    let b = a.clone();
    let mut c = vec![0.0f32; n * n];
    let t = (0..20)
        .map(|_| {
            let t = Instant::now();
            gemm(
                n,
                n,
                n,
                View::rows(&a, n),
                View::rows(&b, n),
                0.0,
                &mut c,
                n,
            );
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    println!(
        "sgemm {n}³: {:.1} GFLOP/s on one core",
        2.0 * (n * n * n) as f64 / t / 1e9
    );
}
