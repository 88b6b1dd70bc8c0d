//! Writes the QEMU test's fixture — a random (untrained) LeNet and 64 synthetic images — as
//! `model.postcard` and `samples.bin` into a directory (default `artifacts/`), so that the
//! firmware can be built before a model has been trained:
//! `cargo run -p tests --bin make-fixture -- artifacts`.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "artifacts".into()),
    );
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let files = [
        (
            "model.postcard",
            tests::random_lenet(11, Some(tests::FIXTURE_THRESHOLD)),
        ),
        ("samples.bin", tests::synthetic_samples(12, 64)),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("error: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("wrote {}", path.display());
    }
}
