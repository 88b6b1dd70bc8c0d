//! Thread pools: every parallel entry point runs inside its own pool (never the global one),
//! so callers and tests choose the thread count.

/// A pool of worker threads could not be started.
#[derive(Debug, thiserror::Error)]
#[error("--threads: cannot start {threads} worker threads: {source}")]
pub struct ThreadPoolError {
    /// Threads asked for (0 = all cores).
    pub threads: usize,
    /// rayon's reason.
    #[source]
    pub source: rayon::ThreadPoolBuildError,
}

/// A rayon pool of `threads` workers (all cores when `None` or `Some(0)`).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, ThreadPoolError> {
    let threads = threads.unwrap_or(0);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|source| ThreadPoolError { threads, source })
}

/// Runs `f` inside a fresh pool of `threads` threads (0 = all available cores).
pub fn with_threads<R: Send>(
    threads: usize,
    f: impl FnOnce() -> R + Send,
) -> Result<R, ThreadPoolError> {
    Ok(thread_pool(Some(threads))?.install(f))
}
