//! Caps glibc's malloc arenas at one per core (at least two), fixes its mmap threshold, and
//! hands the memory malloc holds free back to the kernel every few seconds.
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
//!
//! Why a fixed mmap threshold: glibc serves a request of 128 KiB or more with its own mapping,
//! returned to the kernel on free, but raises that threshold to the size of every such block
//! freed, up to 32 MiB. After RocksDB's first compaction has freed its 2 MiB read-ahead and
//! 1 MiB write buffers, those buffers come from the arenas instead, where they are freed in the
//! middle of a heap and stay resident until the next trim. Fixing the threshold turns the
//! adjustment off, so a compaction's transient buffers leave the process when it ends.

use std::sync::Once;
use std::time::Duration;

/// How often free heap pages go back to the kernel.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Requests at least this large get a mapping of their own (glibc's initial threshold, fixed).
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Caps the arenas and fixes the mmap threshold, each unless its `MALLOC_*` variable says
/// otherwise; call first thing in `main`. With [`release_free_memory`], the crate's only
/// `unsafe`: glibc's tunables have no safe wrapper.
#[allow(unsafe_code)]
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY (both calls): mallopt only changes a tunable of the allocator; no thread
        // allocates concurrently this early, and glibc documents both as settable at any time.
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            let arenas = cores.clamp(2, 8) as libc::c_int;
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, arenas);
            }
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
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
