//! Writes the seed corpora: `cargo run --manifest-path fuzz/Cargo.toml --example seeds [DIR]`
//! (DIR defaults to `fuzz/seeds`), giving `DIR/model/*` and `DIR/idx/*`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    for (target, files) in [
        ("model", tinyvi_fuzz::model_files()),
        ("idx", tinyvi_fuzz::idx_files()),
    ] {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        for (name, bytes) in files {
            std::fs::write(d.join(name), &bytes)?;
            println!("{} ({} bytes)", d.join(name).display(), bytes.len());
        }
    }
    Ok(())
}
