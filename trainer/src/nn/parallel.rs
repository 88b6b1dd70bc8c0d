//! Thread pools: every parallel entry point runs inside its own pool (never the global one),
//! so callers and tests choose the thread count.

/// Runs `f` inside a fresh rayon pool of `threads` threads (0 = all available cores).
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot start {threads} worker threads: {e}"))?;
    Ok(pool.install(f))
}
