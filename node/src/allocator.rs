//! Caps glibc's malloc arenas at one per core (at least two) unless `MALLOC_ARENA_MAX` says
//! otherwise, and hands the memory malloc holds free back to the kernel every few seconds.
//!
//! Why: glibc gives every thread that contends for the heap an arena of its own, up to eight per
//! core, and memory freed in one arena is reused only by that arena. RocksDB's background
//! threads, tokio's workers and the blocking pool allocate and free in different arenas, so the
//! freed pieces pile up: on the 30-minute soak the node's memory outside RocksDB's cache grew
//! 44 → 52 MiB between minutes 5 and 8.5 with glibc's default, and stayed at 41 → 39 MiB with
//! two arenas (docs/benchmarks.md). The cap must be set before the first threads start.
//!
//! Why trim: glibc returns freed memory to the kernel only from the top of a heap. RocksDB's
//! block cache evicts and refills blocks of a few KiB all the time, so free chunks pile up in
//! the middle of the heaps: after 30 minutes of load the soak's node had 85 MB of heap from the
//! kernel for 52 MB in use (`malloc_stats`), and its RSS kept rising with it while every owner
//! of memory stayed within its bound. `malloc_trim(0)` releases the free pages inside the heaps
//! (madvise), in a few milliseconds for a heap of that size.

use std::sync::Once;
use std::time::Duration;

/// How often free heap pages go back to the kernel.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Sets the cap; call first thing in `main`. With [`release_free_memory`], the crate's only
/// `unsafe`: glibc's tunables have no safe wrapper.
#[allow(unsafe_code)]
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let arenas = cores.clamp(2, 8) as libc::c_int;
        // SAFETY: mallopt only changes a tunable of the allocator; no thread allocates
        // concurrently this early, and glibc documents M_ARENA_MAX as settable at any time.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Returns the free pages of malloc's heaps to the kernel (glibc's `malloc_trim`).
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory and takes the allocator's own locks;
    // it is documented as safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Starts releasing free memory every [`TRIM_INTERVAL`] on a blocking thread: once per process,
/// however many nodes it runs (a multi-validator `bttd devnet`).
pub fn start_trimming() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        tokio::spawn(async {
            let mut every = tokio::time::interval(TRIM_INTERVAL);
            loop {
                every.tick().await;
                if tokio::task::spawn_blocking(release_free_memory)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    });
}
